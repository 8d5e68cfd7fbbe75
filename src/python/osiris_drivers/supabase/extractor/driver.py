"""`supabase.extractor`: the shared SQL extractor over pg_dsn (PostgreSQL's hooks), or PostgREST pages through
supabase-py.

PostgREST pages are read until an empty page (a server's `max-rows`, 1000 on Supabase, may return fewer rows
than asked without the table being at its end), each ordered by `order_by` and then the primary key (from
PostgREST's OpenAPI description), so consecutive pages neither skip nor repeat rows. A table with no known key
and no `order_by` is read only if it fits in one page. Transient failures are retried, page by page.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

import pyarrow as pa
from pydantic import Field

from osiris_core.driver import MAIN_OUTPUT, Driver, StepContext, StepInputs, StepOutputs
from osiris_core.errors import DriverError
from osiris_drivers.connection import ClientMissing
from osiris_drivers.postgres.connection import dsn_address
from osiris_drivers.postgres.source import PostgresSource
from osiris_drivers.sql.dialect import TableName
from osiris_drivers.sql.extractor import SourceOptions, check_source
from osiris_drivers.supabase.connection import SupabaseSettings, postgrest_field, postgrest_resource
from osiris_drivers.supabase.rest import DEFAULT_RETRY, Rest, RestError, key_columns
from osiris_drivers.supabase.rest_types import as_text, declared, json_columns


class SupabaseExtractorConfig(SupabaseSettings, SourceOptions):
    schema_: str = Field(default="public", alias="schema")
    order_by: list[Annotated[str, Field(min_length=1)]] | None = None
    page_size: int = Field(default=1000, ge=1, le=100_000)


class SupabaseExtractor(Driver[SupabaseExtractorConfig]):
    config_model = SupabaseExtractorConfig

    def incremental(self, config: SupabaseExtractorConfig) -> tuple[str, ...] | None:
        return config.incremental.columns if config.incremental is not None else None

    def run(self, *, step_id: str, config: SupabaseExtractorConfig, inputs: StepInputs,
            ctx: StepContext) -> StepOutputs:
        table = TableName(config.schema_, config.table) if config.table is not None else None
        data: pa.RecordBatchReader | pa.Table
        if config.pg_dsn:
            source = PostgresSource(step_id, config, dsn=config.pg_dsn, where=f"at {dsn_address(config.pg_dsn)}")
            data = source.read(config, table, ctx.incremental)
        else:
            check_source(step_id, config)
            if config.incremental is not None:
                raise DriverError("`incremental` needs pg_dsn in the supabase connection", step_id=step_id,
                                  hint="add pg_dsn (the cursor filter runs in SQL), or drop incremental")
            if table is None:
                raise DriverError("`query` needs pg_dsn in the supabase connection", step_id=step_id,
                                  hint="add pg_dsn, or read a `table` through PostgREST")
            data = RestPages(step_id, config, table, ctx).read()
        target = config.target(table.schema, table.name) if table else config.target() + "#query"
        ctx.source_opened(target, columns=data.schema.names)
        return {MAIN_OUTPUT: data}


class RestPages:
    """A table read through PostgREST, page by page, as one Arrow table (types unified across pages); large
    reads belong on pg_dsn."""

    def __init__(self, step_id: str, config: SupabaseExtractorConfig, table: TableName, ctx: StepContext) -> None:
        self.step_id = step_id
        self.config = config
        self.table = table
        self.ctx = ctx
        self.resource = postgrest_resource(step_id, table.name)
        self.select = ",".join(postgrest_field(c) for c in config.columns) if config.columns else "*"

    def read(self) -> pa.Table:
        config = self.config
        try:
            rest = config.rest(config.key(self.step_id), self.table.schema)
        except ClientMissing as exc:
            raise config.failure(exc, step_id=self.step_id, role="read") from None
        order = list(config.order_by or [])
        definition = rest.definition(self.table.name)
        documents = json_columns(definition)
        key = key_columns(definition) or []
        order += [column for column in key if column not in order]
        pages: list[pa.Table] = []
        offset = 0
        while config.limit is None or offset < config.limit:
            size = config.page_size if config.limit is None else min(config.page_size, config.limit - offset)
            rows = self._page(rest, order, offset, size)
            if not rows:
                break
            if offset and not order:
                raise DriverError(
                    f"PostgREST read of {self.table}: the table has more than {offset} rows and no primary key "
                    "PostgREST reports, so its pages have no stable order (rows could be skipped or repeated)",
                    step_id=self.step_id,
                    hint="set order_by to columns that identify a row, or add pg_dsn to read it over SQL")
            pages.append(pa.Table.from_pylist(as_text(rows, documents) if documents else rows))
            offset += len(rows)  # a server's max-rows may cap a page below `size`
        if not pages:  # no rows: the columns PostgREST describes (typed null), or none if it does not say
            names = config.columns or list((definition or {}).get("properties") or {})
            return declared(pa.table({name: pa.array([], pa.null()) for name in names}), definition)
        return declared(pa.concat_tables(pages, promote_options="permissive"), definition)

    def _page(self, rest: Rest, order: list[str], offset: int, size: int) -> list[dict[str, Any]]:
        """One page (`size` rows from `offset`), transient failures retried."""
        delays = DEFAULT_RETRY.delays()
        while True:
            request = rest.table(self.resource).select(self.select)
            for column in order:
                request = request.order(postgrest_field(column))
            try:
                response = rest.call(request.range(offset, offset + size - 1).execute)
                return [dict(row) for row in response.data if isinstance(row, dict)]
            except RestError as exc:
                delay = next(delays, None) if exc.transient else None
                if delay is None:
                    raise self.config.failure(exc, step_id=self.step_id, role="read",
                                              doing=f"PostgREST read of {self.table}") from None
                self.ctx.event("retry", page_offset=offset, error=exc.describe(), delay_s=delay)
                time.sleep(delay)
