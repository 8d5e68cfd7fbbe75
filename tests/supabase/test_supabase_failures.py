"""supabase.writer under failure: the target is left exactly as it was, and errors are clear and masked."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import pytest
import yaml

import osiris_cli.main
from osiris_core.registry import ComponentRegistry
from tests.conftest import REPO_ROOT
from tests.supabase.conftest import SERVICE_KEY
from tests.supabase.pipelines import VARIANTS, Row, Variant, pipeline, run, stage_tables, table_rows, write_connections
from tests.support.databases import PostgresDatabase
from tests.support.postgrest_server import PostgrestServer

GOOD: list[Row] = [("eu", i, f"o{i}", "M", Decimal("1.00"), "2024-01-01 00:00:00") for i in range(1, 6)]
BAD_LAST: list[Row] = [*[("us", i, "x", "M", Decimal("2.00"), "2024-01-01 00:00:00") for i in range(1, 6)],
                       ("us", 99, "bad", "M", Decimal("-1.00"), "2024-01-01 00:00:00")]


def all_logs(project: Path) -> str:
    return "\n".join(p.read_text(errors="replace") for p in (project / "logs").rglob("*") if p.is_file())


def seed(pg_db: PostgresDatabase, table: str) -> None:
    with pg_db.connect() as connection, connection.cursor() as cursor:
        cursor.execute(f'DROP TABLE IF EXISTS "{table}"')
        cursor.execute(f'CREATE TABLE "{table}" (region TEXT, id BIGINT, "order" TEXT, "MixedCase" TEXT, '
                       f"amount NUMERIC(12,2) CHECK (amount >= 0), seen_at TIMESTAMPTZ, PRIMARY KEY (region, id))")
        for r in GOOD:
            cursor.execute(f'INSERT INTO "{table}" VALUES (%s, %s, %s, %s, %s, %s)', r)
    # PostgREST learns about tables created outside it only on a schema reload.


@pytest.mark.parametrize("mode", ["append", "upsert", "replace"])
@pytest.mark.parametrize("variant", VARIANTS[:3], ids=[v.name for v in VARIANTS[:3]])
def test_bad_row_in_a_later_batch_leaves_the_target_unchanged(
        variant: Variant, mode: str, project: Path, registry: ComponentRegistry, pg_db: PostgresDatabase,
        postgrest: PostgrestServer) -> None:
    table = f"f_{variant.name.replace('-', '_')}_{mode}"
    seed(pg_db, table)
    postgrest.reload_schema()
    connections = write_connections(project, pg_db, postgrest, with_pg_dsn=variant.with_pg_dsn)
    config = {"table": table, "write_mode": mode, "primary_key": ["region", "id"],
              "ddl_channel": variant.ddl_channel, "batch_size": 2}
    result = run(pipeline(project, "bad", BAD_LAST, config), registry, connections, project / "logs")
    assert result.exit_code == 1
    assert result.card.steps[-1].status == "failed"
    assert "check constraint" in (result.card.steps[-1].error or "")
    assert table_rows(pg_db, table) == [(r[0], r[1], r[2], r[3], r[4], r[5]) for r in GOOD]
    assert stage_tables(pg_db) == []


def test_transient_postgrest_errors_are_retried_without_duplicates(
        project: Path, registry: ComponentRegistry, pg_db: PostgresDatabase, postgrest: PostgrestServer) -> None:
    connections = write_connections(project, pg_db, postgrest, with_pg_dsn=False)
    config = {"table": "retried", "write_mode": "append", "create_if_missing": True, "batch_size": 2}
    postgrest.fail_next(2, 503, methods=["POST"])
    result = run(pipeline(project, "retry", GOOD, config), registry, connections, project / "logs")
    assert result.exit_code == 0, result.card.error
    assert table_rows(pg_db, "retried") == [(r[0], r[1], r[2], r[3], r[4], r[5]) for r in GOOD]
    assert result.card.steps[-1].rows_out == 5
    events = [json.loads(x) for x in (result.session.path / "events.jsonl").read_text().splitlines()]
    assert [e["batch"] for e in events if e["event"] == "retry"] == [0, 0]


def test_persistent_postgrest_errors_fail_cleanly(project: Path, registry: ComponentRegistry,
                                                  pg_db: PostgresDatabase, postgrest: PostgrestServer) -> None:
    seed(pg_db, "persist")
    postgrest.reload_schema()
    connections = write_connections(project, pg_db, postgrest, with_pg_dsn=False)
    config = {"table": "persist", "write_mode": "replace", "primary_key": ["region", "id"], "batch_size": 10}
    postgrest.fail_next(20, 503, methods=["POST"])
    try:
        result = run(pipeline(project, "down", BAD_LAST[:2], config), registry, connections, project / "logs")
    finally:
        postgrest.fail_next(0)
    assert result.exit_code == 1
    assert "kept failing on batch 0 after 5 attempts" in (result.card.steps[-1].error or "")
    assert len(table_rows(pg_db, "persist")) == 5
    assert stage_tables(pg_db) == []


def test_missing_table_without_create_if_missing(project: Path, registry: ComponentRegistry,
                                                 pg_db: PostgresDatabase, postgrest: PostgrestServer,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    for variant in VARIANTS[:3]:
        connections = write_connections(project, pg_db, postgrest, with_pg_dsn=variant.with_pg_dsn)
        config = {"table": "nowhere", "write_mode": "append", "ddl_channel": variant.ddl_channel,
                  "create_if_missing": False}
        result = run(pipeline(project, "missing", GOOD, config), registry, connections, project / "logs")
        assert result.exit_code == 1
        error = result.card.steps[-1].error or ""
        assert "table public.nowhere does not exist" in error and "create_if_missing: true" in error, variant


def test_wrong_key_is_a_clear_error_and_never_logged(project: Path, registry: ComponentRegistry,
                                                     pg_db: PostgresDatabase, postgrest: PostgrestServer) -> None:
    connections = write_connections(project, pg_db, postgrest, with_pg_dsn=False, key="wrong-key-12345")
    config = {"table": "auth", "write_mode": "append", "create_if_missing": True}
    result = run(pipeline(project, "auth", GOOD, config), registry, connections, project / "logs")
    assert result.exit_code == 1
    assert "HTTP 401" in (result.card.steps[-1].error or "")
    assert "wrong-key-12345" not in all_logs(project)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unreachable_database_and_secrets_masked(project: Path, registry: ComponentRegistry,
                                                 pg_db: PostgresDatabase, postgrest: PostgrestServer) -> None:
    path = project / "osiris_connections.yaml"
    dsn = f"postgresql://root:pg-s3cret-pw@127.0.0.1:{free_port()}/nowhere"
    path.write_text(yaml.safe_dump({"connections": {"supabase": {"main": {
        "url": postgrest.url, "service_role_key": SERVICE_KEY, "pg_dsn": dsn}}}}))
    from osiris_core.connections import Connections

    result = run(pipeline(project, "down", GOOD, {"table": "x", "create_if_missing": True}), registry,
                 Connections.load(path), project / "logs")
    assert result.exit_code == 1
    error = result.card.steps[-1].error or ""
    assert "Connection refused" in error or "could not connect" in error
    assert "host and port" in error
    logs = all_logs(project)
    assert "pg-s3cret-pw" not in logs and SERVICE_KEY not in logs


def test_no_ddl_channel_is_an_error_not_a_plan(project: Path, registry: ComponentRegistry,
                                                 pg_db: PostgresDatabase, postgrest: PostgrestServer) -> None:
    connections = write_connections(project, pg_db, postgrest, with_pg_dsn=False)
    config = {"table": "x", "ddl_channel": "psycopg2", "create_if_missing": True}
    result = run(pipeline(project, "nochan", GOOD, config), registry, connections, project / "logs")
    assert result.exit_code == 2  # the connection cannot do what the step asks: bad input, before any request
    assert "ddl_channel psycopg2 needs pg_dsn" in (result.card.steps[-1].error or "")


def test_killed_process_mid_copy_leaves_the_target_unchanged(project: Path, pg_db: PostgresDatabase,
                                                              postgrest: PostgrestServer) -> None:
    seed(pg_db, "killed")
    connections_file = project / "osiris_connections.yaml"
    write_connections(project, pg_db, postgrest, with_pg_dsn=True)
    rows = 2_000_000
    big = project / "big.csv"
    with big.open("w") as handle:
        handle.write('region,id,order,MixedCase,amount,seen_at\n')
        handle.writelines(f"k,{i},o,M,1.5,2024-01-01 00:00:00\n" for i in range(rows))
    pipeline_path = pipeline(project, "kill", [], {"table": "killed", "write_mode": "replace",
                                                   "primary_key": ["region", "id"]})
    text = pipeline_path.read_text().replace(str(project / "kill.csv"), str(big))
    pipeline_path.write_text(text)
    # The test runs in `project` (a temp dir): give the child absolute paths to this checkout's code.
    code_roots = [str(Path(osiris_cli.__file__).resolve().parents[1]), str(REPO_ROOT)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(code_roots + [p for p in sys.path if os.path.isabs(p)]),
           "OSIRIS_CONNECTIONS": str(connections_file)}
    command = [sys.executable, "-m", osiris_cli.main.__name__, "run", str(pipeline_path)]
    process = subprocess.Popen(command, cwd=project,
                               env=env, stdout=subprocess.DEVNULL, stderr=(project / "stderr.txt").open("w"))
    try:
        deadline = time.monotonic() + 60
        copying = False
        while time.monotonic() < deadline and process.poll() is None:
            with pg_db.connect() as connection, connection.cursor() as cursor:
                cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'osiris' "
                               "AND query LIKE 'COPY%%killed%%'")
                row = cursor.fetchone()
            if row and row[0]:
                copying = True
                break
            time.sleep(0.05)
        assert copying, f"the load never reached COPY: {(project / 'stderr.txt').read_text()[-2000:]}"
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL
    time.sleep(0.5)
    assert len(table_rows(pg_db, "killed")) == 5


@pytest.mark.parametrize("variant", VARIANTS[:3], ids=[v.name for v in VARIANTS[:3]])
def test_a_failed_first_load_creates_no_table(variant: Variant, project: Path, registry: ComponentRegistry,
                                              pg_db: PostgresDatabase, postgrest: PostgrestServer) -> None:
    table = f"never_{variant.name.replace('-', '_')}"
    connections = write_connections(project, pg_db, postgrest, with_pg_dsn=variant.with_pg_dsn)
    config = {"table": table, "write_mode": "append", "create_if_missing": True, "ddl_channel": variant.ddl_channel,
              "batch_size": 2}
    # A NUL character is valid in Arrow text and refused by PostgreSQL, wherever the row is written.
    bad: list[Row] = [*GOOD[:3], ("eu", 50, "nul\x00here", "M", Decimal("1.00"), "2024-01-01 00:00:00")]
    result = run(pipeline(project, "first", bad, config), registry, connections, project / "logs")
    assert result.exit_code == 1
    with pg_db.connect() as conn, conn.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s)", (f'public."{table}"',))
        assert cursor.fetchone() == (None,)
    assert stage_tables(pg_db) == []
