"""`supabase.extractor`: ConnectorX over pg_dsn, or PostgREST pages through supabase-py."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any

import pyarrow as pa
from pydantic import Field

from osiris_core.driver import MAIN_OUTPUT, Driver, StepContext, StepInputs, StepOutputs
from osiris_core.errors import DriverError
from osiris_drivers.postgres.extractor.driver import check_source, read_source
from osiris_drivers.supabase.connection import (
    SupabaseConnectionFields,
    api_key,
    postgrest_field,
    postgrest_resource,
    rest_client,
)
from osiris_drivers.supabase.rest_stage import describe


class SupabaseExtractorConfig(SupabaseConnectionFields):
    query: str | None = Field(default=None, min_length=1)
    schema_: str = Field(default="public", alias="schema")
    table: str | None = Field(default=None, min_length=1)
    columns: list[Annotated[str, Field(min_length=1)]] | None = Field(default=None, min_length=1)
    limit: int | None = Field(default=None, ge=0)
    order_by: list[Annotated[str, Field(min_length=1)]] | None = None
    page_size: int = Field(default=1000, ge=1, le=100_000)


class SupabaseExtractor(Driver[SupabaseExtractorConfig]):
    config_model = SupabaseExtractorConfig

    def run(self, *, step_id: str, config: SupabaseExtractorConfig, inputs: StepInputs,
            ctx: StepContext) -> StepOutputs:
        if config.pg_dsn:
            return {MAIN_OUTPUT: read_source(config.pg_dsn, step_id=step_id, query=config.query,
                                             schema=config.schema_, table=config.table, columns=config.columns,
                                             limit=config.limit)}
        check_source(step_id, config.query, config.table, config.columns, config.limit)
        if config.table is None:
            raise DriverError("`query` needs pg_dsn in the supabase connection", step_id=step_id,
                              hint="add pg_dsn, or read a `table` through PostgREST")
        return {MAIN_OUTPUT: self._rest_pages(step_id, config)}

    @staticmethod
    def _rest_pages(step_id: str, config: SupabaseExtractorConfig) -> pa.Table:
        """All pages as one table (types unified across pages); large reads belong on pg_dsn."""
        assert config.table is not None
        table = postgrest_resource(step_id, config.table)
        select = ",".join(postgrest_field(c) for c in config.columns) if config.columns else "*"
        key = api_key(step_id=step_id, service_role_key=config.service_role_key, anon_key=config.anon_key)
        client = rest_client(config.url, key, config.schema_)

        def pages() -> Iterator[list[dict[str, Any]]]:
            offset = 0
            while config.limit is None or offset < config.limit:
                size = config.page_size if config.limit is None else min(config.page_size, config.limit - offset)
                request = client.table(table).select(select)
                for column in config.order_by or []:
                    request = request.order(postgrest_field(column))
                try:
                    rows: list[dict[str, Any]] = request.range(offset, offset + size - 1).execute().data  # type: ignore[assignment]
                except Exception as exc:
                    raise DriverError(f"PostgREST read of {table} failed: {describe(exc)}", step_id=step_id,
                                      hint="check the table name, the key and its permissions") from None
                if rows:
                    yield rows
                if len(rows) < size:
                    return
                offset += size

        tables = [pa.Table.from_pylist(page) for page in pages()]
        if not tables:
            return pa.table({})
        return pa.concat_tables(tables, promote_options="permissive")
