"""The `supabase` connection family: settings, the PostgREST client, the DDL channel, the doctor's check and
one-line error messages.

Supabase is PostgreSQL behind an HTTP API. Rows travel by COPY over `pg_dsn` or through PostgREST with a key;
SQL (DDL and the statement that moves staged rows in) goes over psycopg2 (`pg_dsn`) or HTTP SQL (`sql_url`,
pg-meta's `/pg/query`, which only self-hosted and local projects route). Hosted projects (`*.supabase.co`)
therefore need `pg_dsn` to write; `db.<ref>.supabase.co` is IPv6-only, so the DSN to use is the session
pooler's (`POOLER_DSN`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Literal
from urllib.parse import urlsplit

from osiris_core.errors import ConnectionConfigError, DriverError
from osiris_core.targets import api_uri
from osiris_drivers.connection import ConnectionFailed, ConnectionSettings, Problem, Role, is_instance
from osiris_drivers.postgres.connection import check_dsn, dsn_address, explain_postgres
from osiris_drivers.supabase.ddl_channel import DdlChannel, DdlError, HttpSqlChannel, Psycopg2Channel
from osiris_drivers.supabase.privileges import key_role
from osiris_drivers.supabase.rest import Rest, RestError, rest_client

if TYPE_CHECKING:
    from supabase import Client

DdlChannelName = Literal["auto", "http_sql", "psycopg2"]
DEFAULT_SQL_PATH = "/pg/query"
"""Where a self-hosted (or local CLI) project's gateway routes pg-meta's query endpoint."""
HOSTED_SUFFIXES = (".supabase.co", ".supabase.in")
POOLER_DSN = "postgresql://postgres.{ref}:<database password>@aws-0-<region>.pooler.supabase.com:5432/postgres"
"""The session pooler (IPv4 and IPv6; `db.<ref>.supabase.co:5432` is IPv6-only without the IPv4 add-on). The
dashboard's Connect dialog shows the exact string (the region, and `aws-1-` for some projects)."""
EXPOSED_SCHEMAS_HINT = ("add the schema to the Data API's exposed schemas (dashboard: Project Settings → Data API "
                        "→ Exposed schemas; self-hosted: PGRST_DB_SCHEMAS) and GRANT USAGE on it to the API roles, "
                        "or add pg_dsn to the supabase connection")


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

    @property
    def hosted(self) -> bool:
        """The URL is a hosted project's (`https://<ref>.supabase.co`): no HTTP SQL endpoint there."""
        host = (urlsplit(self.url).hostname or "").lower()
        return host.endswith(HOSTED_SUFFIXES)

    @property
    def pooler_dsn(self) -> str:
        """The session-pooler DSN form for this project (placeholders for what only the dashboard knows)."""
        host = urlsplit(self.url).hostname or ""
        ref = host.split(".")[0] if self.hosted and host.count(".") >= 2 else "<project-ref>"
        return POOLER_DSN.format(ref=ref)

    def target(self, *objects: str) -> str:
        """`https://<ref>.supabase.co/schema.table` (no credentials), whichever path the rows take."""
        return api_uri(self.url, *objects)

    def key(self, step_id: str) -> str:
        key = self.service_role_key or self.anon_key
        if not key:
            raise DriverError("the supabase connection has no key", step_id=step_id,
                              hint="set service_role_key (or anon_key) in osiris_connections.yaml")
        return key

    @property
    def key_role(self) -> str:
        """The database role PostgREST runs this connection's requests as."""
        return key_role(self.service_role_key or self.anon_key or "", service=bool(self.service_role_key))

    def rest(self, key: str, schema: str) -> Rest:
        """PostgREST for `schema` with `key` (supabase-py; failures are `RestError`s)."""
        return Rest(self.url, key, schema)

    def rest_client(self, key: str, schema: str) -> Client:
        """supabase-py's own client for `schema` (its APIErrors unclassified: prefer `rest`)."""
        return rest_client(self.url, key, schema)

    def sql_endpoint(self) -> str:
        return self.sql_url or self.url.rstrip("/") + DEFAULT_SQL_PATH

    def _config_error(self, step_id: str | None, message: str, hint: str) -> ConnectionConfigError:
        where = f"step '{step_id}': " if step_id else ""
        return ConnectionConfigError(f"{where}supabase connection {self.where}: {message}", hint=hint)

    def ddl_choice(self, requested: DdlChannelName, step_id: str | None = None) -> Literal["psycopg2", "http_sql"]:
        """The channel a writer uses: `auto` = psycopg2 with `pg_dsn`, else HTTP SQL at `sql_url`, or at
        `<url>/pg/query` for a URL that is not hosted Supabase's. A configuration that cannot work is a
        `ConnectionConfigError` (exit 2) naming the field to add, before anything is read or sent."""
        pooler = f"add pg_dsn: {self.pooler_dsn} (the session pooler, from the dashboard's Connect dialog)"
        if requested == "psycopg2" or (requested == "auto" and self.pg_dsn):
            if not self.pg_dsn:
                raise self._config_error(step_id, "ddl_channel psycopg2 needs pg_dsn",
                                         pooler if self.hosted else "add pg_dsn, or use ddl_channel: http_sql")
            return "psycopg2"
        if self.hosted and not self.sql_url:
            no_endpoint = (f"hosted Supabase projects have no HTTP SQL endpoint ({self.url.rstrip('/')}"
                           f"{DEFAULT_SQL_PATH} answers 'no Route matched')")
            if self.pg_dsn:  # ddl_channel: http_sql, asked for explicitly
                raise self._config_error(step_id, f"ddl_channel http_sql needs sql_url: {no_endpoint}",
                                         "use ddl_channel: auto (psycopg2 over pg_dsn)")
            raise self._config_error(step_id, f"writing needs pg_dsn: {no_endpoint}", pooler)
        if not self.service_role_key:
            raise self._config_error(step_id, "HTTP SQL needs service_role_key, and no pg_dsn is set",
                                     "add service_role_key or pg_dsn to the supabase connection")
        return "http_sql"

    def channel(self, step_id: str, requested: DdlChannelName) -> DdlChannel:
        """The DDL channel `ddl_choice` picks; never a no-op."""
        if self.ddl_choice(requested, step_id) == "psycopg2":
            assert self.pg_dsn is not None
            return Psycopg2Channel(self.pg_dsn)
        assert self.service_role_key is not None
        return HttpSqlChannel(self.sql_endpoint(), self.service_role_key)

    def check(self) -> str:
        """What a writer would use, each for real: the DDL channel `auto` picks (a configuration that cannot
        work fails before any request), PostgREST (a read of a table that should not exist: 'unknown table'
        proves reach and auth), pg_dsn, and HTTP SQL when it is available too."""
        key = self.service_role_key or self.anon_key
        if not key:
            raise ConnectionFailed(Problem("the supabase connection has no key",
                                           "add service_role_key (or anon_key) to it"))
        try:
            choice = self.ddl_choice("auto")
        except ConnectionConfigError as exc:
            raise ConnectionFailed(Problem(exc.message, exc.hint or "")) from None
        parts = []
        try:
            rest = self.rest(key, "public")
            rest.call(rest.table("_osiris_doctor_probe").select("*").limit(1).execute)
        except RestError as exc:
            if not exc.not_visible:
                raise
        parts.append(f"PostgREST ok (as {self.key_role})")
        if self.pg_dsn:
            parts.append("pg_dsn: " + check_dsn(self.pg_dsn))
        if choice == "http_sql" or (self.service_role_key and (self.sql_url or not self.hosted)):
            try:
                HttpSqlChannel(self.sql_endpoint(), self.service_role_key or "").run("select 1 as ok")
                parts.append("HTTP SQL ok")
            except DdlError as exc:
                if choice == "http_sql":
                    raise
                parts.append(f"HTTP SQL unavailable ({exc}): ddl_channel http_sql would fail")
        used = "psycopg2 over pg_dsn" if choice == "psycopg2" else f"http_sql at {self.sql_endpoint()}"
        parts.append(f"writers use {used} (ddl_channel: auto)")
        return "; ".join(parts)

    def problem(self, exc: Any, role: Role) -> Problem:
        if isinstance(exc, RestError):
            return self._rest_problem(exc, role)
        if isinstance(exc, DdlError):
            if exc.cause is not None:  # psycopg2 lost the connection mid-transaction: the family's words for it
                return self.problem(exc.cause, role)
            if exc.no_endpoint:
                return Problem(str(exc), f"add pg_dsn: {self.pooler_dsn} (hosted Supabase has no HTTP SQL "
                                         "endpoint), or set sql_url to a self-hosted project's pg-meta query URL")
            return Problem(str(exc), "check the connection's sql_url and key, or use ddl_channel: psycopg2",
                           transient=exc.transient)
        if _is_transport_error(exc):
            return Problem(f"cannot reach Supabase {self.where} ({type(exc).__name__}: {exc})",
                           "check url and that the project is up; retry", transient=True)
        if is_instance(exc, "psycopg2", "Error"):
            where = dsn_address(self.pg_dsn) if self.pg_dsn else self.where
            return explain_postgres(exc, role, where=where, family=self.family)
        return Problem(f"{type(exc).__name__}: {' '.join(str(exc).split())}", "")

    def _rest_problem(self, exc: RestError, role: Role) -> Problem:
        if exc.schema_not_exposed:
            return Problem(f"PostgREST does not expose that schema ({exc.describe()})", EXPOSED_SCHEMAS_HINT)
        if exc.sqlstate == "42501":
            return Problem(f"PostgREST, as {self.key_role}: {exc.describe()}",
                           f"GRANT the privilege on the table (and USAGE on its schema) to {self.key_role}; since "
                           "2026 Supabase grants new tables to no API role")
        if role == "check":
            return Problem(f"PostgREST answered {exc.describe()}", "check url and key", transient=exc.transient)
        if exc.not_visible:
            return Problem(f"PostgREST does not know the table ({exc.describe()})",
                           "check the table name and schema; a table created outside PostgREST appears after "
                           "NOTIFY pgrst, 'reload schema'")
        hint = ("check the table name, the key and its permissions" if role == "read"
                else "check the data against the table's types")
        return Problem(exc.describe(), hint, transient=exc.transient)


def _is_transport_error(exc: BaseException) -> bool:
    """httpx (supabase-py's HTTP client) could not complete the exchange: refused, reset, timed out."""
    import httpx

    return isinstance(exc, httpx.TransportError)


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
