"""`postgres.writer`: COPY into PostgreSQL in one transaction."""

from __future__ import annotations

from osiris_core.driver import ROWS_WRITTEN, Driver, StepContext, StepInputs, StepOutputs, single_input
from osiris_drivers.postgres.connection import PostgresConnectionFields
from osiris_drivers.postgres.loader import TableWriteOptions, load_in_one_transaction


class PostgresWriterConfig(PostgresConnectionFields, TableWriteOptions):
    """Connection fields and table write options."""


class PostgresWriter(Driver[PostgresWriterConfig]):
    config_model = PostgresWriterConfig

    def run(self, *, step_id: str, config: PostgresWriterConfig, inputs: StepInputs,
            ctx: StepContext) -> StepOutputs:
        data = single_input(step_id, inputs)
        rows = load_in_one_transaction(config.dsn, config.plan(step_id), data)
        ctx.metric(ROWS_WRITTEN, rows, "rows")
        ctx.event("output_written", target=f"postgres:{config.schema_}.{config.table}", rows=rows)
        return {}
