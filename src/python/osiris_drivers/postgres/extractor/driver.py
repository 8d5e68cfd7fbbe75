"""`postgres.extractor`: a query or a table, streamed as Arrow record batches (the shared SQL extractor with
PostgreSQL's hooks, `osiris_drivers.postgres.source`)."""

from __future__ import annotations

from pydantic import Field

from osiris_core.driver import MAIN_OUTPUT, Driver, StepContext, StepInputs, StepOutputs
from osiris_drivers.postgres.connection import PostgresSettings
from osiris_drivers.postgres.source import PostgresSource
from osiris_drivers.sql.dialect import TableName
from osiris_drivers.sql.extractor import SourceOptions


class PostgresExtractorConfig(PostgresSettings, SourceOptions):
    schema_: str = Field(default="public", alias="schema")


class PostgresExtractor(Driver[PostgresExtractorConfig]):
    config_model = PostgresExtractorConfig

    def incremental(self, config: PostgresExtractorConfig) -> tuple[str, ...] | None:
        return config.incremental.columns if config.incremental is not None else None

    def run(self, *, step_id: str, config: PostgresExtractorConfig, inputs: StepInputs,
            ctx: StepContext) -> StepOutputs:
        table = TableName(config.schema_, config.table) if config.table is not None else None
        source = PostgresSource(step_id, config, dsn=config.dsn)
        reader = source.read(config, table, ctx.incremental)
        target = config.target(table.schema, table.name) if table else config.target() + "#query"
        ctx.source_opened(target, columns=reader.schema.names)
        return {MAIN_OUTPUT: reader}
