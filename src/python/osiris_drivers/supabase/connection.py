"""Supabase connections: which key to use, which DDL channel, and the supabase-py client."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from osiris_core.driver import DriverConfig
from osiris_core.errors import DriverError
from osiris_drivers.postgres.ddl_channel import DdlChannel, HttpSqlChannel, Psycopg2Channel

if TYPE_CHECKING:
    from supabase import Client

DdlChannelName = Literal["auto", "http_sql", "psycopg2"]
DEFAULT_SQL_PATH = "/pg/query"
"""Where Supabase's pg-meta answers `{"query": …}`; override with the connection's `sql_url`."""


class SupabaseConnectionFields(DriverConfig):
    """The fields a `supabase` connection supplies; every supabase.* driver config extends this."""

    url: str
    service_role_key: str | None = None
    anon_key: str | None = None
    pg_dsn: str | None = None
    sql_url: str | None = None


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


def api_key(*, step_id: str, service_role_key: str | None, anon_key: str | None) -> str:
    key = service_role_key or anon_key
    if not key:
        raise DriverError("the supabase connection has no key", step_id=step_id,
                          hint="set service_role_key (or anon_key) in osiris_connections.yaml")
    return key


def sql_endpoint(url: str, sql_url: str | None) -> str:
    return sql_url or url.rstrip("/") + DEFAULT_SQL_PATH


def ddl_channel(*, step_id: str, requested: DdlChannelName, url: str, service_role_key: str | None,
                pg_dsn: str | None, sql_url: str | None) -> DdlChannel:
    """`auto` = psycopg2 when `pg_dsn` is set, else HTTP SQL with the service role key; never a no-op."""
    choice = requested if requested != "auto" else ("psycopg2" if pg_dsn else "http_sql")
    if choice == "psycopg2":
        if not pg_dsn:
            raise DriverError("ddl_channel psycopg2 needs pg_dsn in the connection", step_id=step_id,
                              hint="add pg_dsn to the connection, or use ddl_channel: http_sql")
        return Psycopg2Channel(pg_dsn)
    if not service_role_key:
        raise DriverError("no DDL channel available: http_sql needs service_role_key and no pg_dsn is set",
                          step_id=step_id, hint="add service_role_key or pg_dsn to the supabase connection")
    return HttpSqlChannel(sql_endpoint(url, sql_url), service_role_key)


def rest_client(url: str, key: str, schema: str) -> Client:
    from supabase import ClientOptions, create_client

    return create_client(url, key, options=ClientOptions(schema=schema))
