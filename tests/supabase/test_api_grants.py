"""The Data API runs requests as the key's role, and since 2026 Supabase grants new tables to none: the writer
grants its staging table to the key's role and a table it creates to service_role (never to anon), in the
transaction that creates them; a schema the Data API does not expose is named with the setting to change."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from postgrest import APIError
from supabase import ClientOptions, create_client

from osiris_core.connections import Connections
from osiris_core.registry import ComponentRegistry
from tests.supabase.conftest import ANON_KEY, JWT_SECRET, SERVICE_KEY
from tests.supabase.pipelines import SAMPLE, pipeline, stage_tables, table_rows
from tests.support.databases import PostgresDatabase, drop_postgres_database, fresh_postgres_database
from tests.support.postgrest_server import PostgrestServer
from tests.support.runs import assert_succeeded, failed_error, run_pipeline, step, write_csv

EXPECTED = [(r[0], r[1], r[2], r[3], r[4], r[5]) for r in SAMPLE]


def connections(project: Path, pg_db: PostgresDatabase, server: PostgrestServer) -> Connections:
    rest = {"url": server.url, "service_role_key": SERVICE_KEY, "sql_url": server.sql_url}
    path = project / "osiris_connections.yaml"
    path.write_text(yaml.safe_dump({"connections": {"supabase": {
        "rest": rest, "copy": {**rest, "pg_dsn": pg_db.dsn}}}}), encoding="utf-8")
    return Connections.load(path)


def privileges(pg_db: PostgresDatabase, role: str, table: str) -> list[bool]:
    with pg_db.connect() as connection, connection.cursor() as cursor:
        cursor.execute("SELECT has_table_privilege(%s, %s, 'SELECT'), has_table_privilege(%s, %s, 'INSERT')",
                       (role, table, role, table))
        row = cursor.fetchone()
    assert row is not None
    return [bool(v) for v in row]


def write_then_read(project: Path, registry: ComponentRegistry, conns: Connections, writer: str,
                    table: str, **config: Any) -> Any:
    steps = yaml.safe_load(pipeline(project, "grants", SAMPLE, {"table": table, "write_mode": "replace",
                                                                "primary_key": ["region", "id"],
                                                                **config}).read_text())["steps"]
    steps[-1]["config"]["connection"] = f"@supabase.{writer}"
    return run_pipeline(registry, project, [
        *steps,
        {"id": "readback", "component": "supabase.extractor", "mode": "read",  # runs next: file order
         "config": {"connection": "@supabase.rest", "table": table}},
        write_csv("out", "readback", "out/readback.csv")], connections=conns)


@pytest.mark.parametrize("writer", ["rest", "copy"])
def test_a_created_table_is_readable_through_postgrest_at_once(
        writer: str, project: Path, registry: ComponentRegistry, pg_db: PostgresDatabase,
        postgrest: PostgrestServer) -> None:
    """Through PostgREST the stage is written as service_role, and the extractor reads the new table as
    service_role in the very next step (the schema cache reloads asynchronously meanwhile)."""
    table = f"granted_{writer}"
    before = len(postgrest.roles)
    run = write_then_read(project, registry, connections(project, pg_db, postgrest), writer, table)
    assert_succeeded(run)
    assert table_rows(pg_db, table) == EXPECTED
    assert step(run, "readback").rows_out == 5
    assert set(postgrest.roles[before:]) == {"service_role"}
    assert privileges(pg_db, "service_role", f"public.{table}") == [True, True]
    assert privileges(pg_db, "anon", f"public.{table}") == [False, False]  # no RLS on it: anon gets nothing
    assert privileges(pg_db, "authenticated", f"public.{table}") == [False, False]
    anon = create_client(postgrest.url, ANON_KEY, options=ClientOptions(postgrest_client_retry=False))
    with pytest.raises(APIError) as denied:
        anon.table(table).select("*").execute()
    assert denied.value.code == "42501"
    assert stage_tables(pg_db) == []


def test_a_table_the_writer_keeps_keeps_its_grants(project: Path, registry: ComponentRegistry,
                                                   pg_db: PostgresDatabase, postgrest: PostgrestServer) -> None:
    """replace into a matching table empties it in place: the owner's own grants (here to anon) survive."""
    with pg_db.connect() as connection, connection.cursor() as cursor:
        cursor.execute('DROP TABLE IF EXISTS kept; CREATE TABLE kept (region TEXT, id BIGINT, "order" TEXT, '
                       '"MixedCase" TEXT, amount NUMERIC(12,2), seen_at TIMESTAMPTZ, PRIMARY KEY (region, id)); '
                       "GRANT SELECT ON kept TO anon, service_role")
    postgrest.reload_schema()
    run = write_then_read(project, registry, connections(project, pg_db, postgrest), "rest", "kept")
    assert_succeeded(run)
    assert privileges(pg_db, "anon", "public.kept") == [True, False]


def test_an_unexposed_schema_is_named_with_its_setting_and_nothing_is_created(
        project: Path, registry: ComponentRegistry, pg_db: PostgresDatabase, postgrest: PostgrestServer) -> None:
    conns = connections(project, pg_db, postgrest)
    steps = yaml.safe_load(pipeline(project, "hidden", SAMPLE, {"table": "t", "schema": "hidden_schema"})
                           .read_text())["steps"]
    steps[-1]["config"]["connection"] = "@supabase.rest"
    run = run_pipeline(registry, project, steps, connections=conns)
    error = failed_error(run, "load")
    assert "PGRST106" in error and "Invalid schema: hidden_schema" in error
    assert "Exposed schemas" in error and "PGRST_DB_SCHEMAS" in error and "pg_dsn" in error
    with pg_db.connect() as connection, connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_namespace WHERE nspname = 'hidden_schema'")
        assert cursor.fetchone() == (0,)
    assert stage_tables(pg_db) == []
    read = run_pipeline(registry, project, [
        {"id": "read", "component": "supabase.extractor", "mode": "read",
         "config": {"connection": "@supabase.rest", "schema": "hidden_schema", "table": "t"}}],
        connections=conns, name="read-hidden")
    error = failed_error(read, "read")
    assert "does not expose that schema" in error and "Exposed schemas" in error


@pytest.fixture
def legacy_db() -> Iterator[PostgresDatabase]:
    """A database of its own: the old default privileges would otherwise grant the other tests' tables."""
    database = fresh_postgres_database("osiris_legacy")
    yield database
    drop_postgres_database(database)


def test_an_older_project_that_grants_everything_keeps_the_load_log_private(
        project: Path, registry: ComponentRegistry, legacy_db: PostgresDatabase) -> None:
    """Projects from before the change grant every new table in public to anon: the writer's `_osiris_loads`
    still is not readable with the anon key (row-level security on, privileges revoked)."""
    with PostgrestServer(legacy_db.dsn, jwt_secret=JWT_SECRET, grants="legacy") as server:
        run = write_then_read(project, registry, connections(project, legacy_db, server), "rest", "legacy_granted")
        assert_succeeded(run)
        assert privileges(legacy_db, "anon", "public.legacy_granted") == [True, True]  # the project's default
        assert privileges(legacy_db, "anon", "public._osiris_loads") == [False, False]
        server.reload_schema()
        anon = create_client(server.url, ANON_KEY, options=ClientOptions(postgrest_client_retry=False))
        with pytest.raises(APIError) as denied:
            anon.table("_osiris_loads").select("*").execute()
        assert denied.value.code == "42501"
