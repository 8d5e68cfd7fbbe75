"""Client errors become one-line messages whose hint fits what failed and who was doing it, and `transient` says
whether a retry may help — produced for real against MariaDB and PostgreSQL (refused ports, deadlocks, killed
sessions), not simulated."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg2
import pymysql
import pytest

from osiris_core.errors import DriverError
from osiris_drivers.doctor import check_connection
from osiris_drivers.mysql.connection import MySQLSettings
from osiris_drivers.postgres.connection import PostgresSettings, pg_connection
from osiris_drivers.postgres.extractor.driver import PostgresExtractor, PostgresExtractorConfig
from osiris_drivers.postgres.writer.driver import PostgresWriter, PostgresWriterConfig
from tests.support.databases import MySQLDatabase, PostgresDatabase
from tests.support.runs import Recorder


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def pg_fields(pg_db: PostgresDatabase, **overrides: Any) -> dict[str, Any]:
    return {"host": pg_db.host, "port": pg_db.port, "database": pg_db.database, "user": pg_db.user, **overrides}


def read_pg(pg_db: PostgresDatabase, tmp: Path, **config: Any) -> None:
    settings = PostgresExtractorConfig.model_validate({**pg_fields(pg_db), **config})
    PostgresExtractor().run(step_id="read", config=settings, inputs={}, ctx=Recorder().context(tmp))


def write_pg(pg_db: PostgresDatabase, tmp: Path, **config: Any) -> None:
    import pyarrow as pa

    settings = PostgresWriterConfig.model_validate({**pg_fields(pg_db), **config})
    PostgresWriter().run(step_id="write", config=settings, inputs={"src": pa.table({"id": [1]})},
                         ctx=Recorder().context(tmp))


# ------------------------------------------------------------------------------------------ refused ports


@pytest.mark.parametrize("client", ["extractor", "writer"])
def test_a_refused_postgres_port_says_so_and_may_be_retried(pg_db: PostgresDatabase, tmp_path: Path,
                                                           client: str) -> None:
    port = closed_port()
    run = read_pg if client == "extractor" else write_pg
    with pytest.raises(DriverError) as info:
        run(pg_db, tmp_path, port=port, table="anything")
    error = str(info.value)
    assert f"cannot connect to PostgreSQL at 127.0.0.1:{port} (Connection refused)" in error
    assert "check host and port" in error
    assert "table" not in error.split(" — ", 1)[1] and "Is the server running" not in error
    assert info.value.transient


def test_the_doctor_explains_a_refused_postgres_port_like_a_step(pg_db: PostgresDatabase) -> None:
    port = closed_port()
    verdict = check_connection("@postgres.down", "postgres", pg_fields(pg_db, port=port, password="d0wn-pw"))
    assert not verdict.ok
    assert verdict.message.startswith(f"cannot connect to PostgreSQL at 127.0.0.1:{port} (Connection refused) — "
                                      "check host and port")
    assert "connection to server" not in verdict.message and "d0wn-pw" not in verdict.message


def test_the_doctor_names_a_missing_database(pg_db: PostgresDatabase, mysql_db: MySQLDatabase) -> None:
    verdict = check_connection("@postgres.x", "postgres", pg_fields(pg_db, database="no_such_db_x"))
    assert not verdict.ok and verdict.message.startswith('database "no_such_db_x" does not exist at 127.0.0.1:')
    assert "fix `database`" in verdict.message
    verdict = check_connection("@mysql.x", "mysql", {**mysql_db.fields, "database": "no_such_db_x"})
    assert not verdict.ok and "database 'no_such_db_x' does not exist" in verdict.message


@pytest.mark.parametrize("family", ["mysql", "postgres"])
def test_bad_connection_fields_name_the_field_and_the_family_fields(family: str) -> None:
    verdict = check_connection(f"@{family}.bad", family, {"host": "db", "database": "d", "user": "u", "port": "x"})
    assert not verdict.ok and f"{family} connection field 'port'" in verdict.message
    assert "fields: host, port, database, user, password" in verdict.message


# ------------------------------------------------------------------------------------------ roles


def test_an_extractor_missing_table_gets_a_reading_hint(pg_db: PostgresDatabase, tmp_path: Path) -> None:
    with pytest.raises(DriverError) as info:
        read_pg(pg_db, tmp_path, table="no_such_table_r")
    error = str(info.value)
    assert 'relation "public.no_such_table_r" does not exist' in error and "check the table name" in error
    assert "create_if_missing" not in error and not info.value.transient


def test_a_writer_missing_table_offers_create_if_missing(pg_db: PostgresDatabase, tmp_path: Path) -> None:
    with pytest.raises(DriverError) as info:
        write_pg(pg_db, tmp_path, table="no_such_table_w", create_if_missing=False)
    assert "table public.no_such_table_w does not exist at 127.0.0.1:" in str(info.value)
    assert "set create_if_missing: true" in str(info.value)


# ------------------------------------------------------------------------------------------ transient errors


def deadlock(connect: Callable[[], Any], setup: list[str], first: str, second: str) -> BaseException:
    """Two sessions (`connect` opens them without autocommit) that each hold the row the other wants: the server
    aborts one. That session's error."""
    admin = connect()
    with admin.cursor() as cursor:
        for statement in setup:
            cursor.execute(statement)
    admin.commit()
    admin.close()
    a, b = connect(), connect()
    errors: list[BaseException] = []
    try:
        for session, statement in ((a, first), (b, second)):
            session.cursor().execute(statement)

        def cross(session: Any, statement: str) -> None:
            try:
                session.cursor().execute(statement)
            except Exception as exc:
                errors.append(exc)
                session.rollback()

        threads = [threading.Thread(target=cross, args=(a, second)), threading.Thread(target=cross, args=(b, first))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
    finally:
        a.close()
        b.close()
    assert errors, "no deadlock"
    return errors[0]


def test_a_postgres_deadlock_is_transient(pg_db: PostgresDatabase) -> None:
    error = deadlock(lambda: psycopg2.connect(pg_db.dsn),
                     ["DROP TABLE IF EXISTS locks", "CREATE TABLE locks (id int PRIMARY KEY, v int)",
                      "INSERT INTO locks VALUES (1, 0), (2, 0)"],
                     "UPDATE locks SET v = 1 WHERE id = 1", "UPDATE locks SET v = 2 WHERE id = 2")
    problem = PostgresSettings.model_validate(pg_fields(pg_db)).explain(error, "write")
    assert "deadlock detected" in problem.message and problem.transient and problem.hint.startswith("retry")


def test_a_mysql_deadlock_is_transient(mysql_db: MySQLDatabase) -> None:
    def connect() -> Any:
        return pymysql.connect(host=mysql_db.host, port=mysql_db.port, user=mysql_db.user,
                               password=mysql_db.password, database=mysql_db.database, autocommit=False)

    error = deadlock(connect, ["DROP TABLE IF EXISTS locks", "CREATE TABLE locks (id INT PRIMARY KEY, v INT)",
                               "INSERT INTO locks VALUES (1, 0), (2, 0)"],
                     "UPDATE locks SET v = 1 WHERE id = 1", "UPDATE locks SET v = 2 WHERE id = 2")
    problem = MySQLSettings.model_validate(mysql_db.fields).explain(error, "write")
    assert "Deadlock" in problem.message and problem.transient and problem.hint.startswith("retry")


def test_a_killed_postgres_session_is_transient(pg_db: PostgresDatabase) -> None:
    settings = PostgresSettings.model_validate(pg_fields(pg_db))
    with pg_connection(settings.dsn) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        row = cursor.fetchone()
        assert row is not None
        with psycopg2.connect(pg_db.dsn) as admin, admin.cursor() as killer:
            killer.execute("SELECT pg_terminate_backend(%s)", (row[0],))
        with pytest.raises(psycopg2.Error) as info:
            cursor.execute("SELECT 1")
    problem = settings.explain(info.value, "read")
    assert problem.transient and "retry" in problem.hint
