"""SIGINT/SIGTERM while supabase.writer sends rows through PostgREST: the run stops within seconds as
`interrupted` (exit 130), the target unchanged and the staging table dropped (issue 9, finding 3)."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from tests.endstates.test_interrupts import BIG, assert_interrupted, generate, interrupt, progressed
from tests.supabase.pipelines import stage_tables, write_connections
from tests.support.databases import PostgresDatabase
from tests.support.postgrest_server import PostgrestServer


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_during_postgrest_batches_rolls_back(project: Path, pg_db: PostgresDatabase,
                                                      postgrest: PostgrestServer, sig: signal.Signals) -> None:
    write_connections(project, pg_db, postgrest, with_pg_dsn=False)
    table = f"stop_rest_{sig.name.lower()}"
    with pg_db.connect() as con, con.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {table}; CREATE TABLE {table} (id BIGINT PRIMARY KEY, label TEXT);"
                       f"INSERT INTO {table} VALUES (1, 'before')")
    writer = {"id": "write", "component": "supabase.writer", "mode": "write", "needs": ["gen"],
              "config": {"connection": "@supabase.main", "table": table, "ddl_channel": "http_sql"}}
    code, output, elapsed = interrupt(project, [generate(BIG), writer], progressed("write", 2000), sig)
    assert_interrupted(project, code, output, elapsed, sig)
    with pg_db.connect() as con, con.cursor() as cursor:
        cursor.execute(f"SELECT id, label FROM {table}")
        assert cursor.fetchall() == [(1, "before")]
    assert stage_tables(pg_db) == []
