"""`osiris run --dry-run`: the plan of every step on the real servers — what each writer would do to its target
(create, replace, append, upsert), decided by the writer's own plan on a read-only look-up — while every target
stays exactly as it was, and no session or file is written."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest
import yaml

from osiris_cli.main import main
from osiris_core.driver import Driver, DriverConfig, StepContext, StepInputs, StepOutputs, StepPlan
from osiris_core.errors import DriverError
from osiris_core.registry import Component
from osiris_core.spec import parse_spec
from osiris_drivers.dry_run import plan_step
from tests.support.databases import MySQLDatabase, PostgresDatabase
from tests.support.postgrest_openapi import OpenApiPostgrestServer

PASSWORD = "dry-run-pw-2718"


@pytest.fixture
def targets(project: Path, mysql_db: MySQLDatabase, pg_db: PostgresDatabase) -> Iterator[Path]:
    """A CSV source, and on every SQL family tables `t_append`, `t_replace`, `t_upsert` (2 rows each, keyed by
    id) while `t_new` is missing; an existing CSV target file."""
    (project / "in.csv").write_text("id,name\n1,one\n2,two\n3,three\n", encoding="utf-8")
    (project / "old.csv").write_text("kept\n", encoding="utf-8")
    existing = ("t_append", "t_replace", "t_upsert")
    with duckdb.connect(str(project / "wh.duckdb")) as con:
        for table in existing:
            con.execute(f"CREATE TABLE {table} (id BIGINT PRIMARY KEY, name VARCHAR)")
            con.execute(f"INSERT INTO {table} VALUES (8, 'old'), (9, 'nine')")
    with mysql_db.connect() as session, session.cursor() as cursor:
        for table in (*existing, "t_new", "t_nokey"):
            cursor.execute(f"DROP TABLE IF EXISTS {table}")
        for table in existing:
            cursor.execute(f"CREATE TABLE {table} (id BIGINT PRIMARY KEY, name TEXT)")
            cursor.execute(f"INSERT INTO {table} VALUES (8, 'old'), (9, 'nine')")
        cursor.execute("CREATE TABLE t_nokey (id BIGINT, name TEXT)")
    connection = pg_db.connect()
    with connection.cursor() as cursor:
        for table in existing:
            cursor.execute(f"DROP TABLE IF EXISTS {table}; DROP TABLE IF EXISTS t_new; "
                           f"CREATE TABLE {table} (id bigint PRIMARY KEY, name text); "
                           f"INSERT INTO {table} VALUES (8, 'old'), (9, 'nine')")
        cursor.execute("DROP TABLE IF EXISTS t_other; CREATE TABLE t_other (id bigint, label text)")
    connection.close()
    (project / "osiris_connections.yaml").write_text(yaml.safe_dump({"connections": {
        "mysql": {"main": mysql_db.fields},
        "postgres": {"main": {"host": pg_db.host, "port": pg_db.port, "database": pg_db.database,
                              "user": pg_db.user},
                     "down": {"host": "127.0.0.1", "port": closed_port(), "database": "x", "user": "u",
                              "password": PASSWORD}},
    }}), encoding="utf-8")
    yield project


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pipeline(project: Path, steps: list[dict[str, Any]], name: str = "plan.yaml") -> str:
    (project / name).write_text(yaml.safe_dump({"oml_version": "0.1.0", "name": "planned", "steps": steps}),
                                encoding="utf-8")
    return name


READ = {"id": "read", "component": "filesystem.csv_extractor", "mode": "read", "config": {"path": "in.csv"}}


def write(step_id: str, component: str, table: str, mode: str = "append", **config: Any) -> dict[str, Any]:
    extra: dict[str, Any] = {"path": "wh.duckdb"} if component == "duckdb.writer" else {}
    if mode == "upsert":
        extra["primary_key"] = ["id"]
    return {"id": step_id, "component": component, "mode": "write", "needs": ["read"],
            "config": {**extra, "table": table, "write_mode": mode, **config}}


def every_mode(component: str, prefix: str) -> list[dict[str, Any]]:
    return [write(f"{prefix}-append", component, "t_append"), write(f"{prefix}-replace", component, "t_replace",
                                                                    "replace"),
            write(f"{prefix}-upsert", component, "t_upsert", "upsert"),
            write(f"{prefix}-new", component, "t_new", "replace")]


def state(project: Path, mysql_db: MySQLDatabase, pg_db: PostgresDatabase) -> dict[str, Any]:
    """Every target's rows (None: missing), every file of the project with its bytes."""
    seen: dict[str, Any] = {}
    with duckdb.connect(str(project / "wh.duckdb"), read_only=True) as con:
        names = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
        for table in ("t_append", "t_replace", "t_upsert", "t_new"):
            seen[f"duckdb.{table}"] = (sorted(con.execute(f"SELECT * FROM {table}").fetchall())
                                       if table in names else None)
    with mysql_db.connect() as session, session.cursor() as cursor:
        for table in ("t_append", "t_replace", "t_upsert", "t_new"):
            cursor.execute("SELECT count(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s "
                           "AND TABLE_NAME = %s", (mysql_db.database, table))
            row = cursor.fetchone()
            if row and row[0]:
                cursor.execute(f"SELECT * FROM {table} ORDER BY id")
                seen[f"mysql.{table}"] = cursor.fetchall()
            else:
                seen[f"mysql.{table}"] = None
    connection = pg_db.connect()
    with connection.cursor() as cursor:
        for table in ("t_append", "t_replace", "t_upsert", "t_new"):
            cursor.execute("SELECT to_regclass(%s) IS NOT NULL", (table,))
            row = cursor.fetchone()
            if row and row[0]:
                cursor.execute(f"SELECT * FROM {table} ORDER BY id")
                seen[f"postgres.{table}"] = cursor.fetchall()
            else:
                seen[f"postgres.{table}"] = None
    connection.close()
    seen["files"] = {str(p.relative_to(project)): p.read_bytes() for p in sorted(project.rglob("*")) if p.is_file()}
    return seen


def dry_run(capsys: pytest.CaptureFixture[str], *argv: str, code: int = 0) -> dict[str, Any]:
    capsys.readouterr()
    assert main(["run", *argv, "--dry-run", "--json"]) == code
    out, err = capsys.readouterr()
    assert err == ""
    result: dict[str, Any] = json.loads(out)  # exactly one document
    return result


def test_every_write_mode_is_planned_and_no_target_changes(
        targets: Path, mysql_db: MySQLDatabase, pg_db: PostgresDatabase, capsys: pytest.CaptureFixture[str]) -> None:
    steps = [READ, *every_mode("duckdb.writer", "duck"), *every_mode("mysql.writer", "my"),
             *every_mode("postgres.writer", "pg"),
             {"id": "csv-old", "component": "filesystem.csv_writer", "mode": "write", "needs": ["read"],
              "config": {"path": "old.csv"}},
             {"id": "csv-new", "component": "filesystem.csv_writer", "mode": "write", "needs": ["read"],
              "config": {"path": "out/new.csv"}}]
    name = pipeline(targets, [{**s, "config": {**s["config"], "connection": "@mysql.main"}}
                              if s["component"] == "mysql.writer" else
                              {**s, "config": {**s["config"], "connection": "@postgres.main"}}
                              if s["component"] == "postgres.writer" else s for s in steps])
    before = state(targets, mysql_db, pg_db)
    plan = dry_run(capsys, name)
    assert (plan["pipeline"], plan["dry_run"], plan["ok"]) == ("planned", True, True)
    by_step = {s["step"]: s for s in plan["steps"]}
    assert by_step["read"]["source"] == (targets / "in.csv").as_uri() and by_step["read"]["action"] is None
    for prefix in ("duck", "my", "pg"):
        actions = {mode: (by_step[f"{prefix}-{mode}"]["action"], by_step[f"{prefix}-{mode}"]["target_exists"])
                   for mode in ("append", "replace", "upsert", "new")}
        assert actions == {"append": ("append", True), "replace": ("replace", True), "upsert": ("upsert", True),
                           "new": ("create", False)}, prefix
    assert by_step["pg-new"]["target"] == f"postgresql://127.0.0.1:{pg_db.port}/{pg_db.database}/public.t_new"
    assert by_step["duck-new"]["target"] == f"duckdb://{targets / 'wh.duckdb'}#main.t_new"
    assert by_step["my-new"]["write_mode"] == "replace"
    # The input's columns (the CSV header) match: PostgreSQL empties the table in place, the others rebuild it.
    assert "emptied in place" in by_step["pg-replace"]["detail"]
    assert "rebuilt from the input's columns" in by_step["duck-replace"]["detail"]
    assert "rebuilt from the input's columns" in by_step["my-replace"]["detail"]
    assert (by_step["csv-old"]["action"], by_step["csv-new"]["action"]) == ("replace", "create")
    assert all(s["incremental"] == "full" and s["error"] is None for s in plan["steps"])
    assert state(targets, mysql_db, pg_db) == before  # no row, table, file or session changed
    assert not (targets / "logs").exists()

    capsys.readouterr()
    assert main(["run", name, "--dry-run"]) == 0
    text = capsys.readouterr().out
    assert "no row was read, nothing was written" in text and "Plan: ok" in text
    assert "pg-new: table public.t_new does not exist" in text

    card = json.loads(_run(capsys, name))  # the run then does what the plan said
    assert card["status"] == "succeeded", card["error"]
    after = state(targets, mysql_db, pg_db)
    for family in ("duckdb", "mysql", "postgres"):
        assert len(after[f"{family}.t_append"]) == 5 and len(after[f"{family}.t_replace"]) == 3
        assert len(after[f"{family}.t_upsert"]) == 5 and len(after[f"{family}.t_new"]) == 3


def _run(capsys: pytest.CaptureFixture[str], name: str) -> str:
    capsys.readouterr()
    main(["run", name, "--json"])
    return capsys.readouterr().out


def test_a_plan_that_would_fail_says_why_and_exits_1(targets: Path, mysql_db: MySQLDatabase,
                                                     pg_db: PostgresDatabase,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    name = pipeline(targets, [
        READ,
        write("strict", "duckdb.writer", "t_new", create_if_missing=False),
        write("nokey", "mysql.writer", "t_nokey", "upsert", connection="@mysql.main"),
        write("columns", "postgres.writer", "t_other", connection="@postgres.main", on_schema_change="fail"),
        write("down", "postgres.writer", "t_new", connection="@postgres.down"),
        write("fine", "duckdb.writer", "t_append"),
        {"id": "gone", "component": "filesystem.csv_extractor", "mode": "read", "config": {"path": "gone.csv"}},
    ])
    before = state(targets, mysql_db, pg_db)
    plan = dry_run(capsys, name, code=1)
    errors = {s["step"]: s["error"] for s in plan["steps"]}
    assert plan["ok"] is False and errors["read"] is None and errors["fine"] is None
    assert errors["strict"].startswith("step 'strict': table t_new does not exist in wh.duckdb")
    assert "has no PRIMARY KEY or UNIQUE index on ['id']" in errors["nokey"]
    assert "the input's columns differ from table public.t_other's (added: name" in errors["columns"]  # the header
    assert "cannot connect to PostgreSQL at 127.0.0.1" in errors["down"]
    assert errors["gone"].startswith("step 'gone': CSV file not found: gone.csv")
    assert PASSWORD not in json.dumps(plan)
    assert state(targets, mysql_db, pg_db) == before

    capsys.readouterr()
    assert main(["run", name, "--dry-run"]) == 1
    text = capsys.readouterr().out
    assert "FAILS" in text and "Plan: the run would fail (5 step(s) above)" in text


def test_sql_sources_are_probed_and_their_columns_reach_the_writer(
        targets: Path, mysql_db: MySQLDatabase, pg_db: PostgresDatabase, capsys: pytest.CaptureFixture[str]) -> None:
    name = pipeline(targets, [
        {"id": "src", "component": "mysql.extractor", "mode": "read",
         "config": {"connection": "@mysql.main", "query": "SELECT id, name AS label FROM t_append"}},
        {"id": "into-pg", "component": "postgres.writer", "mode": "write", "needs": ["src"],
         "config": {"connection": "@postgres.main", "table": "t_replace", "write_mode": "replace"}},
        {"id": "bad", "component": "mysql.extractor", "mode": "read",
         "config": {"connection": "@mysql.main", "table": "no_such_table"}},
    ])
    plan = dry_run(capsys, name, code=1)
    steps = {s["step"]: s for s in plan["steps"]}
    assert steps["src"]["source"] == f"mysql://127.0.0.1:{mysql_db.port}/{mysql_db.database}#query"
    assert steps["src"]["detail"].endswith(": 2 columns")
    # (id, label) differs from t_replace's (id, name): replace rebuilds the table from the input's columns.
    assert steps["into-pg"]["action"] == "replace" and "rebuilt" in steps["into-pg"]["detail"]
    assert "no_such_table" in steps["bad"]["error"] and "doesn't exist" in steps["bad"]["error"]


def test_manifests_and_last_compile_plan_without_a_run_session(targets: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    name = pipeline(targets, [READ, write("w", "duckdb.writer", "t_new")])
    assert main(["compile", name]) == 0
    sessions = sorted(p.name for p in (targets / "logs").iterdir())
    assert dry_run(capsys, "--last-compile")["steps"][1]["action"] == "create"
    manifest = next((targets / "logs").glob("compile_*/compiled/manifest.yaml"))
    assert dry_run(capsys, str(manifest))["ok"] is True
    assert dry_run(capsys, str(manifest.parent))["ok"] is True
    assert sorted(p.name for p in (targets / "logs").iterdir()) == sessions  # no run_<ts> session


@pytest.mark.parametrize("flags", [["--sandbox", "local"], ["--e2b"], ["--step-timeout", "5"]])
def test_sandbox_flags_are_refused(targets: Path, flags: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    name = pipeline(targets, [READ])
    assert main(["run", name, "--dry-run", *flags]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and ("does not take --sandbox or --e2b" in err or "only to sandbox runs" in err)
    assert not (targets / "logs").exists()


# --------------------------------------------------------------------------------------------- the driver's hook

HOOKED_SPEC = """
name: test.hooked
version: 1.0.0
description: A writer that plans itself (test support).
modes: [write]
driver: tests.cli.test_dry_run:HookedWriter
config:
  type: object
  additionalProperties: false
  properties:
    where: {type: string}
"""


class HookedConfig(DriverConfig):
    where: str = "memory://nowhere"


class HookedWriter(Driver[HookedConfig]):
    config_model = HookedConfig

    def run(self, *, step_id: str, config: HookedConfig, inputs: StepInputs, ctx: StepContext) -> StepOutputs:
        raise AssertionError("a dry run never runs a step")

    def plan(self, *, step_id: str, config: HookedConfig, input_columns: tuple[str, ...] | None) -> StepPlan | None:
        if config.where == "boom":
            raise KeyError("no such place")
        return StepPlan(target=config.where, action="append", detail=f"input {input_columns}")


def test_a_components_own_plan_hook_comes_first() -> None:
    component = Component(spec=parse_spec(HOOKED_SPEC, origin="tests/cli/test_dry_run.py"), driver=HookedWriter)
    plan = plan_step("w", component, HookedConfig(), ("a", "b"))
    assert plan == StepPlan(target="memory://nowhere", action="append", detail="input ('a', 'b')")
    with pytest.raises(DriverError, match=r"step 'w': planning failed: KeyError: 'no such place'"):
        plan_step("w", component, HookedConfig(where="boom"), None)


def test_nothing_is_written_even_for_a_missing_duckdb_file(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "in.csv").write_text("id\n1\n", encoding="utf-8")
    into_t = {"component": "duckdb.writer", "mode": "write", "needs": ["read"],
              "config": {"path": "deep/new.duckdb", "table": "t"}}
    name = pipeline(project, [READ, {"id": "first", **into_t}, {"id": "again", **into_t},
                              {"id": "csv", "component": "filesystem.csv_writer", "mode": "write", "needs": ["read"],
                               "config": {"path": "deep/t.csv"}}])
    first, again, csv = dry_run(capsys, name)["steps"][1:]
    assert (first["action"], first["target_exists"]) == ("create", False)
    assert (csv["action"], csv["target_exists"]) == ("create", False)
    # The second write finds the table the first one creates.
    assert (again["action"], again["target_exists"]) == ("append", True)
    assert again["detail"] == "created by step 'first' earlier in this run, then: append"
    assert sorted(os.listdir(project)) == ["in.csv", name]  # no folder, no file, no logs


# --------------------------------------------------------------------------------------------- Supabase

SUPABASE_KEY = "dry-run-service-key-1123"


def test_supabase_steps_are_planned_on_every_path_with_reads_only(project: Path, pg_db: PostgresDatabase,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    connection = pg_db.connect()
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS sb_rows, sb_missing; CREATE TABLE sb_rows (id bigint PRIMARY KEY, "
                       "name text); INSERT INTO sb_rows VALUES (8, 'old')")
    server = OpenApiPostgrestServer(pg_db.dsn, api_key=SUPABASE_KEY)
    try:
        (project / "in.csv").write_text("id,name\n1,one\n", encoding="utf-8")
        (project / "osiris_connections.yaml").write_text(yaml.safe_dump({"connections": {"supabase": {
            "rest": {"url": server.url, "service_role_key": SUPABASE_KEY, "sql_url": server.sql_url},
            "dsn": {"url": server.url, "service_role_key": SUPABASE_KEY, "pg_dsn": pg_db.dsn},
        }}}), encoding="utf-8")

        def sb_write(step_id: str, table: str, mode: str, alias: str) -> dict[str, Any]:
            return {"id": step_id, "component": "supabase.writer", "mode": "write", "needs": ["read"],
                    "config": {"connection": f"@supabase.{alias}", "table": table, "write_mode": mode,
                               **({"primary_key": ["id"]} if mode == "upsert" else {})}}

        def sb_read(step_id: str, alias: str, **config: Any) -> dict[str, Any]:
            return {"id": step_id, "component": "supabase.extractor", "mode": "read",
                    "config": {"connection": f"@supabase.{alias}", **config}}

        name = pipeline(project, [
            READ, sb_write("rest-append", "sb_rows", "append", "rest"),
            sb_write("rest-new", "sb_missing", "replace", "rest"), sb_write("dsn-upsert", "sb_rows", "upsert", "dsn"),
            sb_write("dsn-new", "sb_missing", "append", "dsn"),
            sb_read("rest-table", "rest", table="sb_rows"), sb_read("rest-gone", "rest", table="sb_gone"),
            sb_read("dsn-query", "dsn", query="SELECT id FROM sb_rows"),
        ])
        plan = dry_run(capsys, name, code=1)
        steps = {s["step"]: s for s in plan["steps"]}
        assert {k: (steps[k]["action"], steps[k]["target_exists"]) for k in
                ("rest-append", "rest-new", "dsn-upsert", "dsn-new")} == {
            "rest-append": ("append", True), "rest-new": ("create", False), "dsn-upsert": ("upsert", True),
            "dsn-new": ("append", True)}  # the same table: rest-new creates it first
        assert steps["dsn-new"]["detail"] == "created by step 'rest-new' earlier in this run, then: append"
        assert steps["rest-append"]["target"] == f"{server.url}/public.sb_rows"
        assert steps["rest-table"]["detail"] == f"reads table public.sb_rows through PostgREST at 127.0.0.1:" \
                                                f"{server.url.rsplit(':', 1)[1]}: 2 columns"
        assert "table public.sb_gone is not in PostgREST's schema cache" in steps["rest-gone"]["error"]
        # (a `query` through PostgREST alone is refused at compile time by the spec's rules: tests/core)
        assert steps["dsn-query"]["error"] is None and steps["dsn-query"]["source"] == f"{server.url}/#query"
        assert SUPABASE_KEY not in json.dumps(plan)
        assert {method for method, path in server.requests if path.startswith("/rest/")} <= {"GET", "HEAD"}
        queries = [json.loads(r.body)["query"] for r in server.log if r.path == "/sql"]
        assert queries and all(q.lstrip().upper().startswith("SELECT") for q in queries)
        with connection.cursor() as cursor:
            cursor.execute("SELECT to_regclass('sb_missing') IS NULL, (SELECT count(*) FROM sb_rows), "
                           "(SELECT count(*) FROM pg_class WHERE relname LIKE '\\_osiris\\_stage\\_%')")
            assert cursor.fetchone() == (True, 1, 0)
    finally:
        server.stop()
        connection.close()
