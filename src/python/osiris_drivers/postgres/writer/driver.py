"""`postgres.writer`: COPY into PostgreSQL in one transaction."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from osiris_core.driver import ROWS_WRITTEN, Driver, StepContext, StepInputs, StepOutputs, single_input
from osiris_drivers.postgres.connection import PostgresConnectionFields
from osiris_drivers.postgres.loader import LoadPlan, load_in_one_transaction


class PostgresWriterConfig(PostgresConnectionFields):
    schema_: str = Field(default="public", alias="schema")
    table: str = Field(min_length=1)
    write_mode: Literal["append", "upsert", "replace"] = "append"
    primary_key: list[str] = Field(default_factory=list)
    create_if_missing: bool = False


class PostgresWriter(Driver[PostgresWriterConfig]):
    config_model = PostgresWriterConfig

    def run(self, *, step_id: str, config: PostgresWriterConfig, inputs: StepInputs,
            ctx: StepContext) -> StepOutputs:
        data = single_input(step_id, inputs)
        plan = LoadPlan(step_id=step_id, schema=config.schema_, table=config.table, write_mode=config.write_mode,
                        primary_key=tuple(config.primary_key), create_if_missing=config.create_if_missing)
        rows = load_in_one_transaction(config.dsn, plan, data)
        ctx.metric(ROWS_WRITTEN, rows, "rows")
        ctx.event("output_written", target=f"postgres:{config.schema_}.{config.table}", rows=rows)
        return {}
