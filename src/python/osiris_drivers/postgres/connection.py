"""The `postgres` connection family: typed settings, DSNs, psycopg2 connections, the doctor's check and one-line
error messages (also used by `supabase`, whose `pg_dsn` is a PostgreSQL DSN).

A DSN built from fields percent-encodes every part (host, user, password, database, TLS parameters), so no
field can add libpq parameters (a host `h sslmode=disable` stays a host name, and a bad one). ConnectorX gets
the same DSN with its TLS mode translated (`connectorx_url`): it verifies a CA only with `sslrootcert`, and
cannot check the host name, so `verify-full` is refused for its streams rather than weakened.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, ClassVar
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

from pydantic import Field

from osiris_core.targets import database_uri
from osiris_drivers.connection import ConnectionSettings, Problem, Role, import_client, is_instance, one_line
from osiris_drivers.endpoint import HostOrSocket, SslMode

if TYPE_CHECKING:
    import psycopg2.extensions

CONNECT_TIMEOUT_S = 10
CONNECTION_HINT = "check the {family} connection in osiris_connections.yaml"

TRANSIENT_SQLSTATES = ("08", "40001", "40P01", "53300", "55P03", "57014", "57P01", "57P02", "57P03")
"""Connection exceptions, serialization failures, deadlocks, too many connections, lock and statement timeouts,
server shutdowns: a retry may succeed."""


class PostgresSettings(ConnectionSettings):
    """The fields a `postgres` connection supplies; every postgres.* driver config extends this."""

    family: ClassVar[str] = "postgres"
    secret_fields: ClassVar[tuple[str, ...]] = ("password",)

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

    @property
    def where(self) -> str:
        return f"at {self.host}:{self.port}/{self.database}"

    def target(self, *objects: str) -> str:
        """`postgresql://host:port/db/schema.table` (a socket directory percent-encoded), no credentials."""
        host = quote(self.host, safe="") if self.host.startswith("/") else self.host
        return database_uri("postgresql", host, self.port, self.database, *objects)

    def check(self) -> str:
        return check_dsn(self.dsn)

    def problem(self, exc: BaseException, role: Role) -> Problem:
        return explain_postgres(exc, role, where=f"{self.host}:{self.port}", family=self.family)


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


def normalized_dsn(dsn: str) -> str:
    """A `postgresql://` URL whose password is percent-encoded, whatever characters the user typed.

    libpq splits userinfo at the first `@`; a password containing `@`, `/`, `#` or `?` would otherwise be cut.
    """
    match = re.match(r"^(?P<scheme>postgres(?:ql)?://)(?P<user>[^:/@]*):(?P<pw>.*)@(?P<rest>[^@]*)$", dsn)
    if not match:
        return dsn
    return f"{match['scheme']}{match['user']}:{quote(unquote(match['pw']), safe='')}@{match['rest']}"


def dsn_address(dsn: str) -> str:
    """`host:port` of a DSN URL, for messages (never its credentials)."""
    parts = urlsplit(normalized_dsn(dsn))
    return f"{parts.hostname or 'localhost'}:{parts.port or 5432}"


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


@contextmanager
def pg_connection(dsn: str) -> Iterator[psycopg2.extensions.connection]:
    """A psycopg2 connection in UTC (naive timestamps are UTC), closed on exit; the caller commits."""
    import_client("psycopg2", project="psycopg2-binary", family="postgres")
    import psycopg2

    connection = psycopg2.connect(normalized_dsn(dsn), connect_timeout=CONNECT_TIMEOUT_S, application_name="osiris")
    try:
        with connection.cursor() as cursor:
            cursor.execute("SET TIME ZONE 'UTC'")
        yield connection
    finally:
        connection.close()


def check_dsn(dsn: str) -> str:
    """A real round trip over the DSN: a short verdict; psycopg2 errors propagate."""
    with pg_connection(dsn) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT current_user, current_database(), version()")
        row = cursor.fetchone()
    assert row is not None
    return f"connected as {row[0]} to database {row[1]} ({str(row[2]).split(' on ')[0]})"


def _reason(text: str) -> str:
    """libpq's `connection to server at "h", port 5 failed: FATAL:  reason` → `reason` (first attempt)."""
    match = re.search(r"failed: (?:FATAL:\s+)?(.+?)(?:\n|$)", text)
    return " ".join((match[1] if match else text).split())


def explain_postgres(exc: BaseException, role: Role, *, where: str, family: str = "postgres") -> Problem:
    """A psycopg2 error as one line with a hint for `role`: SQLSTATEs for server errors, libpq's words for
    connection failures (which carry no SQLSTATE)."""
    if not is_instance(exc, "psycopg2", "Error"):
        return Problem(f"{type(exc).__name__}: {one_line(exc)}", "")
    connection_hint = CONNECTION_HINT.format(family=family)
    code = str(getattr(exc, "pgcode", None) or "")
    text = " ".join(str(exc).split())
    if code:
        return _server_problem(code, text, role, connection_hint)
    reason = _reason(str(exc))
    lowered = reason.lower()
    if "password authentication failed" in lowered or "authentication failed" in lowered:
        return Problem(f"PostgreSQL at {where} refused the login: {reason}",
                       f"check user and password; {connection_hint}")
    if "does not support ssl" in lowered:
        return Problem(f"no TLS with PostgreSQL at {where}: {reason}",
                       "the server offers no TLS: enable ssl on it, or set sslmode: prefer (or disable) for this "
                       "connection")
    if ("certificate" in lowered or "ssl" in lowered) and "syscall" not in lowered:
        return Problem(f"TLS with PostgreSQL at {where} failed: {reason}",
                       "check sslrootcert and the server's certificate (verify-full also checks the host name)")
    if re.search(r'database ".*" does not exist', reason):
        return Problem(f"{reason} at {where}", f"create it or fix `database`; {connection_hint}")
    if re.search(r'role ".*" does not exist', reason) or "no pg_hba.conf entry" in lowered:
        return Problem(f"PostgreSQL at {where} refused the login: {reason}",
                       f"check `user`, or allow it in the server's pg_hba.conf; {connection_hint}")
    if "could not translate host name" in lowered:
        return Problem(f"unknown PostgreSQL host ({reason})", f"check `host`; {connection_hint}")
    if "too many clients" in lowered or "starting up" in lowered or "shutting down" in lowered \
            or "recovery mode" in lowered:
        return Problem(f"PostgreSQL at {where} is busy: {reason}", "retry later", transient=True)
    if any(word in lowered for word in ("connection refused", "could not connect", "timeout expired", "timed out",
                                        "no such file or directory", "is the server running")):
        return Problem(f"cannot connect to PostgreSQL at {where} ({reason})",
                       f"check host and port and that the server is running and reachable; {connection_hint}",
                       transient=True)
    if is_instance(exc, "psycopg2", "OperationalError") or is_instance(exc, "psycopg2", "InterfaceError"):
        return Problem(f"lost the connection to PostgreSQL at {where} ({reason})",
                       "retry; if it keeps happening check the server's logs and timeouts", transient=True)
    return Problem(f"PostgreSQL: {text}", connection_hint)


def _server_problem(code: str, text: str, role: Role, connection_hint: str) -> Problem:
    transient = code.startswith(TRANSIENT_SQLSTATES)
    if transient:
        return Problem(text, "retry; the server was busy, a transaction conflicted or the connection dropped",
                       transient=True)
    if code == "42P01":
        return Problem(text, "check the table name and its schema")
    if code == "3F000":
        return Problem(text, "check the schema name")
    if code == "42703":
        return Problem(text, "check the column names")
    if code == "42601":
        return Problem(text, "fix the query" if role == "read" else "check the names and the data")
    if code == "42501":
        return Problem(text, f"grant the privilege to the connection's user, or use another user; {connection_hint}")
    if code == "42P10":
        return Problem(text, "the table needs a PRIMARY KEY or UNIQUE constraint on exactly primary_key")
    if code == "42804" and role == "write":
        return Problem(text, "the input's column types do not fit the table: cast them upstream or use "
                             "write_mode: replace")
    if code.startswith("23"):
        return Problem(text, "the rows break a constraint of the table (key, NOT NULL or CHECK): fix or filter "
                             "them upstream")
    if code.startswith("22"):
        return Problem(text, "a value does not fit its column: fix or cast it upstream")
    return Problem(text, f"see PostgreSQL's error codes (SQLSTATE {code})")
