"""The `mysql` connection family: typed settings, ConnectorX URLs, pymysql sessions and one-line error messages.

pymysql and ConnectorX are imported inside the functions that need them, so importing this module is cheap.
Sessions are `osiris_drivers.mysql.client.SafeConnection`s: they send a local file only when the writer offers
it, whatever the server asks. TLS follows `ssl_mode` (libpq's names) with `ssl_ca` as the trusted CA file.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from pydantic import Field, SecretStr, ValidationError

from osiris_core.driver import DriverConfig
from osiris_core.errors import ConnectionConfigError, RunError
from osiris_drivers.endpoint import HostName, SslMode

if TYPE_CHECKING:
    from osiris_drivers.mysql.client import SafeConnection

CONNECT_TIMEOUT_S = 10
CHECK_TIMEOUT_S = 5
SESSION_TIME_ZONE = "SET time_zone = '+00:00'"
"""Every Osiris session reads and writes TIMESTAMP columns in UTC, whatever the server's time zone."""

CONNECTION_HINT = "check the mysql connection in osiris_connections.yaml"

# MySQL / MariaDB error codes Osiris explains (server ER_* and client CR_* codes).
ER_DBACCESS_DENIED = 1044
ER_ACCESS_DENIED = 1045
ER_BAD_DB = 1049
ER_TOO_MANY_CONNECTIONS = 1040
ER_BAD_FIELD = 1054
ER_DUP_FIELDNAME = 1060
ER_PARSE = 1064
ER_TABLEACCESS_DENIED = 1142
ER_COLUMNACCESS_DENIED = 1143
ER_NO_SUCH_TABLE = 1146
ER_LOCK_WAIT_TIMEOUT = 1205
ER_LOCK_DEADLOCK = 1213
CR_CONN_HOST_ERROR = 2003
CR_UNKNOWN_HOST = 2005
CR_SERVER_GONE = 2006
CR_SERVER_LOST = 2013
CR_SSL_CONNECTION_ERROR = 2026
CR_LOAD_DATA_LOCAL_INFILE_REJECTED = 2068
TRANSIENT_CODES = frozenset({ER_TOO_MANY_CONNECTIONS, ER_LOCK_WAIT_TIMEOUT, ER_LOCK_DEADLOCK, CR_CONN_HOST_ERROR,
                             CR_SERVER_GONE, CR_SERVER_LOST})


class MySQLSettings(DriverConfig):
    """The fields a `mysql` connection supplies; the drivers' configs extend it with their own keys."""

    host: HostName
    port: int = Field(default=3306, ge=1, le=65535)
    database: str = Field(min_length=1)
    user: str = Field(min_length=1)
    password: SecretStr = SecretStr("")
    ssl_mode: SslMode = "prefer"
    ssl_ca: str | None = Field(default=None, min_length=1)

    @property
    def address(self) -> str:
        """`host:port/database`, for messages (never the user's password)."""
        return f"{self.host}:{self.port}/{self.database}"

    def scrub(self, text: str) -> str:
        """`text` with the password (plain or URL-encoded) replaced by `***`."""
        secret = self.password.get_secret_value()
        if secret:
            for form in (secret, quote(secret, safe=""), quote(secret)):
                text = text.replace(form, "***")
        return text


class MySQLConnectionError(RunError):
    """A MySQL server that cannot be used with the given settings; `transient` ones may work on retry."""

    def __init__(self, message: str, *, hint: str | None = None, transient: bool = False) -> None:
        self.transient = transient
        super().__init__(message, hint=hint)


@dataclass(frozen=True)
class Problem:
    """What went wrong, in one line, what to do about it, and whether retrying may help."""

    message: str
    hint: str
    transient: bool = False


def error_code(exc: BaseException) -> int | None:
    """The MySQL error code of a pymysql exception (`args[0]`), else None."""
    args = exc.args
    return args[0] if args and isinstance(args[0], int) else None


def error_text(exc: BaseException) -> str:
    """The server's or library's message without the code; one line."""
    args = exc.args
    text = str(args[1]) if len(args) > 1 and isinstance(args[0], int) else str(exc)
    return " ".join(text.split())


def explain(exc: BaseException, settings: MySQLSettings) -> Problem:
    """Turn a pymysql error into a one-line message with a hint; the password never appears."""
    code = error_code(exc)
    text = settings.scrub(error_text(exc))
    where = f"{settings.host}:{settings.port}"
    transient = code in TRANSIENT_CODES
    if code == ER_ACCESS_DENIED:
        return Problem(f"access denied for user '{settings.user}' at {where}",
                       f"check user and password; {CONNECTION_HINT}")
    if code == ER_DBACCESS_DENIED:
        return Problem(f"user '{settings.user}' may not use database '{settings.database}' at {where}",
                       f"grant access or use another database; {CONNECTION_HINT}")
    if code == ER_BAD_DB:
        return Problem(f"database '{settings.database}' does not exist at {where}",
                       f"create it or fix `database`; {CONNECTION_HINT}")
    if code == CR_CONN_HOST_ERROR and ("SSL" in text or "certificate" in text.lower()):
        return Problem(f"TLS with MySQL at {where} failed ({_tls_reason(text)})",
                       "check the server's certificate against ssl_ca (verify-full also checks the host name); "
                       f"{CONNECTION_HINT}")
    if code == CR_CONN_HOST_ERROR:
        return Problem(f"cannot connect to MySQL at {where} ({_reason(text)})",
                       f"check host and port and that the server is running and reachable; {CONNECTION_HINT}",
                       transient=True)
    if code == CR_LOAD_DATA_LOCAL_INFILE_REJECTED:
        return Problem(f"the MySQL server at {where} asked for a local file this step does not send ({text})",
                       "only the writer's own temporary file is ever sent; a server that asks for another file is "
                       f"misconfigured or hostile: check `host`; {CONNECTION_HINT}")
    if code == CR_SSL_CONNECTION_ERROR:
        return Problem(f"no TLS with MySQL at {where} (ssl_mode {settings.ssl_mode}): {text}",
                       "enable TLS on the server (have_ssl = YES), fix ssl_ca, or set ssl_mode: prefer or disable; "
                       f"{CONNECTION_HINT}")
    if code == CR_UNKNOWN_HOST:
        return Problem(f"unknown MySQL host '{settings.host}'", f"check `host`; {CONNECTION_HINT}")
    if code in (CR_SERVER_GONE, CR_SERVER_LOST):
        return Problem(f"lost the connection to MySQL at {where} ({text})",
                       "retry; if it keeps happening check the server's logs, timeouts and max_allowed_packet",
                       transient=True)
    if code == ER_NO_SUCH_TABLE:
        return Problem(text, "check the table name (and its database)")
    if code == ER_BAD_FIELD:
        return Problem(text, "check the column names")
    if code == ER_DUP_FIELDNAME:
        return Problem(text, "give every selected column a distinct name (… AS alias)")
    if code == ER_PARSE:
        return Problem(f"SQL syntax error: {text}", "fix the query")
    if code in (ER_TABLEACCESS_DENIED, ER_COLUMNACCESS_DENIED):
        return Problem(text, f"grant the privilege to '{settings.user}' or use another user")
    if code in (ER_TOO_MANY_CONNECTIONS, ER_LOCK_WAIT_TIMEOUT, ER_LOCK_DEADLOCK):
        return Problem(f"MySQL error {code}: {text}", "retry later", transient=True)
    if code is not None:
        return Problem(f"MySQL error {code}: {text}", "see the MySQL error reference for this code",
                       transient=transient)
    return Problem(f"{type(exc).__name__}: {text}", CONNECTION_HINT)


def _tls_reason(text: str) -> str:
    """`… ([SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: self-signed certificate (_ssl.c:1006))`
    → `certificate verify failed: self-signed certificate`."""
    match = re.search(r"\[SSL[^\]]*\]\s*([^()]+)", text)
    return match[1].strip() if match else _reason(text)


def _reason(text: str) -> str:
    """`Can't connect to MySQL server on 'h' ([Errno 111] Connection refused)` → `Connection refused`."""
    start, end = text.rfind("("), text.rfind(")")
    inner = text[start + 1:end] if 0 <= start < end else text
    return inner.split("] ", 1)[-1] if inner.startswith("[") else inner


def connectorx_url(settings: MySQLSettings) -> str:
    """`mysql://user:password@host:port/database` with every part URL-encoded (ConnectorX decodes them)."""
    user = quote(settings.user, safe="")
    secret = settings.password.get_secret_value()
    auth = f"{user}:{quote(secret, safe='')}" if secret else user
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    return f"mysql://{auth}@{host}:{settings.port}/{quote(settings.database, safe='')}"


def tls_options(settings: MySQLSettings) -> dict[str, Any]:
    """pymysql's TLS arguments for `ssl_mode`: an `ssl.SSLContext` makes TLS required (pymysql refuses a server
    without it); no argument is pymysql's own "preferred" mode."""
    import ssl

    import pymysql

    mode = settings.ssl_mode
    if mode == "disable":
        return {"ssl_disabled": True}
    if mode == "prefer":
        return {}
    try:
        context = ssl.create_default_context(cafile=settings.ssl_ca)
    except (OSError, ssl.SSLError) as exc:
        raise pymysql.err.OperationalError(
            CR_SSL_CONNECTION_ERROR, f"cannot use ssl_ca '{settings.ssl_ca}': {exc.strerror or exc}") from None
    context.check_hostname = mode == "verify-full"
    context.verify_mode = ssl.CERT_NONE if mode == "require" else ssl.CERT_REQUIRED
    return {"ssl": context}


def connect(settings: MySQLSettings, *, local_infile: bool = False, autocommit: bool = True,
            timeout: float = CONNECT_TIMEOUT_S) -> SafeConnection:
    """A pymysql session in utf8mb4 with time_zone UTC, TLS per `ssl_mode`; pymysql errors propagate (see
    `explain`). With `local_infile` the server may load only the file the caller offers
    (`SafeConnection.offering`); any other LOCAL INFILE request fails the statement.

    The password goes as UTF-8 bytes (pymysql would send a str as latin-1, so non-ASCII passwords failed);
    `binary_prefix` sends bytes as `_binary'…'`, so BLOB values are never decoded as utf8mb4 text.
    """
    from osiris_drivers.mysql.client import SafeConnection

    return SafeConnection(host=settings.host, port=settings.port, user=settings.user,
                          password=settings.password.get_secret_value().encode("utf-8"), database=settings.database,
                          charset="utf8mb4", autocommit=autocommit, local_infile=local_infile,
                          connect_timeout=timeout, init_command=SESSION_TIME_ZONE, binary_prefix=True,
                          **tls_options(settings))


def quote_ident(name: str) -> str:
    """A MySQL identifier in backticks (reserved words and any case are safe)."""
    return "`" + name.replace("`", "``") + "`"


def split_table(table: str, default_database: str) -> tuple[str, str]:
    """`db.table` or `table` → (database, table); the database defaults to the connection's."""
    database, _, name = table.rpartition(".")
    return database or default_database, name


def qualified(database: str, table: str) -> str:
    return f"{quote_ident(database)}.{quote_ident(table)}"


def check_mysql(fields: Mapping[str, Any]) -> str:
    """Connect with `fields` (a resolved `mysql` connection) and run `SELECT VERSION()`.

    Returns a short verdict without secrets; raises `ConnectionConfigError` for unusable fields and
    `MySQLConnectionError` (with `transient` set when a retry may help) when the server cannot be used.
    """
    try:
        settings = MySQLSettings.model_validate({k: v for k, v in fields.items() if k != "default"})
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(p) for p in first["loc"])
        raise ConnectionConfigError(f"mysql connection field '{key}': {first['msg']}",
                                    hint="fields: host, port, database, user, password, ssl_mode, ssl_ca; "
                                         f"{CONNECTION_HINT}") from None
    try:
        session = connect(settings, timeout=CHECK_TIMEOUT_S)
        with session, session.cursor() as cursor:
            cursor.execute("SELECT VERSION(), CURRENT_USER()")
            row = cursor.fetchone()
    except Exception as exc:
        problem = explain(exc, settings)
        raise MySQLConnectionError(problem.message, hint=problem.hint, transient=problem.transient) from None
    version, account = (str(row[0]), str(row[1])) if row else ("unknown version", settings.user)
    flavour = "MariaDB" if "mariadb" in version.lower() else "MySQL"
    return f"ok: {flavour} {version.split('-')[0]} at {settings.address} as {account}"
