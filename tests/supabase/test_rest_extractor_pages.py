"""supabase.extractor through PostgREST returns every row exactly once: pages go on until an empty one (Supabase
caps each response at max-rows, 1000), each ordered by the primary key PostgREST reports; a table without one is
read only if it fits one page, and transient failures of a page are retried."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import yaml

from osiris_core.connections import Connections
from osiris_core.registry import ComponentRegistry
from tests.supabase.conftest import SERVICE_KEY
from tests.support.databases import PostgresDatabase
from tests.support.postgrest_server import PostgrestServer
from tests.support.runs import assert_succeeded, events, failed_error, run_pipeline, step


def seed(pg_db: PostgresDatabase, table: str, rows: int, *, key: bool) -> None:
    with pg_db.connect() as connection, connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {table}")
        cursor.execute(f"CREATE TABLE {table} (id BIGINT {'PRIMARY KEY' if key else ''}, tag TEXT)")
        # Physical order differs from key order, so an unordered read shows it.
        cursor.execute(f"INSERT INTO {table} SELECT i, 't' || i FROM generate_series({rows}, 1, -1) AS i")
        cursor.execute(f"GRANT SELECT ON {table} TO service_role")


def connections(project: Path, server: PostgrestServer) -> Connections:
    path = project / "osiris_connections.yaml"
    path.write_text(yaml.safe_dump({"connections": {"supabase": {"main": {
        "url": server.url, "service_role_key": SERVICE_KEY}}}}), encoding="utf-8")
    return Connections.load(path)


def read(registry: ComponentRegistry, project: Path, server: PostgrestServer, table: str,
         **config: Any) -> Any:
    return run_pipeline(registry, project, [
        {"id": "read", "component": "supabase.extractor", "mode": "read",
         "config": {"connection": "@supabase.main", "table": table, **config}},
        {"id": "out", "component": "duckdb.writer", "mode": "write", "needs": ["read"],
         "config": {"path": "out.duckdb", "table": table, "write_mode": "replace"}}],
        connections=connections(project, server), name=f"read_{table}")


def ids(project: Path, table: str) -> list[int]:
    import duckdb

    with duckdb.connect(str(project / "out.duckdb")) as con:
        return [int(r[0]) for r in con.execute(f"SELECT id FROM {table}").fetchall()]


def test_pages_larger_than_max_rows_still_read_every_row(project: Path, registry: ComponentRegistry,
                                                         pg_db: PostgresDatabase, postgrest: PostgrestServer) -> None:
    seed(pg_db, "capped", 2_500, key=True)
    postgrest.reload_schema()
    before = len(postgrest.log)
    run = read(registry, project, postgrest, "capped", page_size=5_000)
    assert_succeeded(run)
    assert step(run, "read").rows_out == 2_500
    assert ids(project, "capped") == list(range(1, 2_501))  # ordered by the key, none skipped or repeated
    pages = [r for r in postgrest.log[before:] if r.path == "/rest/v1/capped"]
    assert [parse_qs(r.query)["offset"][0] if "offset" in r.query else "0" for r in pages] == \
        ["0", "1000", "2000", "2500"]
    assert all(parse_qs(r.query)["order"] == ['"id".asc'] for r in pages)  # the key PostgREST reported


def test_order_by_comes_first_and_the_key_breaks_ties(project: Path, registry: ComponentRegistry,
                                                      pg_db: PostgresDatabase, postgrest: PostgrestServer) -> None:
    seed(pg_db, "tied", 30, key=True)
    postgrest.reload_schema()
    before = len(postgrest.log)
    run = read(registry, project, postgrest, "tied", order_by=["tag"], page_size=7)
    assert_succeeded(run)
    assert sorted(ids(project, "tied")) == list(range(1, 31))
    pages = [r for r in postgrest.log[before:] if r.path == "/rest/v1/tied"]
    assert {parse_qs(r.query)["order"][0] for r in pages} == {'"tag".asc,"id".asc'}


def test_a_table_without_a_key_is_read_only_if_it_fits_one_page(
        project: Path, registry: ComponentRegistry, pg_db: PostgresDatabase, postgrest: PostgrestServer) -> None:
    seed(pg_db, "keyless", 1_500, key=False)
    postgrest.reload_schema()
    error = failed_error(read(registry, project, postgrest, "keyless"), "read")
    assert "no primary key PostgREST reports, so its pages have no stable order" in error
    assert "set order_by" in error
    assert_succeeded(read(registry, project, postgrest, "keyless", order_by=["id"]))
    assert ids(project, "keyless") == list(range(1, 1_501))
    small = read(registry, project, postgrest, "keyless", limit=900)
    assert_succeeded(small)
    assert step(small, "read").rows_out == 900


def test_a_page_that_fails_at_the_gateway_is_read_again(project: Path, registry: ComponentRegistry,
                                                        pg_db: PostgresDatabase, postgrest: PostgrestServer) -> None:
    seed(pg_db, "flaky_read", 1_200, key=True)
    postgrest.reload_schema()
    postgrest.fail_next(2, 502, methods=["GET"], path="/rest/v1/flaky_read")
    try:
        run = read(registry, project, postgrest, "flaky_read", page_size=1_000)
    finally:
        postgrest.fail_next(0)
    assert_succeeded(run)
    assert ids(project, "flaky_read") == list(range(1, 1_201))
    retries = [e for e in events(run) if e["event"] == "retry"]
    assert len(retries) == 2 and retries[0]["error"].startswith("HTTP 502: ")
    postgrest.fail_next(1, 502, methods=["GET"], path="/rest/v1/")  # the description is asked again too
    try:
        again = read(registry, project, postgrest, "flaky_read", page_size=1_000)
    finally:
        postgrest.fail_next(0)
    assert_succeeded(again)
    assert ids(project, "flaky_read") == list(range(1, 1_201))
