"""One fixture per SQL writer, each a `Target`: write Arrow data with a writer config, read the table back.
`target` runs a test once per writer; a new SQL writer is one fixture and one name in `WRITERS`."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pytest

from osiris_core.driver import ROWS_WRITTEN, ArrowData, Driver, DriverConfig
from osiris_drivers.duckdb.dialect import DUCKDB
from osiris_drivers.duckdb.writer.driver import DuckDBWriter, DuckDBWriterConfig
from osiris_drivers.mysql.dialect import MYSQL
from osiris_drivers.mysql.writer.driver import MySQLWriter, MySQLWriterConfig
from osiris_drivers.postgres.dialect import POSTGRES
from osiris_drivers.postgres.writer.driver import PostgresWriter, PostgresWriterConfig
from osiris_drivers.sql.dialect import Dialect
from osiris_drivers.supabase.writer.driver import SupabaseWriter, SupabaseWriterConfig
from tests.supabase.conftest import SERVICE_KEY, postgrest
from tests.support.databases import MySQLDatabase, PostgresDatabase
from tests.support.postgrest_server import PostgrestServer
from tests.support.runs import Recorder

__all__ = ["postgrest"]

WRITERS = ("postgres", "mysql", "duckdb", "supabase")
Rows = list[tuple[Any, ...]]


@dataclass(frozen=True)
class Written:
    rows: int
    metrics: dict[str, int]


@dataclass
class Target:
    """A SQL writer and the database it writes, with the SQL to look at the result."""

    name: str
    dialect: Dialect
    driver: Driver[Any]
    config_model: type[DriverConfig]
    base: dict[str, Any]
    sql: Callable[[str], Rows]
    """Run one statement on the target database (autocommit); its rows."""
    schema: str
    types: dict[str, str]
    """Column types for hand-made tables: int, text, ts, hash."""
    artifacts: Path

    def table(self) -> str:
        return f"pol_{uuid.uuid4().hex[:10]}"

    def q(self, table: str) -> str:
        return f"{self.dialect.quote_ident(self.schema)}.{self.dialect.quote_ident(table)}"

    def write(self, table: str, data: ArrowData, **config: Any) -> Written:
        recorder = Recorder()
        model = self.config_model.model_validate({**self.base, "table": table, **config})
        self.driver.run(step_id="write", config=model, inputs={"in": data}, ctx=recorder.context(self.artifacts))
        metrics: dict[str, int] = {}
        for name, value, _ in recorder.metrics:
            metrics[name] = metrics.get(name, 0) + int(value)
        return Written(metrics.pop(ROWS_WRITTEN), metrics)

    def rows(self, table: str, columns: Sequence[str], where: str = "") -> Rows:
        cols = ", ".join(self.dialect.quote_ident(c) for c in columns)
        order = ", ".join(self.dialect.quote_ident(c) for c in columns)
        return [tuple(r) for r in self.sql(f"SELECT {cols} FROM {self.q(table)}{where} ORDER BY {order}")]

    def columns(self, table: str) -> list[str]:
        return [str(r[0]) for r in self.sql(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = "
            f"'{self.schema}' AND table_name = '{table}' ORDER BY ordinal_position")]

    def column_type(self, table: str, column: str) -> str:
        rows = self.sql("SELECT data_type FROM information_schema.columns WHERE table_schema = "
                        f"'{self.schema}' AND table_name = '{table}' AND column_name = '{column}'")
        return str(rows[0][0]).lower()


def _pg_sql(pg: PostgresDatabase) -> Callable[[str], Rows]:
    def run(statement: str) -> Rows:
        with pg.connect() as connection, connection.cursor() as cursor:
            cursor.execute(statement)
            return [tuple(r) for r in cursor.fetchall()] if cursor.description else []
    return run


PG_TYPES = {"int": "BIGINT", "text": "TEXT", "ts": "TIMESTAMPTZ", "hash": "VARCHAR(64)"}


@pytest.fixture
def postgres_target(pg_db: PostgresDatabase, tmp_path: Path) -> Target:
    base = {"host": pg_db.host, "port": pg_db.port, "database": pg_db.database, "user": pg_db.user,
            "password": pg_db.password or None}
    return Target("postgres", POSTGRES, PostgresWriter(), PostgresWriterConfig, base, _pg_sql(pg_db), "public",
                  PG_TYPES, tmp_path)


@pytest.fixture
def supabase_target(pg_db: PostgresDatabase, postgrest: PostgrestServer, tmp_path: Path) -> Target:
    """The staged path: rows through PostgREST, DDL and the move through HTTP SQL."""
    base = {"url": postgrest.url, "service_role_key": SERVICE_KEY, "sql_url": postgrest.sql_url,
            "ddl_channel": "http_sql", "batch_size": 2}
    return Target("supabase", POSTGRES, SupabaseWriter(), SupabaseWriterConfig, base, _pg_sql(pg_db), "public",
                  PG_TYPES, tmp_path)


@pytest.fixture
def mysql_target(mysql_db: MySQLDatabase, tmp_path: Path) -> Target:
    def run(statement: str) -> Rows:
        connection = mysql_db.connect()
        with connection, connection.cursor() as cursor:
            cursor.execute(statement)
            return [tuple(r) for r in cursor.fetchall()] if cursor.description else []
    base = {"host": mysql_db.host, "port": mysql_db.port, "database": mysql_db.database, "user": mysql_db.user,
            "password": mysql_db.password}
    types = {"int": "BIGINT", "text": "LONGTEXT", "ts": "DATETIME(6)", "hash": "CHAR(64)"}
    return Target("mysql", MYSQL, MySQLWriter(), MySQLWriterConfig, base, run, mysql_db.database, types, tmp_path)


@pytest.fixture
def duckdb_target(tmp_path: Path) -> Target:
    path = tmp_path / "policies.duckdb"

    def run(statement: str) -> Rows:
        with duckdb.connect(str(path)) as con:
            result = con.execute(statement)
            return [tuple(r) for r in result.fetchall()] if result.description else []
    types = {"int": "BIGINT", "text": "VARCHAR", "ts": "TIMESTAMP", "hash": "VARCHAR"}
    return Target("duckdb", DUCKDB, DuckDBWriter(), DuckDBWriterConfig, {"path": str(path)}, run, "main", types,
                  tmp_path)


@pytest.fixture(params=WRITERS)
def target(request: pytest.FixtureRequest) -> Iterator[Target]:
    yield request.getfixturevalue(f"{request.param}_target")
