"""The `mysql` connection family: typed settings, pymysql sessions, ConnectorX URLs, the doctor's check and
one-line error messages.

pymysql is imported only when a session is opened. Sessions are `osiris_drivers.mysql.client.SafeConnection`s:
they send a local file only when the writer offers it, whatever the server asks. TLS follows `ssl_mode` (libpq's
names) with `ssl_ca` as the trusted CA file.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import quote

from pydantic import Field, SecretStr

from osiris_core.targets import database_uri
from osiris_drivers.connection import ConnectionSettings, Problem, Role, import_client, is_instance, one_line
from osiris_drivers.endpoint import HostName, SslMode
from osiris_drivers.sql.dialect import TableName, split_name

if TYPE_CHECKING:
    from osiris_drivers.mysql.client import SafeConnection

CONNECT_TIMEOUT_S = 10
CHECK_TIMEOUT_S = 5
SESSION_TIME_ZONE = "SET time_zone = '+00:00'"
"""Every Osiris session reads and writes TIMESTAMP columns in UTC, whatever the server's time zone."""

CONNECTION_HINT = "check the mysql connection in osiris_connections.yaml"

# MySQL / MariaDB error codes Osiris explains (server ER_* and client CR_* codes).
ER_TOO_MANY_CONNECTIONS = 1040
ER_DBACCESS_DENIED = 1044
ER_ACCESS_DENIED = 1045
ER_BAD_NULL = 1048
ER_BAD_DB = 1049
ER_SERVER_SHUTDOWN = 1053
ER_BAD_FIELD = 1054
ER_DUP_FIELDNAME = 1060
ER_DUP_ENTRY = 1062
ER_PARSE = 1064
ER_TABLEACCESS_DENIED = 1142
ER_COLUMNACCESS_DENIED = 1143
ER_NO_SUCH_TABLE = 1146
ER_TOO_MANY_USER_CONNECTIONS = 1203
ER_LOCK_WAIT_TIMEOUT = 1205
ER_LOCK_DEADLOCK = 1213
ER_WARN_DATA_OUT_OF_RANGE = 1264
ER_WARN_DATA_TRUNCATED = 1265
ER_TRUNCATED_WRONG_VALUE = 1366
ER_DATA_TOO_LONG = 1406
ER_CONNECTION_KILLED = 1927
ER_QUERY_TIMEOUT = 3024
CR_CONNECTION_ERROR = 2002
CR_CONN_HOST_ERROR = 2003
CR_UNKNOWN_HOST = 2005
CR_SERVER_GONE = 2006
CR_SERVER_LOST = 2013
CR_SSL_CONNECTION_ERROR = 2026
CR_LOAD_DATA_LOCAL_INFILE_REJECTED = 2068
LOST = frozenset({CR_SERVER_GONE, CR_SERVER_LOST, ER_CONNECTION_KILLED, ER_SERVER_SHUTDOWN})
BUSY = frozenset({ER_TOO_MANY_CONNECTIONS, ER_TOO_MANY_USER_CONNECTIONS, ER_LOCK_WAIT_TIMEOUT, ER_LOCK_DEADLOCK,
                  ER_QUERY_TIMEOUT})
BAD_VALUES = frozenset({ER_BAD_NULL, ER_WARN_DATA_OUT_OF_RANGE, ER_WARN_DATA_TRUNCATED, ER_TRUNCATED_WRONG_VALUE,
                        ER_DATA_TOO_LONG})
TRANSIENT_CODES = LOST | BUSY | {CR_CONNECTION_ERROR, CR_CONN_HOST_ERROR}


class MySQLSettings(ConnectionSettings):
    """The fields a `mysql` connection supplies; the drivers' configs extend it with their own keys."""

    family: ClassVar[str] = "mysql"
    secret_fields: ClassVar[tuple[str, ...]] = ("password",)

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

    @property
    def where(self) -> str:
        return f"at {self.host}:{self.port}"

    def table_name(self, table: str) -> TableName:
        """`db.table` or `table` (in the connection's database)."""
        return split_name(table, self.database)

    def target(self, table: TableName | None) -> str:
        """`mysql://host:port/db/table`, or `mysql://host:port/db#query` for a query (no credentials)."""
        if table is None:
            return database_uri("mysql", self.host, self.port, self.database) + "#query"
        return database_uri("mysql", self.host, self.port, table.schema, table.name)

    def connect(self, *, local_infile: bool = False, autocommit: bool = True,
                timeout: float = CONNECT_TIMEOUT_S) -> SafeConnection:
        """A pymysql session in utf8mb4 with time_zone UTC, TLS per `ssl_mode`. With `local_infile` the server may
        load only the file the caller offers (`SafeConnection.offering`); any other request fails the statement.

        The password goes as UTF-8 bytes (pymysql would send a str as latin-1, so non-ASCII passwords failed);
        `binary_prefix` sends bytes as `_binary'…'`, so BLOB values are never decoded as utf8mb4 text.
        """
        import_client("pymysql", project="pymysql", family=self.family)
        from osiris_drivers.mysql.client import SafeConnection

        return SafeConnection(host=self.host, port=self.port, user=self.user,
                              password=self.password.get_secret_value().encode("utf-8"), database=self.database,
                              charset="utf8mb4", autocommit=autocommit, local_infile=local_infile,
                              connect_timeout=timeout, init_command=SESSION_TIME_ZONE, binary_prefix=True,
                              **self._tls_options())

    def _tls_options(self) -> dict[str, Any]:
        """pymysql's TLS arguments for `ssl_mode`: an `ssl.SSLContext` makes TLS required (pymysql refuses a server
        without it); no argument is pymysql's own "preferred" mode."""
        import ssl

        import pymysql

        mode = self.ssl_mode
        if mode == "disable":
            return {"ssl_disabled": True}
        if mode == "prefer":
            return {}
        try:
            context = ssl.create_default_context(cafile=self.ssl_ca)
        except (OSError, ssl.SSLError) as exc:
            raise pymysql.err.OperationalError(
                CR_SSL_CONNECTION_ERROR, f"cannot use ssl_ca '{self.ssl_ca}': {exc.strerror or exc}") from None
        context.check_hostname = mode == "verify-full"
        context.verify_mode = ssl.CERT_NONE if mode == "require" else ssl.CERT_REQUIRED
        return {"ssl": context}

    def connectorx_url(self) -> str:
        """`mysql://user:password@host:port/database` with every part URL-encoded (ConnectorX decodes them)."""
        user = quote(self.user, safe="")
        secret = self.password.get_secret_value()
        auth = f"{user}:{quote(secret, safe='')}" if secret else user
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"mysql://{auth}@{host}:{self.port}/{quote(self.database, safe='')}"

    def check(self) -> str:
        session = self.connect(timeout=CHECK_TIMEOUT_S)
        with session, session.cursor() as cursor:
            cursor.execute("SELECT VERSION(), CURRENT_USER()")
            row = cursor.fetchone()
        version, account = (str(row[0]), str(row[1])) if row else ("unknown version", self.user)
        flavour = "MariaDB" if "mariadb" in version.lower() else "MySQL"
        return f"ok: {flavour} {version.split('-')[0]} at {self.address} as {account}"

    def problem(self, exc: BaseException, role: Role) -> Problem:
        """A pymysql error as one line with a hint for `role`."""
        if not is_instance(exc, "pymysql.err", "MySQLError"):
            return Problem(f"{type(exc).__name__}: {one_line(exc)}", "")
        code = error_code(exc)
        text = error_text(exc)
        where = f"{self.host}:{self.port}"
        if code == ER_ACCESS_DENIED:
            return Problem(f"access denied for user '{self.user}' at {where}",
                           f"check user and password; {CONNECTION_HINT}")
        if code == ER_DBACCESS_DENIED:
            return Problem(f"user '{self.user}' may not use database '{self.database}' at {where}",
                           f"grant access or use another database; {CONNECTION_HINT}")
        if code == ER_BAD_DB:
            return Problem(f"database '{self.database}' does not exist at {where}",
                           f"create it or fix `database`; {CONNECTION_HINT}")
        if code == CR_CONN_HOST_ERROR and ("SSL" in text or "certificate" in text.lower()):
            return Problem(f"TLS with MySQL at {where} failed ({_tls_reason(text)})",
                           "check the server's certificate against ssl_ca (verify-full also checks the host name); "
                           f"{CONNECTION_HINT}")
        if code in (CR_CONN_HOST_ERROR, CR_CONNECTION_ERROR):
            return Problem(f"cannot connect to MySQL at {where} ({_reason(text)})",
                           f"check host and port and that the server is running and reachable; {CONNECTION_HINT}",
                           transient=True)
        if code == CR_LOAD_DATA_LOCAL_INFILE_REJECTED:
            return Problem(f"the MySQL server at {where} asked for a local file this step does not send ({text})",
                           "only the writer's own temporary file is ever sent; a server that asks for another file "
                           f"is misconfigured or hostile: check `host`; {CONNECTION_HINT}")
        if code == CR_SSL_CONNECTION_ERROR:
            return Problem(f"no TLS with MySQL at {where} (ssl_mode {self.ssl_mode}): {text}",
                           "enable TLS on the server (have_ssl = YES), fix ssl_ca, or set ssl_mode: prefer or "
                           f"disable; {CONNECTION_HINT}")
        if code == CR_UNKNOWN_HOST:
            return Problem(f"unknown MySQL host '{self.host}'", f"check `host`; {CONNECTION_HINT}")
        if code in LOST:
            return Problem(f"lost the connection to MySQL at {where} ({text})",
                           "retry; if it keeps happening check the server's logs, timeouts and max_allowed_packet",
                           transient=True)
        if code in BUSY:
            return Problem(f"MySQL at {where} is busy (error {code}: {text})",
                           "retry later (too many connections, a lock wait or a deadlock)", transient=True)
        if code == ER_NO_SUCH_TABLE:
            return Problem(text, "check the table name (and its database)")
        if code == ER_BAD_FIELD:
            return Problem(text, "check the column names")
        if code == ER_DUP_FIELDNAME:
            return Problem(text, "give every selected column a distinct name (… AS alias)")
        if code == ER_PARSE:
            return Problem(f"SQL syntax error: {text}", "fix the query")
        if code in (ER_TABLEACCESS_DENIED, ER_COLUMNACCESS_DENIED):
            return Problem(text, f"grant the privilege to '{self.user}' or use another user")
        if code == ER_DUP_ENTRY and role == "write":
            return Problem(text, "the input repeats a key, or a key already in the table (write_mode: upsert "
                                 "updates those rows)")
        if code in BAD_VALUES and role == "write":
            return Problem(text, "fix, cast or filter those values upstream")
        if code is not None:
            return Problem(f"MySQL error {code}: {text}", "see the MySQL error reference for this code",
                           transient=code in TRANSIENT_CODES)
        return Problem(f"{type(exc).__name__}: {text}", CONNECTION_HINT)


def error_code(exc: BaseException) -> int | None:
    """The MySQL error code of a pymysql exception (`args[0]`), else None."""
    args = exc.args
    return args[0] if args and isinstance(args[0], int) else None


def error_text(exc: BaseException) -> str:
    """The server's or library's message without the code; one line."""
    args = exc.args
    text = str(args[1]) if len(args) > 1 and isinstance(args[0], int) else str(exc)
    return " ".join(text.split())


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
