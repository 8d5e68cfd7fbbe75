"""A final transaction whose answer is lost (a gateway timeout after PostgreSQL committed, a connection dropped
during COMMIT) is resolved by the load marker, not guessed: the writer reports what happened, so a rerun of an
append never duplicates rows, and says so when even the marker cannot be read."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from osiris_core.connections import Connections
from osiris_core.registry import ComponentRegistry
from tests.supabase.conftest import SERVICE_KEY
from tests.supabase.pipelines import SAMPLE, pipeline, run, stage_tables, table_rows, write_connections
from tests.support.databases import PostgresDatabase, process_tag
from tests.support.pg_proxy import PgProxy
from tests.support.postgrest_server import PostgrestServer

FINALIZE = "WITH written AS"
"""Text only the writer's final transaction contains."""
FENCE = "ON CONFLICT (load_id) DO NOTHING"
EXPECTED = [(r[0], r[1], r[2], r[3], r[4], r[5]) for r in SAMPLE]
PATHS = {"rest": False, "copy": True}
"""Rows through PostgREST or by COPY; the final transaction over HTTP SQL either way."""


def events_of(result: Any) -> list[dict[str, Any]]:
    return [json.loads(x) for x in (result.session.path / "events.jsonl").read_text().splitlines()]


def markers(pg_db: PostgresDatabase) -> list[tuple[Any, ...]]:
    with pg_db.connect() as connection, connection.cursor() as cursor:
        cursor.execute("SELECT load_id, target, committed, rows FROM _osiris_loads ORDER BY at")
        return [tuple(r) for r in cursor.fetchall()]


def append(project: Path, registry: ComponentRegistry, connections: Connections, table: str) -> Any:
    config = {"table": table, "write_mode": "append", "ddl_channel": "http_sql", "batch_size": 2}
    return run(pipeline(project, table, SAMPLE, config), registry, connections, project / "logs")


@pytest.mark.parametrize("lost", [504, 408, 0], ids=["gateway-504", "pg-meta-408", "dropped"])
@pytest.mark.parametrize("path", PATHS)
def test_a_commit_whose_answer_was_lost_is_reported_as_written(
        path: str, lost: int, project: Path, registry: ComponentRegistry, pg_db: PostgresDatabase,
        postgrest: PostgrestServer) -> None:
    connections = write_connections(project, pg_db, postgrest, with_pg_dsn=PATHS[path])
    table = f"lost_{path}_{lost}"
    postgrest.fail_sql_next(1, lost, after_commit=True, matching=FINALIZE)
    try:
        result = append(project, registry, connections, table)
    finally:
        postgrest.fail_sql_next(0)
    assert result.exit_code == 0, result.card.error  # it did commit: the truth, not "left unchanged"
    assert result.card.steps[-1].rows_out == 5
    assert table_rows(pg_db, table) == EXPECTED
    resolved = [e for e in events_of(result) if e["event"] == "commit_resolved"]
    assert len(resolved) == 1 and resolved[0]["committed"] is True and resolved[0]["rows"] == 5
    assert (resolved[0]["load_id"], f"public.{table}", True, 5) in markers(pg_db)
    again = append(project, registry, connections, table)  # the next run appends once more, nothing else
    assert again.exit_code == 0, again.card.error
    assert table_rows(pg_db, table) == sorted(EXPECTED * 2)
    assert stage_tables(pg_db) == []


@pytest.mark.parametrize("path", PATHS)
def test_a_final_transaction_that_never_ran_is_reported_as_not_committed(
        path: str, project: Path, registry: ComponentRegistry, pg_db: PostgresDatabase,
        postgrest: PostgrestServer) -> None:
    connections = write_connections(project, pg_db, postgrest, with_pg_dsn=PATHS[path])
    table = f"never_ran_{path}"
    assert append(project, registry, connections, table).exit_code == 0
    postgrest.fail_sql_next(1, 504, matching=FINALIZE)  # the gateway gave up before pg-meta ran it
    try:
        result = append(project, registry, connections, table)
    finally:
        postgrest.fail_sql_next(0)
    assert result.exit_code == 1
    error = result.card.steps[-1].error or ""
    assert "HTTP 504" in error and "the load marker shows it did not commit" in error
    assert "the table was left unchanged" in error
    assert table_rows(pg_db, table) == EXPECTED
    resolved = [e for e in events_of(result) if e["event"] == "commit_resolved"]
    assert [e["committed"] for e in resolved] == [False]
    assert (resolved[0]["load_id"], f"public.{table}", False, None) in markers(pg_db)
    assert stage_tables(pg_db) == []


def test_when_the_marker_cannot_be_read_the_outcome_is_reported_unknown(
        project: Path, registry: ComponentRegistry, pg_db: PostgresDatabase, postgrest: PostgrestServer) -> None:
    connections = write_connections(project, pg_db, postgrest, with_pg_dsn=False)
    postgrest.fail_sql_next(1, 504, after_commit=True, matching=FINALIZE)
    postgrest.fail_sql_next(10, 503, matching=FENCE)
    try:
        result = append(project, registry, connections, "unknown_outcome")
    finally:
        postgrest.fail_sql_next(0)
    assert result.exit_code == 1
    error = result.card.steps[-1].error or ""
    assert "the outcome is unknown" in error and "unchanged" not in error
    load_id = next(e["load_id"] for e in events_of(result) if e["event"] == "commit_resolved")
    assert f'FROM "public"."_osiris_loads" WHERE load_id = \'{load_id}\'' in error
    assert table_rows(pg_db, "unknown_outcome") == EXPECTED  # it had committed, as the marker says
    assert (load_id, "public.unknown_outcome", True, 5) in markers(pg_db)


def test_a_commit_lost_on_the_psycopg2_connection_is_resolved(
        project: Path, registry: ComponentRegistry, pg_db: PostgresDatabase, postgrest: PostgrestServer) -> None:
    with PgProxy(pg_db.host, pg_db.port) as proxy:
        dsn = f"postgresql://{pg_db.user}@127.0.0.1:{proxy.port}/{pg_db.database}?sslmode=disable&gssencmode=disable"
        path = project / "osiris_connections.yaml"
        path.write_text(yaml.safe_dump({"connections": {"supabase": {"main": {
            "url": postgrest.url, "service_role_key": SERVICE_KEY, "pg_dsn": dsn, "default": True}}}}))
        connections = Connections.load(path)
        config = {"table": "lost_on_copy", "write_mode": "append", "primary_key": ["region", "id"]}
        proxy.drop_commit_after("SET rows =")  # the load's last statement: the next COMMIT is the load's
        result = run(pipeline(project, "copy", SAMPLE, config), registry, connections, project / "logs")
    assert proxy.dropped == 1
    assert result.exit_code == 0, result.card.error
    assert result.card.steps[-1].rows_out == 5
    assert table_rows(pg_db, "lost_on_copy") == EXPECTED
    assert [e["committed"] for e in events_of(result) if e["event"] == "commit_resolved"] == [True]


@pytest.fixture
def restricted_user(pg_db: PostgresDatabase) -> Iterator[str]:
    """A login that may insert into one existing table and create nothing (trust authentication: no password)."""
    role = f"osiris_restricted_{process_tag()}"
    with pg_db.connect() as connection, connection.cursor() as cursor:
        cursor.execute(f'DROP TABLE IF EXISTS restricted_target; DROP ROLE IF EXISTS "{role}"')
        cursor.execute(f'CREATE ROLE "{role}" LOGIN; CREATE TABLE restricted_target (region TEXT, id BIGINT, '
                       '"order" TEXT, "MixedCase" TEXT, amount NUMERIC(12,2), seen_at TIMESTAMPTZ); '
                       f'GRANT SELECT, INSERT ON restricted_target TO "{role}"')
    yield role
    with pg_db.connect() as connection, connection.cursor() as cursor:
        cursor.execute(f'DROP OWNED BY "{role}"; DROP ROLE "{role}"')


def test_a_user_who_cannot_create_the_marker_still_loads_and_says_when_it_cannot_tell(
        project: Path, registry: ComponentRegistry, pg_db: PostgresDatabase, postgrest: PostgrestServer,
        restricted_user: str) -> None:
    with PgProxy(pg_db.host, pg_db.port) as proxy:
        dsn = (f"postgresql://{restricted_user}@127.0.0.1:{proxy.port}/{pg_db.database}"
               "?sslmode=disable&gssencmode=disable")
        path = project / "osiris_connections.yaml"
        path.write_text(yaml.safe_dump({"connections": {"supabase": {"main": {
            "url": postgrest.url, "pg_dsn": dsn, "default": True}}}}))
        connections = Connections.load(path)
        config = {"table": "restricted_target", "write_mode": "append", "create_if_missing": False}
        first = run(pipeline(project, "restricted", SAMPLE, config), registry, connections, project / "logs")
        assert first.exit_code == 0, first.card.error
        proxy.drop_commit_after("COPY")
        second = run(pipeline(project, "restricted", SAMPLE, config), registry, connections, project / "logs")
    assert second.exit_code == 1
    error = second.card.steps[-1].error or ""
    assert "the outcome is unknown" in error and "(no load marker)" in error and "unchanged" not in error
    assert table_rows(pg_db, "restricted_target") == sorted(EXPECTED * 2)  # it had committed
