"""PostgreSQL connections: DSNs from connection fields, psycopg2 connections, and error translation."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING
from urllib.parse import quote, unquote

from osiris_core.driver import DriverConfig
from osiris_core.errors import DriverError
from osiris_core.masking import scrub_text

if TYPE_CHECKING:
    import psycopg2.extensions

CONNECT_TIMEOUT_S = 10


class PostgresConnectionFields(DriverConfig):
    """The fields a `postgres` connection supplies; every postgres.* driver config extends this."""

    host: str
    port: int = 5432
    database: str
    user: str
    password: str | None = None

    @property
    def dsn(self) -> str:
        return dsn_from_fields(host=self.host, port=self.port, database=self.database, user=self.user,
                               password=self.password)

# SQLSTATE classes worth retrying: connection exceptions, insufficient resources, operator intervention,
# serialization failures and deadlocks.
_TRANSIENT_SQLSTATE_PREFIXES = ("08", "53", "57", "40")


def dsn_from_fields(*, host: str, port: int, database: str, user: str, password: str | None) -> str:
    """A `postgresql://` URL with user and password percent-encoded (any character works)."""
    auth = quote(user, safe="")
    if password:
        auth += ":" + quote(password, safe="")
    return f"postgresql://{auth}@{host}:{port}/{quote(database, safe='')}"


def describe_error(exc: BaseException) -> str:
    """One line, secrets scrubbed: what psycopg2 or the server said."""
    return scrub_text(" ".join(str(exc).split())) or type(exc).__name__


def is_transient(exc: BaseException) -> bool:
    import psycopg2

    code = getattr(exc, "pgcode", None)
    if code:
        return str(code).startswith(_TRANSIENT_SQLSTATE_PREFIXES)
    return isinstance(exc, psycopg2.OperationalError | psycopg2.InterfaceError)


def driver_error(exc: BaseException, *, step_id: str, doing: str) -> DriverError:
    """Translate a psycopg2 error into a one-line DriverError with a next step."""
    message = describe_error(exc)
    hint = "check the table, the data and the connection"
    lowered = message.lower()
    if "password authentication failed" in lowered or "authentication failed" in lowered:
        hint = "check the user and password of the connection (`osiris connections doctor`)"
    elif "could not connect" in lowered or "connection refused" in lowered or "timeout" in lowered:
        hint = "check host and port, and that the server is running (`osiris connections doctor`)"
    elif "does not exist" in lowered:
        hint = "check the table/schema name, or set create_if_missing: true"
    return DriverError(f"{doing} failed: {message}", step_id=step_id, hint=hint, transient=is_transient(exc))


def normalized_dsn(dsn: str) -> str:
    """A `postgresql://` URL whose password is percent-encoded, whatever characters the user typed.

    libpq splits userinfo at the first `@`; a password containing `@`, `/`, `#` or `?` would otherwise be cut.
    """
    match = re.match(r"^(?P<scheme>postgres(?:ql)?://)(?P<user>[^:/@]*):(?P<pw>.*)@(?P<rest>[^@]*)$", dsn)
    if not match:
        return dsn
    return f"{match['scheme']}{match['user']}:{quote(unquote(match['pw']), safe='')}@{match['rest']}"


@contextmanager
def pg_connection(dsn: str) -> Iterator[psycopg2.extensions.connection]:
    """A psycopg2 connection in UTC (naive timestamps are UTC), closed on exit; the caller commits."""
    import psycopg2

    connection = psycopg2.connect(normalized_dsn(dsn), connect_timeout=CONNECT_TIMEOUT_S, application_name="osiris")
    try:
        with connection.cursor() as cursor:
            cursor.execute("SET TIME ZONE 'UTC'")
        yield connection
    finally:
        connection.close()


def check_postgres(dsn: str) -> str:
    """`SELECT version()` over the DSN: a short verdict, or the psycopg2 error (raised)."""
    with pg_connection(dsn) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT current_user, current_database(), version()")
        row = cursor.fetchone()
    assert row is not None
    return f"connected as {row[0]} to database {row[1]} ({str(row[2]).split(' on ')[0]})"
