"""Every built-in component, run by the real engine against the real servers, emits exactly the component events its
spec declares: each extractor one `source_opened`, each writer one `output_written` (rows = what it wrote), and
every target a URI naming the data without any credential."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import yaml

from osiris_core.connections import Connections
from osiris_core.events import ENGINE_EVENTS
from osiris_core.registry import ComponentRegistry
from osiris_core.runner import RunResult
from osiris_drivers.registry import builtin_components
from tests.supabase.conftest import SERVICE_KEY
from tests.support.databases import MySQLDatabase, PostgresDatabase
from tests.support.postgrest_server import PostgrestServer
from tests.support.runs import assert_succeeded, events, extract_csv, run_pipeline, step, write_csv

SCHEMES = {"file", "duckdb", "mysql", "postgresql", "http", "https"}
PG_PASSWORD = "events-pg-Pw-31"


def connections(project: Path, mysql_db: MySQLDatabase, pg_db: PostgresDatabase,
                server: PostgrestServer) -> Connections:
    pg = {"host": pg_db.host, "port": pg_db.port, "database": pg_db.database, "user": pg_db.user,
          "password": PG_PASSWORD}  # trust authentication: the password is never checked, only carried
    dsn = f"postgresql://{pg_db.user}:{PG_PASSWORD}@{pg_db.host}:{pg_db.port}/{pg_db.database}"
    supabase = {"url": server.url, "service_role_key": SERVICE_KEY, "sql_url": server.sql_url}
    path = project / "osiris_connections.yaml"
    path.write_text(yaml.safe_dump({"connections": {
        "mysql": {"main": mysql_db.fields}, "postgres": {"main": pg},
        "supabase": {"rest": supabase, "sql": {**supabase, "pg_dsn": dsn}}}}), encoding="utf-8")
    return Connections.load(path)


def step_of(component: str, step_id: str, needs: list[str] | None = None, **config: Any) -> dict[str, Any]:
    mode = {"extractor": "read", "processor": "transform"}.get(component.split(".")[1].split("_")[-1], "write")
    return {"id": step_id, "component": component, "mode": mode, **({"needs": needs} if needs else {}),
            "config": config}


def check_events(run: RunResult, registry: ComponentRegistry, components: dict[str, str]) -> set[str]:
    """Each step's component events against its spec; the components seen."""
    emitted: dict[str, list[dict[str, Any]]] = {}
    for event in events(run):
        if event["event"] not in ENGINE_EVENTS:
            emitted.setdefault(event["step_id"], []).append(event)
    for step_id, component in components.items():
        spec = registry.get(component).spec
        own = emitted.get(step_id, [])
        assert {e["event"] for e in own} <= set(spec.events), (step_id, own)
        opened = [e for e in own if e["event"] == "source_opened"]
        written = [e for e in own if e["event"] == "output_written"]
        if "read" in spec.modes:
            assert len(opened) == 1 and opened[0]["columns"], (step_id, own)
        if "write" in spec.modes:
            assert len(written) == 1 and written[0]["rows"] == step(run, step_id).rows_out, (step_id, own)
        for event in opened + written:
            check_target(event["target"])
    return set(components.values())


def check_target(target: str) -> None:
    parts = urlsplit(target)
    assert parts.scheme in SCHEMES, target
    assert parts.username is None and parts.password is None and not parts.query, target
    assert PG_PASSWORD not in target and SERVICE_KEY not in target and "@" not in target, target
    if parts.scheme in ("file", "duckdb"):
        assert Path(unquote(parts.path)).is_absolute(), target
    else:
        assert parts.hostname and parts.port, target


def test_every_component_emits_the_events_its_spec_declares(
        project: Path, registry: ComponentRegistry, mysql_db: MySQLDatabase, pg_db: PostgresDatabase,
        postgrest: PostgrestServer) -> None:
    conns = connections(project, mysql_db, pg_db, postgrest)
    (project / "rows.csv").write_text("id,name\n1,a\n2,b\n3,c\n", encoding="utf-8")
    writes = {
        "rows": "filesystem.csv_extractor", "shape": "duckdb.processor", "csv": "filesystem.csv_writer",
        "duck": "duckdb.writer", "my": "mysql.writer", "pg": "postgres.writer", "sb-copy": "supabase.writer",
        "sb-rest": "supabase.writer",
    }
    table = {"write_mode": "replace", "primary_key": ["id"]}
    postgrest.fail_next(1, 503, methods=["POST"])  # the PostgREST path retries a batch: a declared `retry` event
    try:
        written = run_pipeline(registry, project, [
            extract_csv("rows", "rows.csv"),
            step_of("duckdb.processor", "shape", ["rows"], query="SELECT id, upper(name) AS name FROM input_df"),
            write_csv("csv", "shape", "out/rows.csv"),
            step_of("duckdb.writer", "duck", ["shape"], path="out/rows.duckdb", table="events", **table),
            step_of("mysql.writer", "my", ["shape"], connection="@mysql.main", table="events", **table),
            step_of("postgres.writer", "pg", ["shape"], connection="@postgres.main", table="events", **table),
            step_of("supabase.writer", "sb-copy", ["shape"], connection="@supabase.sql", table="events_copy",
                    **table),
            step_of("supabase.writer", "sb-rest", ["shape"], connection="@supabase.rest", table="events_rest",
                    batch_size=1, **table),
        ], connections=conns)
    finally:
        postgrest.fail_next(0)
    assert_succeeded(written)
    assert [e["batch"] for e in events(written) if e["event"] == "retry"] == [0]
    postgrest.reload_schema()
    reads = {"my-table": "mysql.extractor", "my-query": "mysql.extractor", "pg-table": "postgres.extractor",
             "pg-query": "postgres.extractor", "sb-sql": "supabase.extractor", "sb-rest": "supabase.extractor"}
    read = run_pipeline(registry, project, [
        step_of("mysql.extractor", "my-table", connection="@mysql.main", table="events"),
        step_of("mysql.extractor", "my-query", connection="@mysql.main", query="SELECT COUNT(*) AS n FROM events"),
        step_of("postgres.extractor", "pg-table", connection="@postgres.main", table="events"),
        step_of("postgres.extractor", "pg-query", connection="@postgres.main", query="SELECT 1 AS one"),
        step_of("supabase.extractor", "sb-sql", connection="@supabase.sql", table="events_copy"),
        step_of("supabase.extractor", "sb-rest", connection="@supabase.rest", table="events_rest", order_by=["id"]),
        *[write_csv(f"{s}-out", s, f"out/{s}.csv") for s in ("my-table", "my-query", "pg-table", "pg-query",
                                                              "sb-sql", "sb-rest")],
    ], name="reads", connections=conns)
    assert_succeeded(read)
    seen = check_events(written, registry, writes) | check_events(read, registry, reads)
    assert seen == {c.name for c in builtin_components()}
    targets = {e["step_id"]: e["target"] for e in events(written) + events(read)
               if e["event"] in ("source_opened", "output_written")}
    host = f"{pg_db.host}:{pg_db.port}/{pg_db.database}"
    assert targets["pg"] == targets["pg-table"] == f"postgresql://{host}/public.events"
    assert targets["pg-query"] == f"postgresql://{host}#query"
    assert targets["my"] == targets["my-table"] == f"mysql://{mysql_db.host}:{mysql_db.port}/{mysql_db.database}/events"
    rest = urlsplit(postgrest.url)
    assert targets["sb-rest"] == f"http://{rest.hostname}:{rest.port}/public.events_rest"
    assert targets["csv"] == (project / "out/rows.csv").as_uri()
    assert targets["duck"] == f"duckdb://{project / 'out/rows.duckdb'}#main.events"
