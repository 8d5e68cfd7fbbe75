"""PostgreSQL connections: DSNs from connection fields, psycopg2 connections, and error translation.

A DSN built from fields percent-encodes every part (host, user, password, database, TLS parameters), so no
field can add libpq parameters (a host `h sslmode=disable` stays a host name, and a bad one). ConnectorX gets
the same DSN with its TLS mode translated (`connectorx_url`): it verifies a CA only with `sslrootcert`, and
cannot check the host name, so `verify-full` is refused for its streams rather than weakened.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

from pydantic import Field

from osiris_core.driver import DriverConfig
from osiris_core.errors import DriverError
from osiris_core.masking import scrub_text
from osiris_drivers.endpoint import HostOrSocket, SslMode

if TYPE_CHECKING:
    import psycopg2.extensions

CONNECT_TIMEOUT_S = 10


class PostgresConnectionFields(DriverConfig):
    """The fields a `postgres` connection supplies; every postgres.* driver config extends this."""

    host: HostOrSocket
    port: int = Field(default=5432, ge=1, le=65535)
    database: str = Field(min_length=1)
    user: str = Field(min_length=1)
    password: str | None = None
    sslmode: SslMode = "prefer"
    sslrootcert: str | None = Field(default=None, min_length=1)

    @property
    def dsn(self) -> str:
        return dsn_from_fields(host=self.host, port=self.port, database=self.database, user=self.user,
                               password=self.password, sslmode=self.sslmode, sslrootcert=self.sslrootcert)


# SQLSTATE classes worth retrying: connection exceptions, insufficient resources, operator intervention,
# serialization failures and deadlocks.
_TRANSIENT_SQLSTATE_PREFIXES = ("08", "53", "57", "40")


def dsn_from_fields(*, host: str, port: int, database: str, user: str, password: str | None,
                    sslmode: str = "prefer", sslrootcert: str | None = None) -> str:
    """A `postgresql://` URL with every part percent-encoded: any character works in any field, and no field
    can add or override a libpq parameter. An IPv6 address goes in brackets."""
    auth = quote(user, safe="")
    if password:
        auth += ":" + quote(password, safe="")
    netloc = f"[{quote(host, safe=':')}]" if ":" in host else quote(host, safe="")
    params = {"sslmode": sslmode, **({"sslrootcert": sslrootcert} if sslrootcert else {})}
    return f"postgresql://{auth}@{netloc}:{int(port)}/{quote(database, safe='')}?{urlencode(params, quote_via=quote)}"


class TlsUnsupported(ValueError):
    """A TLS mode ConnectorX cannot honour for this DSN."""


def connectorx_url(dsn: str) -> str:
    """The DSN as ConnectorX takes it: password normalised, `sslmode` translated to what its client does.

    ConnectorX knows disable, prefer and require; with `sslrootcert`, require verifies the certificate's CA
    (libpq's verify-ca), and it never checks the host name. So verify-ca needs sslrootcert and verify-full is
    refused (`TlsUnsupported`), never quietly weakened.
    """
    url = normalized_dsn(dsn)
    parts = urlsplit(url)
    if parts.scheme not in ("postgres", "postgresql"):
        return url
    params = parse_qsl(parts.query, keep_blank_values=True)
    values = dict(params)
    mode = values.get("sslmode", "prefer")
    if mode == "verify-full":
        raise TlsUnsupported("sslmode verify-full cannot be honoured: ConnectorX, which streams the rows, "
                             "cannot check the server's host name")
    if mode == "verify-ca" and not values.get("sslrootcert"):
        raise TlsUnsupported("sslmode verify-ca needs sslrootcert for the ConnectorX row stream "
                             "(it does not read the system's CAs)")
    translated = {"allow": "prefer", "verify-ca": "require"}.get(mode, mode)
    query = urlencode([(k, translated if k == "sslmode" else v) for k, v in params], quote_via=quote)
    return urlunsplit(parts._replace(query=query))


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
    elif "does not support ssl" in lowered:
        hint = "the server offers no TLS: enable ssl on it, or set sslmode: prefer (or disable) for this connection"
    elif "certificate" in lowered or "ssl" in lowered:
        hint = "check sslrootcert and the server's certificate (verify-full also checks the host name)"
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
