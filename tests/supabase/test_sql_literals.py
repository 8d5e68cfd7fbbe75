"""SQL sent as text (the HTTP SQL channel) and PostgREST query strings stay injection-proof whatever the names
and whatever the server's settings: real PostgreSQL with standard_conforming_strings = off, the PostgREST test
server with PostgREST's own field-name grammar."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg2
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from osiris_core.connections import Connections
from osiris_core.registry import ComponentRegistry
from osiris_drivers.postgres.dialect import POSTGRES, quote_literal
from tests.supabase.conftest import SERVICE_KEY
from tests.support.databases import PostgresDatabase, drop_postgres_database, fresh_postgres_database
from tests.support.postgrest_server import PostgrestServer
from tests.support.runs import assert_succeeded, failed_error, run_pipeline, step

quote_ident = POSTGRES.quote_ident
EVIL_TABLE = "evil\\'; DROP TABLE victim; --"
"""Under standard_conforming_strings = off, `'evil\\''` ends after `evil'` and the DROP runs."""
EVIL_SCHEMA = "sch\\'ema"


@pytest.fixture(scope="module")
def nonstandard_db() -> Iterator[PostgresDatabase]:
    """A database whose sessions read backslashes in '…' literals as escapes (the pre-9.1 behaviour)."""
    database = fresh_postgres_database("osiris_scs")
    with database.connect() as connection, connection.cursor() as cursor:
        cursor.execute(f"ALTER DATABASE {quote_ident(database.database)} SET standard_conforming_strings = off")
    yield database
    drop_postgres_database(database)


@pytest.fixture(scope="module")
def nonstandard_postgrest(nonstandard_db: PostgresDatabase) -> Iterator[PostgrestServer]:
    with PostgrestServer(nonstandard_db.dsn, api_key=SERVICE_KEY) as server:
        yield server


def run_sql(database: PostgresDatabase, *statements: str) -> list[tuple[Any, ...]]:
    rows: list[tuple[Any, ...]] = []
    with database.connect() as connection, connection.cursor() as cursor:
        for statement in statements:
            cursor.execute(statement)
            rows = list(cursor.fetchall()) if cursor.description else []
    return rows


def tables(database: PostgresDatabase) -> set[tuple[str, str]]:
    return {(str(s), str(t)) for s, t in run_sql(
        database, "SELECT schemaname, tablename FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', "
                  "'information_schema')")}


def connections(project: Path, server: PostgrestServer, **extra: Any) -> Connections:
    path = project / "osiris_connections.yaml"
    fields = {"url": server.url, "service_role_key": SERVICE_KEY, "sql_url": server.sql_url, **extra}
    path.write_text(yaml.safe_dump({"connections": {"supabase": {"main": fields}}}), encoding="utf-8")
    return Connections.load(path)


def write_steps(schema: str, table: str, mode: str) -> list[dict[str, Any]]:
    return [
        {"id": "gen", "component": "duckdb.processor", "mode": "transform",
         "config": {"query": "SELECT * FROM (VALUES (1, 'it''s \\ ok'), (2, 'b')) AS t(id, name)"}},
        {"id": "load", "component": "supabase.writer", "mode": "write", "needs": ["gen"],
         "config": {"connection": "@supabase.main", "schema": schema, "table": table, "write_mode": mode,
                    "create_if_missing": True, "ddl_channel": "http_sql"}},
    ]


def test_the_test_database_really_reads_backslash_escapes(nonstandard_db: PostgresDatabase,
                                                          nonstandard_postgrest: PostgrestServer) -> None:
    assert run_sql(nonstandard_db, "SHOW standard_conforming_strings") == [("off",)]


@pytest.mark.parametrize(("schema", "data_path"), [("public", "postgrest"), (EVIL_SCHEMA, "copy")])
def test_http_sql_names_with_backslashes_and_quotes_drop_nothing_and_round_trip(
        project: Path, registry: ComponentRegistry, nonstandard_db: PostgresDatabase,
        nonstandard_postgrest: PostgrestServer, schema: str, data_path: str) -> None:
    """DDL over HTTP SQL; rows through PostgREST, or by COPY over pg_dsn for a schema PostgREST does not expose."""
    run_sql(nonstandard_db, "DROP TABLE IF EXISTS victim", "CREATE TABLE victim (id int)",
            "INSERT INTO victim VALUES (42)")
    conns = connections(project, nonstandard_postgrest,
                        **({"pg_dsn": nonstandard_db.dsn} if data_path == "copy" else {}))
    first = run_pipeline(registry, project, write_steps(schema, EVIL_TABLE, "append"), connections=conns)
    assert_succeeded(first)
    assert run_sql(nonstandard_db, "SELECT id FROM victim") == [(42,)]  # not dropped
    # The second run finds the table by its exact name (the literal matched it) and appends.
    second = run_pipeline(registry, project, write_steps(schema, EVIL_TABLE, "append"), connections=conns,
                          name="again")
    assert_succeeded(second)
    assert step(second, "load").rows_out == 2
    assert run_sql(nonstandard_db, f"SELECT id, name FROM {quote_ident(schema)}.{quote_ident(EVIL_TABLE)} "
                                   "ORDER BY id, name") == [(1, "it's \\ ok")] * 2 + [(2, "b")] * 2
    assert (schema, EVIL_TABLE) in tables(nonstandard_db)
    assert not [t for _, t in tables(nonstandard_db) if t.startswith("_osiris_stage_")]


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet=st.sampled_from(["\\", "'", '"', "a", "é", " ", ";", "-", "$", "\n", "E"]), max_size=12))
def test_a_literal_reads_back_exactly_under_either_setting(pg_db: PostgresDatabase, value: str) -> None:
    for setting in ("off", "on"):
        with psycopg2.connect(pg_db.dsn) as connection, connection.cursor() as cursor:
            cursor.execute(f"SET standard_conforming_strings = {setting}")
            cursor.execute(f"SELECT {quote_literal(value)}, 1")
            assert cursor.fetchall() == [(value, 1)]


# ------------------------------------------------------------------------------------ PostgREST names

ODD_COLUMNS = ["a,b", "f(x)", 'say "hi"', "c:d", "e.f", "back\\slash", " spaced ", "-dash", "x->y", "*"]


def test_postgrest_reads_columns_whatever_their_names(project: Path, registry: ComponentRegistry,
                                                      pg_db: PostgresDatabase, postgrest: PostgrestServer) -> None:
    columns = ", ".join(f"{quote_ident(c)} int" for c in ODD_COLUMNS)
    values = ", ".join(str(i) for i in range(len(ODD_COLUMNS)))
    run_sql(pg_db, "DROP TABLE IF EXISTS odd_names", f"CREATE TABLE odd_names ({columns})",
            f"INSERT INTO odd_names VALUES ({values}), ({values.replace('0', '10', 1)})",
            "GRANT SELECT ON odd_names TO service_role")
    postgrest.reload_schema()
    wanted = list(reversed(ODD_COLUMNS))
    run = run_pipeline(registry, project, [
        {"id": "read", "component": "supabase.extractor", "mode": "read",
         "config": {"connection": "@supabase.main", "table": "odd_names", "columns": wanted,
                    "order_by": ["a,b"], "page_size": 1}},
        {"id": "out", "component": "duckdb.writer", "mode": "write", "needs": ["read"],
         "config": {"path": "out.duckdb", "table": "odd", "write_mode": "replace"}}],
        connections=connections(project, postgrest))
    assert_succeeded(run)
    import duckdb

    with duckdb.connect(str(project / "out.duckdb")) as con:
        result = con.execute("SELECT * FROM odd").fetch_arrow_table()
    assert result.column_names == wanted
    assert result.to_pylist()[0] == {c: ODD_COLUMNS.index(c) for c in wanted}
    assert [row["a,b"] for row in result.to_pylist()] == [0, 10]  # ordered by the quoted column, page by page


def test_a_table_name_that_would_be_a_url_path_is_refused(project: Path, registry: ComponentRegistry,
                                                         postgrest: PostgrestServer) -> None:
    before = len(postgrest.requests)
    run = run_pipeline(registry, project, [
        {"id": "read", "component": "supabase.extractor", "mode": "read",
         "config": {"connection": "@supabase.main", "table": "../../auth/v1/admin/users"}}],
        connections=connections(project, postgrest))
    assert "cannot be read through PostgREST" in failed_error(run, "read")
    assert len(postgrest.requests) == before


def test_postgrest_writes_columns_whatever_their_names(project: Path, registry: ComponentRegistry,
                                                       pg_db: PostgresDatabase, postgrest: PostgrestServer) -> None:
    """`columns=` of the staged inserts (built by postgrest-py, quoted) and the SQL that moves rows in."""
    select = ", ".join(f"{i} AS {quote_ident(c)}" for i, c in enumerate(ODD_COLUMNS))
    run = run_pipeline(registry, project, [
        {"id": "gen", "component": "duckdb.processor", "mode": "transform",
         "config": {"query": f"SELECT {select} UNION ALL SELECT {select}"}},
        {"id": "load", "component": "supabase.writer", "mode": "write", "needs": ["gen"],
         "config": {"connection": "@supabase.main", "table": "odd_written", "write_mode": "replace",
                    "create_if_missing": True, "batch_size": 1}}],
        connections=connections(project, postgrest))
    assert_succeeded(run)
    assert step(run, "load").rows_out == 2
    columns = ", ".join(quote_ident(c) for c in ODD_COLUMNS)
    assert run_sql(pg_db, f"SELECT {columns} FROM odd_written") == [tuple(range(len(ODD_COLUMNS)))] * 2
