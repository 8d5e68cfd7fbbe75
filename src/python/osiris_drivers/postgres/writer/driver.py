"""`postgres.writer`: COPY into PostgreSQL, DDL and merge in the same transaction (the shared transactional
skeleton with PostgreSQL's hooks, `osiris_drivers.postgres.copy.CopyWriter`)."""

from __future__ import annotations

from pydantic import Field

from osiris_core.driver import Driver, StepContext, StepInputs, StepOutputs, single_input
from osiris_drivers.postgres.connection import PostgresSettings
from osiris_drivers.postgres.copy import CopyWriter
from osiris_drivers.sql.dialect import TableName
from osiris_drivers.sql.writer import TableWriteOptions
from osiris_drivers.step_io import report_written


class PostgresWriterConfig(PostgresSettings, TableWriteOptions):
    """Connection fields and table write options."""

    schema_: str = Field(default="public", alias="schema")


class PostgresWriter(Driver[PostgresWriterConfig]):
    config_model = PostgresWriterConfig

    def run(self, *, step_id: str, config: PostgresWriterConfig, inputs: StepInputs,
            ctx: StepContext) -> StepOutputs:
        table = TableName(config.schema_, config.table)
        rows = CopyWriter(step_id, config, table, single_input(step_id, inputs), ctx, dsn=config.dsn,
                          settings=config).run()
        report_written(ctx, config.target(table.schema, table.name), rows)
        return {}
