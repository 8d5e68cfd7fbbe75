"""`supabase.extractor`: the shared SQL extractor over pg_dsn (PostgreSQL's hooks), or PostgREST pages through
supabase-py."""

from __future__ import annotations

from collections.abc import Iterator
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


class SupabaseExtractorConfig(SupabaseSettings, SourceOptions):
    schema_: str = Field(default="public", alias="schema")
    order_by: list[Annotated[str, Field(min_length=1)]] | None = None
    page_size: int = Field(default=1000, ge=1, le=100_000)


class SupabaseExtractor(Driver[SupabaseExtractorConfig]):
    config_model = SupabaseExtractorConfig

    def run(self, *, step_id: str, config: SupabaseExtractorConfig, inputs: StepInputs,
            ctx: StepContext) -> StepOutputs:
        table = TableName(config.schema_, config.table) if config.table is not None else None
        data: pa.RecordBatchReader | pa.Table
        if config.pg_dsn:
            source = PostgresSource(step_id, config, dsn=config.pg_dsn, where=f"at {dsn_address(config.pg_dsn)}")
            data = source.read(config, table)
        else:
            check_source(step_id, config)
            if table is None:
                raise DriverError("`query` needs pg_dsn in the supabase connection", step_id=step_id,
                                  hint="add pg_dsn, or read a `table` through PostgREST")
            data = self._rest_pages(step_id, config, table)
        target = config.target(table.schema, table.name) if table else config.target() + "#query"
        ctx.source_opened(target, columns=data.schema.names)
        return {MAIN_OUTPUT: data}

    @staticmethod
    def _rest_pages(step_id: str, config: SupabaseExtractorConfig, table: TableName) -> pa.Table:
        """All pages as one table (types unified across pages); large reads belong on pg_dsn."""
        resource = postgrest_resource(step_id, table.name)
        select = ",".join(postgrest_field(c) for c in config.columns) if config.columns else "*"
        try:
            client = config.rest_client(config.key(step_id), table.schema)
        except ClientMissing as exc:
            raise config.failure(exc, step_id=step_id, role="read") from None

        def pages() -> Iterator[list[dict[str, Any]]]:
            offset = 0
            while config.limit is None or offset < config.limit:
                size = config.page_size if config.limit is None else min(config.page_size, config.limit - offset)
                request = client.table(resource).select(select)
                for column in config.order_by or []:
                    request = request.order(postgrest_field(column))
                try:
                    rows: list[dict[str, Any]] = request.range(offset, offset + size - 1).execute().data  # type: ignore[assignment]
                except Exception as exc:
                    raise config.failure(exc, step_id=step_id, role="read",
                                         doing=f"PostgREST read of {table}") from None
                if rows:
                    yield rows
                if len(rows) < size:
                    return
                offset += size

        tables = [pa.Table.from_pylist(page) for page in pages()]
        if not tables:
            return pa.table({})
        return pa.concat_tables(tables, promote_options="permissive")
