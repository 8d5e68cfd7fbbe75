"""SIGINT and SIGTERM stop a MySQL, PostgreSQL or supabase (pg_dsn) extract that waits on the database within
seconds, although ConnectorX holds the GIL while it waits for a batch: the stop helper process cancels the step's
tagged queries server-side (issue 9). Each test runs the real CLI and sends the signal once the slow query runs on
the server; afterwards no such query is left running."""

from __future__ import annotations

import signal
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.endstates.test_interrupts import Events, assert_interrupted, card, interrupt, started
from tests.support.databases import MySQLDatabase, PostgresDatabase

ROWS = 100_000
"""One second per row: far more than a test waits for; only a server-side cancel ends the query early."""


def write_connections(project: Path, mysql_db: MySQLDatabase, pg_db: PostgresDatabase) -> None:
    (project / "osiris_connections.yaml").write_text(yaml.safe_dump({"connections": {
        "mysql": {"test": mysql_db.fields},
        "postgres": {"test": {"host": pg_db.host, "port": pg_db.port, "database": pg_db.database,
                              "user": pg_db.user}},
        "supabase": {"test": {"url": "https://abc.supabase.co", "service_role_key": "k", "pg_dsn": pg_db.dsn}}}}),
        encoding="utf-8")


def ended_soon(count: Callable[[], int], within_s: float = 5.0) -> bool:
    """Whether `count()` reaches 0 within `within_s`: a server handles a cancel request asynchronously, so the
    session may show the statement for a moment after the run exited (the statement itself would run for days)."""
    deadline = time.monotonic() + within_s
    while count():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def running(family: str, mysql_db: MySQLDatabase, pg_db: PostgresDatabase, text: str) -> int:
    """How many server sessions (other than this one) run a statement containing `text`."""
    if family == "mysql":
        with mysql_db.connect() as con, con.cursor() as cursor:
            cursor.execute("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID <> CONNECTION_ID() "
                           "AND LOCATE(%s, INFO) > 0", (text,))
            row = cursor.fetchone()
    else:
        with pg_db.connect() as pg, pg.cursor() as pg_cursor:
            pg_cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE pid <> pg_backend_pid() "
                              "AND state = 'active' AND position(%s in query) > 0", (text,))
            row = pg_cursor.fetchone()
    return int(row[0]) if row else 0


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
@pytest.mark.parametrize("component", ["postgres.extractor", "mysql.extractor", "supabase.extractor"])
def test_a_signal_cancels_an_extract_waiting_on_the_database(project: Path, mysql_db: MySQLDatabase,
                                                             pg_db: PostgresDatabase, component: str,
                                                             sig: signal.Signals) -> None:
    write_connections(project, mysql_db, pg_db)
    family = component.split(".")[0]
    column = f"slept_{uuid.uuid4().hex[:12]}"  # names this run's query on the server
    query = (f"SELECT seq AS id, SLEEP(1) AS {column} FROM seq_1_to_{ROWS}" if family == "mysql" else
             f"SELECT i AS id, pg_sleep(1) IS NULL AS {column} FROM generate_series(1, {ROWS}) i")
    steps: list[dict[str, Any]] = [
        {"id": "ext", "component": component, "mode": "read", "config": {"connection": f"@{family}.test",
                                                                          "query": query}},
        {"id": "out", "component": "filesystem.csv_writer", "mode": "write", "needs": ["ext"],
         "config": {"path": "out.csv"}}]

    def querying(evs: Events) -> bool:
        return started("out")(evs) and running(family, mysql_db, pg_db, f"AS {column}") > 0

    code, output, elapsed = interrupt(project, steps, querying, sig)
    assert_interrupted(project, code, output, elapsed, sig)
    assert "failed" not in card(project)["error"]
    assert "panicked" not in output, "a Rust panic report reached the terminal"
    assert ended_soon(lambda: running(family, mysql_db, pg_db, f"AS {column}")), \
        "the extract's query still runs on the server"
    assert not (project / "out.csv").exists()


def test_a_signal_cancels_an_extract_in_a_sandbox_run(project: Path, mysql_db: MySQLDatabase,
                                                      pg_db: PostgresDatabase) -> None:
    """The host asks the worker to stop; the worker's stop listener signals it, so its stop helper cancels the
    query although ConnectorX holds the worker's GIL."""
    write_connections(project, mysql_db, pg_db)
    column = f"slept_{uuid.uuid4().hex[:12]}"
    steps: list[dict[str, Any]] = [
        {"id": "ext", "component": "postgres.extractor", "mode": "read", "config": {
            "connection": "@postgres.test",
            "query": f"SELECT i AS id, pg_sleep(1) IS NULL AS {column} FROM generate_series(1, {ROWS}) i"}},
        {"id": "out", "component": "filesystem.csv_writer", "mode": "write", "needs": ["ext"],
         "config": {"path": "out.csv"}}]

    def querying(evs: Events) -> bool:
        return running("postgres", mysql_db, pg_db, f"AS {column}") > 0

    code, output, elapsed = interrupt(project, steps, querying, signal.SIGINT, "--sandbox", "local")
    run_card = assert_interrupted(project, code, output, elapsed, signal.SIGINT)
    assert run_card["execution"]["sandbox_session"], "the worker stopped and reported; it was not killed"
    assert ended_soon(lambda: running("postgres", mysql_db, pg_db, f"AS {column}")), \
        "the extract's query still runs on the server"
