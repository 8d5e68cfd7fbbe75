"""Incremental reads into Supabase, on the staged path (PostgREST batches, HTTP SQL finish: the state upsert is in
the finishing transaction) and the COPY path (one psycopg2 transaction); and supabase.extractor over pg_dsn."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from osiris_core.errors import InputError
from tests.incremental.support import Project, card, pg_extract, succeeded
from tests.supabase.conftest import JWT_SECRET, SERVICE_KEY, postgrest  # noqa: F401 (the fixture)
from tests.supabase.pipelines import VARIANTS, Variant
from tests.support.postgrest_server import PostgrestServer

PATHS = [v for v in VARIANTS if v.name in ("rest-http_sql", "copy-psycopg2")]


def _connections(proj: Project, server: PostgrestServer, *, with_pg_dsn: bool) -> None:
    document = yaml.safe_load((proj.path / "osiris_connections.yaml").read_text(encoding="utf-8"))
    fields: dict[str, Any] = {"url": server.url, "service_role_key": SERVICE_KEY, "sql_url": server.sql_url}
    if with_pg_dsn:
        fields["pg_dsn"] = proj.pg.dsn
    document["connections"]["supabase"] = {"main": fields}
    (proj.path / "osiris_connections.yaml").write_text(yaml.safe_dump(document), encoding="utf-8")


def _write(schema: str, table: str, variant: Variant) -> dict[str, Any]:
    return {"id": "load", "component": "supabase.writer", "mode": "write", "needs": ["read"],
            "config": {"connection": "@supabase.main", "schema": schema, "table": table, "write_mode": "upsert",
                       "primary_key": ["id"], "ddl_channel": variant.ddl_channel, "batch_size": 2}}


@pytest.fixture
def exposed(proj: Project) -> Iterator[PostgrestServer]:
    """A PostgREST server exposing this test's schema."""
    proj.pg_exec(f"CREATE SCHEMA IF NOT EXISTS {proj.schema}")
    server = PostgrestServer(proj.pg.dsn, schema=proj.schema, jwt_secret=JWT_SECRET)
    try:
        yield server
    finally:
        server.stop()


@pytest.mark.parametrize("variant", PATHS, ids=[v.name for v in PATHS])
def test_supabase_writer_commits_the_cursor_with_the_rows(proj: Project, exposed: PostgrestServer,
                                                         variant: Variant) -> None:
    table = f"inc_{uuid.uuid4().hex[:8]}"
    _connections(proj, exposed, with_pg_dsn=variant.with_pg_dsn)
    # The schema grants the API roles every new table by default, as Supabase's public schema does.
    proj.pg_exec(f"GRANT USAGE, CREATE ON SCHEMA {proj.schema} TO anon, authenticated, service_role",
                 f"ALTER DEFAULT PRIVILEGES IN SCHEMA {proj.schema} GRANT ALL ON TABLES TO anon, authenticated, "
                 "service_role",
                 f"CREATE TABLE {proj.schema}.src (id int PRIMARY KEY, v text, updated_at timestamp(6))",
                 f"INSERT INTO {proj.schema}.src VALUES (1, 'a', '2024-01-01 00:00:00.000001'), "
                 f"(2, 'b', '2024-01-01 00:00:00.000002')")
    steps = [pg_extract("read", proj.schema, "src"), _write(proj.schema, table, variant)]
    succeeded(proj.run(steps))
    proj.pg_exec(f"INSERT INTO {proj.schema}.src VALUES (3, 'tie', '2024-01-01 00:00:00.000002')",
                 f"UPDATE {proj.schema}.src SET v = 'a2', updated_at = '2024-01-01 00:00:00.000003' WHERE id = 1")
    again = succeeded(proj.run(steps))
    inc = card(again, "read").incremental
    assert inc is not None and inc.rows_read == 3
    assert json.loads(inc.cursor_after or "") == [["datetime", "2024-01-01T00:00:00.000003"]]
    assert proj.pg_exec(f"SELECT id, v FROM {proj.schema}.{table} ORDER BY id") == [(1, "a2"), (2, "b"), (3, "tie")]
    state = proj.pg_exec(f"SELECT step, \"rows\" FROM {proj.schema}._osiris_state WHERE target LIKE '%.{table}'")
    assert state == [("read", 3)]
    # Like the load marker, the state table is not for the API roles, whatever the schema's default privileges.
    state_table = f"{proj.schema}._osiris_state"
    assert proj.pg_exec(f"SELECT has_table_privilege('anon', '{state_table}', 'SELECT'), "
                        f"has_table_privilege('authenticated', '{state_table}', 'SELECT'), "
                        f"has_table_privilege('anon', '{proj.schema}.{table}', 'SELECT')") == [(False, False, True)]


def test_supabase_extractor_reads_incrementally_over_pg_dsn_and_refuses_without(
        proj: Project, postgrest: PostgrestServer) -> None:  # noqa: F811
    _connections(proj, postgrest, with_pg_dsn=True)
    proj.pg_exec(f"CREATE SCHEMA IF NOT EXISTS {proj.schema}",
                 f"CREATE TABLE {proj.schema}.src (id int PRIMARY KEY, v text, n bigint)",
                 f"INSERT INTO {proj.schema}.src VALUES (1, 'a', 10), (2, 'b', 20)")
    read = {"id": "read", "component": "supabase.extractor", "mode": "read",
            "config": {"connection": "@supabase.main", "schema": proj.schema, "table": "src",
                       "incremental": {"cursor": "n"}}}
    write = {"id": "load", "component": "postgres.writer", "mode": "write", "needs": ["read"],
             "config": {"connection": "@postgres.db", "schema": proj.schema, "table": "dst",
                        "write_mode": "upsert", "primary_key": ["id"]}}
    succeeded(proj.run([read, write]))
    again = succeeded(proj.run([read, write]))
    inc = card(again, "read").incremental
    assert inc is not None and inc.rows_read == 1
    _connections(proj, postgrest, with_pg_dsn=False)
    with pytest.raises(InputError, match="pg_dsn"):  # the spec's rule, at compile time
        proj.run([read, write], name="nodsn")
