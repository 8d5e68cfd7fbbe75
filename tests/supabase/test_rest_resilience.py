"""The PostgREST data path against what a Supabase project really does: a schema cache that learns about the
stage later (and, in older PostgREST, answers a bare 404 meanwhile), gateway errors without a code, statement
timeouts on large batches. Each is survived without a duplicate row, or fails saying why."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from osiris_core.registry import ComponentRegistry
from tests.supabase.conftest import JWT_SECRET
from tests.supabase.pipelines import Row, pipeline, run, stage_tables, table_rows, write_connections
from tests.support.databases import PostgresDatabase
from tests.support.postgrest_server import PostgrestServer

ROWS: list[Row] = [("eu", i, f"o{i}", "M", Decimal("1.00"), "2024-01-01 00:00:00") for i in range(1, 401)]
EXPECTED = [(r[0], r[1], r[2], r[3], r[4], r[5]) for r in ROWS]


def events_of(result: Any) -> list[dict[str, Any]]:
    return [json.loads(x) for x in (result.session.path / "events.jsonl").read_text().splitlines()]


@pytest.fixture
def slow_cache(pg_db: PostgresDatabase) -> Iterator[PostgrestServer]:
    """An older PostgREST under load: reloads 1.5 s after the NOTIFY, and answers a bare 404 until then."""
    with PostgrestServer(pg_db.dsn, jwt_secret=JWT_SECRET, reload_delay_s=1.5, not_found="empty") as server:
        yield server


@pytest.mark.parametrize("mode", ["append", "upsert"])
def test_the_stage_is_used_once_the_schema_cache_shows_it(
        mode: str, project: Path, registry: ComponentRegistry, pg_db: PostgresDatabase,
        slow_cache: PostgrestServer) -> None:
    connections = write_connections(project, pg_db, slow_cache, with_pg_dsn=False)
    table = f"late_cache_{mode}"
    config = {"table": table, "write_mode": mode, "primary_key": ["region", "id"], "batch_size": 100}
    result = run(pipeline(project, "late", ROWS, config), registry, connections, project / "logs")
    assert result.exit_code == 0, result.card.error
    assert table_rows(pg_db, table) == EXPECTED
    assert result.card.steps[-1].rows_out == 400
    assert [e for e in events_of(result) if e["event"] == "retry"] == []  # the data retries' budget is untouched
    assert stage_tables(pg_db) == []


@pytest.mark.parametrize("status", [502, 503, 504, 429])
def test_gateway_errors_without_a_code_are_retried_without_duplicates(
        status: int, project: Path, registry: ComponentRegistry, pg_db: PostgresDatabase,
        postgrest: PostgrestServer) -> None:
    connections = write_connections(project, pg_db, postgrest, with_pg_dsn=False)
    table = f"gateway_{status}"
    postgrest.fail_next(2, status, methods=["POST"])  # {"message": …}: no code, as Supabase's gateway answers
    try:
        result = run(pipeline(project, "gw", ROWS, {"table": table, "batch_size": 100}), registry, connections,
                     project / "logs")
    finally:
        postgrest.fail_next(0)
    assert result.exit_code == 0, result.card.error
    assert table_rows(pg_db, table) == EXPECTED
    retries = [e for e in events_of(result) if e["event"] == "retry"]
    assert [e["batch"] for e in retries] == [0, 0]
    assert retries[0]["error"].startswith(f"HTTP {status}: ")


@pytest.fixture
def strict_timeout(pg_db: PostgresDatabase) -> Iterator[PostgrestServer]:
    """A 0.4 s role statement timeout and inserts that cost 2.5 ms a row: 200 rows or more are cancelled."""
    with PostgrestServer(pg_db.dsn, jwt_secret=JWT_SECRET, statement_timeout_ms=400) as server:
        server.slow_writes(0.0025)
        yield server


def test_a_statement_timeout_splits_the_batch_and_the_load_goes_on_smaller(
        project: Path, registry: ComponentRegistry, pg_db: PostgresDatabase, strict_timeout: PostgrestServer) -> None:
    connections = write_connections(project, pg_db, strict_timeout, with_pg_dsn=False)
    config = {"table": "timed", "write_mode": "replace", "primary_key": ["region", "id"], "batch_size": 400}
    result = run(pipeline(project, "timed", ROWS, config), registry, connections, project / "logs")
    assert result.exit_code == 0, result.card.error
    assert table_rows(pg_db, "timed") == EXPECTED
    shrunk = [e for e in events_of(result) if e["event"] == "retry"]
    assert [e["batch_rows"] for e in shrunk] == [200, 100]
    assert "57014" in shrunk[0]["error"] and "statement timeout" in shrunk[0]["error"]
    assert stage_tables(pg_db) == []


def test_a_row_too_slow_for_the_timeout_fails_cleanly(project: Path, registry: ComponentRegistry,
                                                      pg_db: PostgresDatabase) -> None:
    with PostgrestServer(pg_db.dsn, jwt_secret=JWT_SECRET, statement_timeout_ms=100) as server:
        server.slow_writes(0.5)
        connections = write_connections(project, pg_db, server, with_pg_dsn=False)
        result = run(pipeline(project, "hopeless", ROWS[:3], {"table": "hopeless"}), registry, connections,
                     project / "logs")
    assert result.exit_code == 1
    error = result.card.steps[-1].error or ""
    assert "cannot take even one row" in error and "statement timeout" in error and "pg_dsn" in error
    assert stage_tables(pg_db) == []


@pytest.mark.parametrize(("status", "code", "message", "transient", "not_visible"), [
    (502, None, "An invalid response was received from the upstream server", True, False),
    (504, None, "The upstream server is timing out", True, False),
    (429, None, "API rate limit exceeded", True, False),
    (404, None, "", False, True),                    # an older PostgREST's bare 404: not in its schema cache
    (404, "PGRST205", "Could not find the table", False, True),
    (500, "57014", "canceling statement due to statement timeout", True, False),
    (409, "40001", "could not serialize access", True, False),
    (400, "23514", "violates check constraint", False, False),
    (500, "42P17", "infinite recursion", False, False),
    (503, "PGRST002", "Could not query the database for the schema cache", True, False),
    (401, "PGRST301", "Invalid API key", False, False),
    (None, None, "ConnectError: refused", True, False),
])
def test_errors_are_classified_by_status_and_sqlstate(status: int | None, code: str | None, message: str,
                                                      transient: bool, not_visible: bool) -> None:
    from osiris_drivers.supabase.rest import RestError

    error = RestError(status=status, code=code, message=message)
    assert (error.transient, error.not_visible) == (transient, not_visible)
    assert error.describe().startswith(code or (f"HTTP {status}" if status else "no answer"))
