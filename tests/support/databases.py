"""Test support: a private database per test process on the real MariaDB and PostgreSQL servers.

Servers are started outside the tests (`.ci/run`); DSNs come from OSIRIS_MYSQL_DSN / OSIRIS_PG_DSN, else the
machine defaults. Each concurrent test process (Pants' TEST_EXECUTION_SLOT, else the pid) gets its own
database, recreated empty when the process starts.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from urllib.parse import quote, unquote, urlsplit

import psycopg2
import pymysql

MYSQL_DSN_ENV = "OSIRIS_MYSQL_DSN"
PG_DSN_ENV = "OSIRIS_PG_DSN"
DEFAULT_MYSQL_DSN = "mysql://root@127.0.0.1:3306/test"
DEFAULT_PG_DSN = "postgresql://root@127.0.0.1:5432/test"

HOW_TO_START = (
    "start the servers first: `bash .ci/run` does it, or by hand: "
    "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start; "
    "start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd"
)


class ServerUnavailable(RuntimeError):
    """A database server the tests need is not reachable."""


def process_tag() -> str:
    slot = os.environ.get("TEST_EXECUTION_SLOT")
    return f"s{slot}" if slot is not None else f"p{os.getpid()}"


@dataclass(frozen=True)
class MySQLDatabase:
    host: str
    port: int
    user: str
    password: str
    database: str

    def connect(self) -> pymysql.connections.Connection[pymysql.cursors.Cursor]:
        return pymysql.connect(host=self.host, port=self.port, user=self.user, password=self.password,
                               database=self.database, charset="utf8mb4", autocommit=True,
                               local_infile=True)

    @property
    def fields(self) -> dict[str, object]:
        """Connection fields as a `mysql` connection in osiris_connections.yaml has them."""
        return {"host": self.host, "port": self.port, "user": self.user, "password": self.password,
                "database": self.database}


@dataclass(frozen=True)
class PostgresDatabase:
    host: str
    port: int
    user: str
    password: str
    database: str

    @property
    def dsn(self) -> str:
        auth = quote(self.user, safe="") + (f":{quote(self.password, safe='')}" if self.password else "")
        return f"postgresql://{auth}@{self.host}:{self.port}/{self.database}"

    def connect(self) -> psycopg2.extensions.connection:
        connection = psycopg2.connect(self.dsn)
        connection.autocommit = True
        return connection


def _parse(dsn: str, default_port: int) -> tuple[str, int, str, str, str]:
    parts = urlsplit(dsn)
    return (parts.hostname or "127.0.0.1", parts.port or default_port, unquote(parts.username or "root"),
            unquote(parts.password or ""), parts.path.lstrip("/") or "test")


def fresh_mysql_database(name_prefix: str = "osiris") -> MySQLDatabase:
    host, port, user, password, _ = _parse(os.environ.get(MYSQL_DSN_ENV, DEFAULT_MYSQL_DSN), 3306)
    name = f"{name_prefix}_{process_tag()}"
    try:
        admin = pymysql.connect(host=host, port=port, user=user, password=password, autocommit=True)
    except pymysql.err.OperationalError as exc:
        raise ServerUnavailable(f"MariaDB at {host}:{port} is not reachable ({exc}); {HOW_TO_START}") from None
    with admin, admin.cursor() as cursor:
        cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")
        cursor.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
    return MySQLDatabase(host, port, user, password, name)


def fresh_postgres_database(name_prefix: str = "osiris") -> PostgresDatabase:
    host, port, user, password, maintenance_db = _parse(os.environ.get(PG_DSN_ENV, DEFAULT_PG_DSN), 5432)
    name = f"{name_prefix}_{process_tag()}"
    maintenance = PostgresDatabase(host, port, user, password, maintenance_db)
    try:
        admin = maintenance.connect()
    except psycopg2.OperationalError as exc:
        raise ServerUnavailable(
            f"PostgreSQL at {host}:{port} is not reachable ({' '.join(str(exc).split())}); {HOW_TO_START}"
        ) from None
    with admin.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        cursor.execute(f'CREATE DATABASE "{name}"')
    admin.close()
    return PostgresDatabase(host, port, user, password, name)


def drop_mysql_database(database: MySQLDatabase) -> None:
    admin = pymysql.connect(host=database.host, port=database.port, user=database.user,
                            password=database.password, autocommit=True)
    with admin, admin.cursor() as cursor:
        cursor.execute(f"DROP DATABASE IF EXISTS `{database.database}`")


def drop_postgres_database(database: PostgresDatabase) -> None:
    host, port, user, password, maintenance_db = _parse(os.environ.get(PG_DSN_ENV, DEFAULT_PG_DSN), 5432)
    admin = PostgresDatabase(host, port, user, password, maintenance_db).connect()
    with admin.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{database.database}" WITH (FORCE)')
    admin.close()
