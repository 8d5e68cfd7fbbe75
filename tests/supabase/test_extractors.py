"""postgres.extractor and supabase.extractor against the real PostgreSQL (and PostgREST test server)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import yaml

from osiris_core.connections import Connections
from osiris_core.errors import CompileError
from osiris_core.registry import ComponentRegistry
from tests.supabase.conftest import SERVICE_KEY
from tests.support.databases import PostgresDatabase
from tests.support.postgrest_server import PostgrestServer
from tests.support.runs import assert_succeeded, failed_error, run_pipeline, step


def seed_types(pg_db: PostgresDatabase) -> None:
    with pg_db.connect() as connection, connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS typed")
        cursor.execute('CREATE TABLE typed (id BIGINT PRIMARY KEY, amount NUMERIC(12,3), seen TIMESTAMPTZ, '
                       'day DATE, "Order" TEXT, ok BOOLEAN, raw BYTEA)')
        cursor.execute("INSERT INTO typed SELECT i, i * 1.125, TIMESTAMPTZ '2024-01-01 00:00:00+00' + i * "
                       "INTERVAL '1 hour', DATE '2024-01-01' + i, 'o' || i, i % 2 = 0, '\\x00ff' "
                       "FROM generate_series(1, 2500) AS i")
        cursor.execute("INSERT INTO typed (id) VALUES (9999)")
        # Since 2026 Supabase grants a new table to no API role: its owner grants what the Data API may read.
        cursor.execute("GRANT SELECT ON typed TO service_role")


def connections(project: Path, pg_db: PostgresDatabase, server: PostgrestServer, *, with_pg_dsn: bool) -> Connections:
    supabase: dict[str, Any] = {"url": server.url, "service_role_key": SERVICE_KEY}
    if with_pg_dsn:
        supabase["pg_dsn"] = pg_db.dsn
    path = project / "osiris_connections.yaml"
    path.write_text(yaml.safe_dump({"connections": {
        "postgres": {"main": {"host": pg_db.host, "port": pg_db.port, "database": pg_db.database,
                              "user": pg_db.user}},
        "supabase": {"main": supabase}}}))
    return Connections.load(path)


def to_parquet(step_id: str, need: str) -> dict[str, Any]:
    return {"id": step_id, "component": "duckdb.writer", "mode": "write", "needs": [need],
            "config": {"path": "out.duckdb", "table": step_id, "write_mode": "replace"}}


def read_back(project: Path, table: str) -> pa.Table:
    import duckdb

    with duckdb.connect(str(project / "out.duckdb")) as con:
        return con.execute(f"SELECT * FROM {table} ORDER BY id").fetch_arrow_table()


def test_postgres_extractor_keeps_types_and_streams(project: Path, registry: ComponentRegistry,
                                                    pg_db: PostgresDatabase, postgrest: PostgrestServer) -> None:
    seed_types(pg_db)
    conns = connections(project, pg_db, postgrest, with_pg_dsn=True)
    run = run_pipeline(registry, project, [
        {"id": "read", "component": "postgres.extractor", "mode": "read",
         "config": {"connection": "@postgres.main", "table": "typed"}},
        to_parquet("copy", "read")], connections=conns)
    assert_succeeded(run)
    assert step(run, "read").rows_out == 2501
    table = read_back(project, "copy")
    assert table.schema.field("amount").type == pa.decimal128(12, 3)
    first = table.slice(0, 1).to_pylist()[0]
    assert first["amount"] == Decimal("1.125") and first["Order"] == "o1" and first["ok"] is False
    assert first["day"] == dt.date(2024, 1, 2) and first["raw"] == b"\x00\xff"
    assert first["seen"].astimezone(dt.UTC) == dt.datetime(2024, 1, 1, 1, tzinfo=dt.UTC)
    assert table.slice(2500, 1).to_pylist()[0]["amount"] is None


def test_postgres_extractor_query_columns_limit(project: Path, registry: ComponentRegistry,
                                                pg_db: PostgresDatabase, postgrest: PostgrestServer) -> None:
    seed_types(pg_db)
    conns = connections(project, pg_db, postgrest, with_pg_dsn=True)
    run = run_pipeline(registry, project, [
        {"id": "q", "component": "postgres.extractor", "mode": "read",
         "config": {"connection": "@postgres.main", "query": 'SELECT id, "Order" FROM typed WHERE id <= 10;'}},
        to_parquet("byquery", "q"),
        {"id": "t", "component": "postgres.extractor", "mode": "read",
         "config": {"connection": "@postgres.main", "table": "typed", "columns": ["id"], "limit": 7}},
        to_parquet("bytable", "t")], connections=conns)
    assert_succeeded(run)
    assert read_back(project, "byquery").column_names == ["id", "Order"]
    assert read_back(project, "byquery").num_rows == 10
    assert read_back(project, "bytable").column_names == ["id"] and read_back(project, "bytable").num_rows == 7
    with pytest.raises(CompileError, match="query and table exclude each other"):  # refused before running
        run_pipeline(registry, project, [
            {"id": "both", "component": "postgres.extractor", "mode": "read",
             "config": {"connection": "@postgres.main", "table": "typed", "query": "select 1"}}], connections=conns)
    missing = run_pipeline(registry, project, [
        {"id": "nope", "component": "postgres.extractor", "mode": "read",
         "config": {"connection": "@postgres.main", "table": "no_such_table"}}], connections=conns)
    assert "does not exist" in failed_error(missing, "nope")


@pytest.mark.parametrize("with_pg_dsn", [True, False], ids=["pg_dsn", "postgrest"])
def test_supabase_extractor_reads_a_table_in_pages(project: Path, registry: ComponentRegistry,
                                                   pg_db: PostgresDatabase, postgrest: PostgrestServer,
                                                   with_pg_dsn: bool) -> None:
    seed_types(pg_db)
    postgrest.reload_schema()
    conns = connections(project, pg_db, postgrest, with_pg_dsn=with_pg_dsn)
    before = len(postgrest.requests)
    run = run_pipeline(registry, project, [
        {"id": "read", "component": "supabase.extractor", "mode": "read",
         "config": {"connection": "@supabase.main", "table": "typed", "columns": ["id", "Order", "ok"],
                    "order_by": ["id"], "page_size": 1000}},
        to_parquet("copy", "read")], connections=conns)
    assert_succeeded(run)
    table = read_back(project, "copy")
    assert table.num_rows == 2501
    assert table.column("id").to_pylist() == [*range(1, 2501), 9999]
    assert table.slice(0, 1).to_pylist()[0] == {"id": 1, "Order": "o1", "ok": False}
    rest_reads = [r for r in postgrest.requests[before:] if r == ("GET", "/rest/v1/typed")]
    assert len(rest_reads) == (0 if with_pg_dsn else 4)  # three pages, then the empty one that ends the read


def test_supabase_extractor_query_needs_pg_dsn(project: Path, registry: ComponentRegistry,
                                               pg_db: PostgresDatabase, postgrest: PostgrestServer) -> None:
    conns = connections(project, pg_db, postgrest, with_pg_dsn=False)
    with pytest.raises(CompileError, match="pg_dsn is required when query is set"):  # refused before running
        run_pipeline(registry, project, [
            {"id": "q", "component": "supabase.extractor", "mode": "read",
             "config": {"connection": "@supabase.main", "query": "select 1"}}], connections=conns)


def test_postgres_numeric_values_stay_exact(project: Path, registry: ComponentRegistry,
                                            pg_db: PostgresDatabase, postgrest: PostgrestServer) -> None:
    conns = connections(project, pg_db, postgrest, with_pg_dsn=True)
    query = ("SELECT 1 AS id, 1.123456789012345::numeric(20,15) AS fine, 1.5::numeric(4,1) AS small, "
             "123456789012345678901234567890123::numeric AS huge, 3.14159265358979323846::numeric AS pi")
    run = run_pipeline(registry, project, [
        {"id": "q", "component": "postgres.extractor", "mode": "read",
         "config": {"connection": "@postgres.main", "query": query}},
        to_parquet("exact", "q")], connections=conns)
    assert_succeeded(run)
    row = read_back(project, "exact").to_pylist()[0]
    assert row["fine"] == Decimal("1.123456789012345") and row["small"] == Decimal("1.5")
    assert row["huge"] == "123456789012345678901234567890123" and row["pi"] == "3.14159265358979323846"


def test_postgres_tables_with_an_integer_key_are_read_in_key_pages(
        project: Path, registry: ComponentRegistry, pg_db: PostgresDatabase, postgrest: PostgrestServer,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from osiris_drivers.sql import pages

    monkeypatch.setattr(pages, "PAGE_ROWS", 1_000)
    seed_types(pg_db)
    conns = connections(project, pg_db, postgrest, with_pg_dsn=True)
    run = run_pipeline(registry, project, [
        {"id": "all", "component": "postgres.extractor", "mode": "read",
         "config": {"connection": "@postgres.main", "table": "typed"}},
        to_parquet("paged", "all"),
        {"id": "some", "component": "postgres.extractor", "mode": "read",
         "config": {"connection": "@postgres.main", "table": "typed", "columns": ["amount"], "limit": 1_500}},
        to_parquet("limited", "some")], connections=conns)
    assert_succeeded(run)
    paged = read_back(project, "paged")
    assert paged.column("id").to_pylist() == [*range(1, 2501), 9999]
    assert paged.schema.field("amount").type == pa.decimal128(12, 3)
    assert paged.column("amount").to_pylist()[1_999] == Decimal("2250.000")
    import duckdb

    with duckdb.connect(str(project / "out.duckdb")) as con:
        limited = con.execute("SELECT * FROM limited").fetch_arrow_table()
    assert limited.column_names == ["amount"] and limited.num_rows == 1_500
    assert limited.column("amount").to_pylist()[-1] == Decimal("1687.500")


def test_wide_numerics_travel_exactly(project: Path, registry: ComponentRegistry,
                                      pg_db: PostgresDatabase, postgrest: PostgrestServer) -> None:
    conns = connections(project, pg_db, postgrest, with_pg_dsn=True)
    query = ("SELECT 1 AS id, 9999999999999999999::numeric(19,0) AS wide, "
             "99999999999999999999999999.99::numeric(28,2) AS money, 12345.6789::numeric(28,10) AS fine")
    run = run_pipeline(registry, project, [
        {"id": "q", "component": "postgres.extractor", "mode": "read",
         "config": {"connection": "@postgres.main", "query": query}},
        to_parquet("wide", "q")], connections=conns)
    assert_succeeded(run)
    row = read_back(project, "wide").to_pylist()[0]
    assert row["wide"] == Decimal("9999999999999999999")
    assert row["money"] == Decimal("99999999999999999999999999.99")
    assert row["fine"] == Decimal("12345.6789")
