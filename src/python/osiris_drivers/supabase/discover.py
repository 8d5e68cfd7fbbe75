"""The `supabase` family's catalog: with `pg_dsn`, the PostgreSQL catalog (`osiris_drivers.postgres.discover`);
with only `url` and a key, PostgREST's OpenAPI description (`GET /rest/v1/`, in the schema's profile) with a
planner's row estimate per table (`HEAD` with `Prefer: count=planned`). PostgREST does not say which endpoints are
views: one it cannot write through is listed as a view, one it can (a simple view) as a table.

Dry-run plans follow the writer's and extractor's own choice of path: COPY/psycopg2 over `pg_dsn`, else the DDL
channel or PostgREST."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from osiris_core.driver import DriverConfig, StepContext, StepPlan
from osiris_core.errors import DriverError, InputError
from osiris_drivers.catalog import Catalog, Column, FamilyCatalog, Relation
from osiris_drivers.connection import ConnectionFailed, Problem, import_client
from osiris_drivers.postgres.connection import dsn_address
from osiris_drivers.postgres.copy import CopyWriter
from osiris_drivers.postgres.dialect import POSTGRES
from osiris_drivers.postgres.discover import DEFAULT_SCHEMA, catalog_over_dsn, table_config
from osiris_drivers.postgres.source import PostgresSource
from osiris_drivers.sql.dialect import TableName
from osiris_drivers.sql.extractor import check_source
from osiris_drivers.sql.writer import TableWriter, planned_input
from osiris_drivers.supabase.connection import SupabaseSettings
from osiris_drivers.supabase.ddl_channel import DdlChannel, Psycopg2Channel
from osiris_drivers.supabase.extractor.driver import SupabaseExtractorConfig
from osiris_drivers.supabase.writer.driver import SupabaseWriterConfig

if TYPE_CHECKING:
    import httpx

REST_PATH = "/rest/v1/"
HTTP_TIMEOUT_S = 30
PK_MARKER = "<pk/>"
"""PostgREST's OpenAPI marks primary-key columns with this in their description."""
WRITE_METHODS = ("post", "patch", "delete")
KEY_HINT = ("check service_role_key / anon_key (reading PostgREST's OpenAPI description may need the service "
            "role key), or add pg_dsn")


class SupabaseCatalog(FamilyCatalog[SupabaseSettings]):
    settings = SupabaseSettings

    def discover(self, settings: SupabaseSettings, schema: str | None) -> Catalog:
        if settings.pg_dsn:
            return catalog_over_dsn(settings.pg_dsn, schema, where=f"at {dsn_address(settings.pg_dsn)}",
                                    location=settings.target(), target=settings.target)
        chosen = schema or DEFAULT_SCHEMA
        with _rest(settings) as rest:
            relations = [
                Relation(name, kind, columns, settings.target(chosen, name), schema=chosen,
                         rows=rest.planned_rows(chosen, name) if kind == "table" else None)
                for name, kind, columns in rest.relations(chosen)]
        return Catalog(settings.target(), chosen, (chosen,), tuple(relations))

    def plan(self, step_id: str, config: DriverConfig, input_columns: tuple[str, ...] | None,
             ctx: StepContext) -> StepPlan | None:
        if isinstance(config, SupabaseWriterConfig):
            return _plan_write(step_id, config, input_columns, ctx)
        if isinstance(config, SupabaseExtractorConfig):
            return _plan_read(step_id, config)
        return None

    def extractor(self, reference: str, settings: SupabaseSettings,
                  relation: Relation) -> tuple[str, dict[str, Any]]:
        return "supabase.extractor", table_config(reference, relation)


class _ChannelLookup(TableWriter):
    """The staged writer's plan: the target's columns through the DDL channel, read-only."""

    dialect = POSTGRES

    def __init__(self, *args: Any, channel: DdlChannel, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.channel = channel

    def open(self) -> None:
        """Every statement opens its own session on the channel."""

    def close(self) -> None:
        """Nothing stays open."""

    def columns(self) -> list[str] | None:
        return self.channel.table_columns(self.table.schema, self.table.name)

    def write(self) -> int:
        raise NotImplementedError("plans only")


def _plan_write(step_id: str, config: SupabaseWriterConfig, input_columns: tuple[str, ...] | None,
                ctx: StepContext) -> StepPlan:
    """As `supabase.writer` decides: COPY in one transaction with pg_dsn and psycopg2, else the staged path."""
    table = TableName(config.schema_, config.table)
    channel = config.channel(step_id, config.ddl_channel)
    if not config.pg_dsn:
        config.key(step_id)
    data = planned_input(input_columns)
    writer: TableWriter
    if config.pg_dsn and isinstance(channel, Psycopg2Channel):
        writer = CopyWriter(step_id, config, table, data, ctx, dsn=config.pg_dsn, settings=config)
    else:
        writer = _ChannelLookup(step_id, config, table, data, ctx, settings=config, channel=channel)
    return writer.dry_run(config.target(table.schema, table.name), input_known=input_columns is not None)


def _plan_read(step_id: str, config: SupabaseExtractorConfig) -> StepPlan:
    """Over pg_dsn the SQL extractor's probe; through PostgREST the table must be in its schema cache."""
    table = TableName(config.schema_, config.table) if config.table is not None else None
    source = config.target(table.schema, table.name) if table else config.target() + "#query"
    if config.pg_dsn:
        where = f"at {dsn_address(config.pg_dsn)}"
        return PostgresSource(step_id, config, dsn=config.pg_dsn, where=where).dry_run(config, table, source)
    check_source(step_id, config)
    if table is None:
        raise DriverError("`query` needs pg_dsn in the supabase connection", step_id=step_id,
                          hint="add pg_dsn, or read a `table` through PostgREST")
    config.key(step_id)
    with _rest(config) as rest:
        found = {name: columns for name, _, columns in rest.relations(table.schema)}
    if table.name not in found:
        raise DriverError(f"table {table} is not in PostgREST's schema cache {config.where}", step_id=step_id,
                          hint=f"check the table name and schema, the key and its permissions; tables: "
                               f"{sorted(found) or 'none'}")
    columns = tuple(config.columns or (c.name for c in found[table.name]))
    return StepPlan(source=source, columns=columns,
                    detail=f"reads table {table} through PostgREST {config.where}: {len(columns)} columns")


def _type(prop: dict[str, Any]) -> str:
    """The column type PostgREST names (`format`), with a `character varying`'s length."""
    name = str(prop.get("format") or prop.get("type") or "unknown")
    return f"{name}({prop['maxLength']})" if prop.get("maxLength") is not None else name


class _Rest:
    """PostgREST's OpenAPI root and row counts, over one HTTP client."""

    def __init__(self, settings: SupabaseSettings, client: httpx.Client) -> None:
        self.settings = settings
        self.client = client
        self.base = settings.url.rstrip("/") + REST_PATH

    def relations(self, schema: str) -> list[tuple[str, Any, tuple[Column, ...]]]:
        """(name, kind, columns) of every table and view PostgREST exposes in `schema`."""
        response = self.client.get(self.base, headers={"Accept": "application/openapi+json",
                                                       "Accept-Profile": schema})
        self._check(response, schema)
        document: dict[str, Any] = response.json()
        definitions = document.get("definitions") or {}
        paths = document.get("paths") or {}
        found = []
        for name, definition in sorted(definitions.items()):
            path = paths.get(f"/{name}")
            if path is None:
                continue  # not an endpoint (a type PostgREST describes)
            required = set(definition.get("required") or ())
            columns = tuple(Column(column, _type(prop), column not in required,
                                   PK_MARKER in str(prop.get("description") or ""))
                            for column, prop in (definition.get("properties") or {}).items())
            found.append((name, "table" if any(m in path for m in WRITE_METHODS) else "view", columns))
        return found

    def planned_rows(self, schema: str, name: str) -> int | None:
        """The planner's estimate (`Prefer: count=planned`), from `Content-Range: …/<count>`."""
        if "/" in name or name in (".", ".."):
            return None  # not addressable as a URL path segment
        response = self.client.head(self.base + quote(name, safe=""),
                                    headers={"Prefer": "count=planned", "Accept-Profile": schema,
                                             "Range-Unit": "items", "Range": "0-0"})
        if response.status_code >= 400:
            return None
        total = str(response.headers.get("Content-Range", "")).rpartition("/")[2]
        return int(total) if total.isdigit() else None

    def _check(self, response: httpx.Response, schema: str) -> None:
        status = response.status_code
        if status < 400:
            return
        try:
            body = response.json()
            message = str(body.get("message") or body)
            code = str(body.get("code") or "")
        except ValueError:
            message, code = " ".join(response.text.split())[:200], ""
        where = self.settings.where
        if code == "PGRST106":
            raise InputError(f"schema '{schema}' is not exposed by PostgREST {where}: {message}",
                             hint="pass an exposed schema with --schema, or add pg_dsn to see every schema")
        if status in (401, 403):
            raise ConnectionFailed(Problem(f"Supabase {where} refused the key (HTTP {status}: {message})",
                                           KEY_HINT))
        if status == 404:
            raise ConnectionFailed(Problem(f"no PostgREST API at {self.settings.target()}rest/v1/ (HTTP 404)",
                                           "check `url` (the project URL, https://<ref>.supabase.co)"))
        raise ConnectionFailed(Problem(f"PostgREST {where} answered HTTP {status}: {message}",
                                       "retry; check that the project is up", transient=status >= 500))


@contextmanager
def _rest(settings: SupabaseSettings) -> Iterator[_Rest]:
    key = settings.service_role_key or settings.anon_key
    if not key:
        raise InputError("the supabase connection has no key and no pg_dsn",
                         hint="add service_role_key (or anon_key), or pg_dsn, to it in osiris_connections.yaml")
    import_client("supabase", project="supabase", family=settings.family)  # httpx comes with the client
    import httpx

    headers = {"apikey": key, "Authorization": f"Bearer {key}"}
    with httpx.Client(headers=headers, timeout=HTTP_TIMEOUT_S, follow_redirects=False) as client:
        yield _Rest(settings, client)
