"""The `supabase` connection family: settings, the supabase-py (PostgREST) client, the DDL channel, the doctor's
check and one-line error messages.

Supabase is PostgreSQL behind an HTTP API: `pg_dsn` (optional) is a PostgreSQL DSN, so SQL, types and its errors
come from the `postgres` family; rows travel by COPY over `pg_dsn` or through PostgREST with a key.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Literal
from urllib.parse import urlsplit

from osiris_core.errors import DriverError
from osiris_core.masking import scrub_text
from osiris_core.targets import api_uri
from osiris_drivers.connection import ConnectionFailed, ConnectionSettings, Problem, Role, import_client, is_instance
from osiris_drivers.postgres.connection import check_dsn, dsn_address, explain_postgres
from osiris_drivers.supabase.ddl_channel import DdlChannel, DdlError, HttpSqlChannel, Psycopg2Channel

if TYPE_CHECKING:
    from supabase import Client

DdlChannelName = Literal["auto", "http_sql", "psycopg2"]
DEFAULT_SQL_PATH = "/pg/query"
"""Where Supabase's pg-meta answers `{"query": …}`; override with the connection's `sql_url`."""
TRANSIENT_HTTP_CODES = frozenset({"408", "425", "429", "500", "502", "503", "504", "520", "522", "524"})
TRANSIENT_POSTGREST_CODES = frozenset({"PGRST000", "PGRST001", "PGRST002", "PGRST205"})
"""Connection and schema-cache errors; PGRST205 (unknown table) is transient for a just-created stage."""
UNKNOWN_TABLE_CODES = frozenset({"PGRST205", "42P01"})
DDL_HINT = "check the connection's sql_url and key, or use ddl_channel: psycopg2"


class SupabaseSettings(ConnectionSettings):
    """The fields a `supabase` connection supplies; every supabase.* driver config extends this."""

    family: ClassVar[str] = "supabase"
    secret_fields: ClassVar[tuple[str, ...]] = ("service_role_key", "anon_key", "pg_dsn")

    url: str
    service_role_key: str | None = None
    anon_key: str | None = None
    pg_dsn: str | None = None
    sql_url: str | None = None

    @property
    def where(self) -> str:
        """`at <project host>`: the project, whichever path the rows take."""
        parts = urlsplit(self.url)
        return f"at {parts.hostname or self.url}" + (f":{parts.port}" if parts.port else "")

    def target(self, *objects: str) -> str:
        """`https://<ref>.supabase.co/schema.table` (no credentials), whichever path the rows take."""
        return api_uri(self.url, *objects)

    def key(self, step_id: str) -> str:
        key = self.service_role_key or self.anon_key
        if not key:
            raise DriverError("the supabase connection has no key", step_id=step_id,
                              hint="set service_role_key (or anon_key) in osiris_connections.yaml")
        return key

    def rest_client(self, key: str, schema: str) -> Client:
        import_client("supabase", project="supabase", family=self.family)
        from supabase import ClientOptions, create_client

        return create_client(self.url, key, options=ClientOptions(schema=schema))

    def sql_endpoint(self) -> str:
        return self.sql_url or self.url.rstrip("/") + DEFAULT_SQL_PATH

    def channel(self, step_id: str, requested: DdlChannelName) -> DdlChannel:
        """`auto` = psycopg2 when `pg_dsn` is set, else HTTP SQL with the service role key; never a no-op."""
        choice = requested if requested != "auto" else ("psycopg2" if self.pg_dsn else "http_sql")
        if choice == "psycopg2":
            if not self.pg_dsn:
                raise DriverError("ddl_channel psycopg2 needs pg_dsn in the connection", step_id=step_id,
                                  hint="add pg_dsn to the connection, or use ddl_channel: http_sql")
            return Psycopg2Channel(self.pg_dsn)
        if not self.service_role_key:
            raise DriverError("no DDL channel available: http_sql needs service_role_key and no pg_dsn is set",
                              step_id=step_id, hint="add service_role_key or pg_dsn to the supabase connection")
        return HttpSqlChannel(self.sql_endpoint(), self.service_role_key)

    def check(self) -> str:
        """PostgREST (a read of a table that should not exist: 'unknown table' proves reach and auth), the DDL
        channel (`select 1` over HTTP SQL with the service role key), and pg_dsn when set."""
        key = self.service_role_key or self.anon_key
        if not key:
            raise ConnectionFailed(Problem("the supabase connection has no key",
                                           "add service_role_key (or anon_key) to it"))
        from postgrest.exceptions import APIError

        parts = []
        try:
            self.rest_client(key, "public").table("_osiris_doctor_probe").select("*").limit(1).execute()
        except APIError as exc:
            if str(exc.code) not in UNKNOWN_TABLE_CODES:
                raise
        parts.append("PostgREST ok")
        if self.service_role_key:
            try:
                HttpSqlChannel(self.sql_endpoint(), self.service_role_key).run("select 1 as ok")
                parts.append("HTTP SQL ok")
            except DdlError as exc:
                parts.append(f"HTTP SQL unavailable ({exc}); DDL needs pg_dsn")
        if self.pg_dsn:
            parts.append("pg_dsn: " + check_dsn(self.pg_dsn))
        return "; ".join(parts)

    def problem(self, exc: Any, role: Role) -> Problem:
        if is_api_error(exc):
            if role == "check":
                return Problem(f"PostgREST answered {exc.code}: {exc.message}", "check url and key",
                               transient=postgrest_transient(exc))
            hint = ("check the table name, the key and its permissions" if role == "read"
                    else "check the data against the table's types")
            return Problem(describe_postgrest(exc), hint, transient=postgrest_transient(exc))
        if isinstance(exc, DdlError):
            return Problem(str(exc), DDL_HINT, transient=exc.transient)
        if _is_transport_error(exc):
            return Problem(f"cannot reach Supabase {self.where} ({type(exc).__name__}: {exc})",
                           "check url and that the project is up; retry", transient=True)
        if is_instance(exc, "psycopg2", "Error"):
            where = dsn_address(self.pg_dsn) if self.pg_dsn else self.where
            return explain_postgres(exc, role, where=where, family=self.family)
        return Problem(f"{type(exc).__name__}: {' '.join(str(exc).split())}", "")


def is_api_error(exc: BaseException) -> bool:
    """A PostgREST error answer (postgrest's APIError: `code`, `message`, `details`)."""
    return is_instance(exc, "postgrest.exceptions", "APIError")


def _is_transport_error(exc: BaseException) -> bool:
    """httpx (supabase-py's HTTP client) could not complete the exchange: refused, reset, timed out."""
    import httpx

    return isinstance(exc, httpx.TransportError)


def postgrest_transient(exc: Any) -> bool:
    """Whether a PostgREST call may succeed on retry (transport errors, 5xx/429, schema-cache misses)."""
    if _is_transport_error(exc):
        return True
    if is_api_error(exc):
        return str(exc.code) in TRANSIENT_HTTP_CODES or str(exc.code) in TRANSIENT_POSTGREST_CODES
    return False


def describe_postgrest(exc: Any) -> str:
    """What PostgREST (or the HTTP client) said, on one line, without URL credentials."""
    if is_api_error(exc):
        text = f"{exc.code}: {exc.message}" + (f" ({exc.details})" if exc.details else "")
    else:
        text = f"{type(exc).__name__}: {exc}"
    return scrub_text(" ".join(text.split()))


def postgrest_field(name: str) -> str:
    """A column name as PostgREST's query grammar reads it in `select=`, `order=`, `columns=`, `on_conflict=`:
    double-quoted, with `\\` and `"` backslash-escaped, so commas, dots, colons, parentheses and quotes in a name
    stay part of it."""
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def postgrest_resource(step_id: str, table: str) -> str:
    """`table` if PostgREST can address it: the name becomes a URL path segment, where `/`, `.` and `..` would
    reach other endpoints."""
    if "/" in table or table in (".", ".."):
        raise DriverError(f"table name '{table}' cannot be read through PostgREST (it would be a URL path)",
                          step_id=step_id, hint="add pg_dsn to the supabase connection to read it over SQL")
    return table
