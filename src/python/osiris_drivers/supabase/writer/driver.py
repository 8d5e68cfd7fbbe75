"""`supabase.writer`: COPY or PostgREST for the rows, psycopg2 or HTTP SQL for the DDL, atomic either way.

With pg_dsn and the psycopg2 channel it is exactly `postgres.writer` (`osiris_drivers.postgres.copy.CopyWriter`,
one transaction). Otherwise it is the shared staged skeleton (`osiris_drivers.sql.writer.StagedWriter`): the
rows go to an UNLOGGED staging table (COPY over pg_dsn, or PostgREST batches with retries that never duplicate)
and one SQL transaction on the DDL channel moves them into the target. The hooks below are all that differ.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from pydantic import Field

from osiris_core.driver import ArrowData, Driver, StepContext, StepInputs, StepOutputs, single_input
from osiris_drivers.postgres.connection import pg_connection
from osiris_drivers.postgres.copy import CopyWriter, copy_into
from osiris_drivers.postgres.dialect import POSTGRES
from osiris_drivers.sql.dialect import TableName
from osiris_drivers.sql.writer import StagedWriter, TableWriteOptions, TableWriter
from osiris_drivers.step_io import report_written
from osiris_drivers.supabase.connection import DdlChannelName, SupabaseSettings
from osiris_drivers.supabase.ddl_channel import DdlChannel, Psycopg2Channel
from osiris_drivers.supabase.rest_stage import RestStage

RELOAD_SCHEMA_SQL = ";\nNOTIFY pgrst, 'reload schema'"
"""PostgREST learns about new tables (the staging table) only after this."""


class SupabaseWriterConfig(SupabaseSettings, TableWriteOptions):
    schema_: str = Field(default="public", alias="schema")
    ddl_channel: DdlChannelName = "auto"
    batch_size: int = Field(default=1000, ge=1, le=100_000)


class StagedSupabaseWriter(StagedWriter):
    dialect = POSTGRES

    def __init__(self, step_id: str, config: SupabaseWriterConfig, table: TableName, data: ArrowData,
                 ctx: StepContext, *, channel: DdlChannel) -> None:
        super().__init__(step_id, config, table, data, ctx, settings=config)
        self.config = config
        self.channel = channel
        self.with_batch_column = not config.pg_dsn
        self.after_stage_ddl = "" if config.pg_dsn else RELOAD_SCHEMA_SQL

    def open(self) -> None:
        """Every statement opens its own session on the channel."""

    def close(self) -> None:
        """Nothing stays open."""

    def columns(self) -> list[str] | None:
        return self.channel.table_columns(self.table.schema, self.table.name)

    def run_sql(self, sql: str) -> list[dict[str, Any]]:
        return self.channel.run(sql)

    def load_stage(self, stage: TableName) -> int:
        if self.config.pg_dsn:  # COPY, committed on its own: the stage is private
            with pg_connection(self.config.pg_dsn) as connection, connection.cursor() as cursor:
                rows = copy_into(cursor, POSTGRES.qualified(stage), self.names, self.data)
                connection.commit()
            return rows
        rest = RestStage(partial(self.config.rest_client, self.config.key(self.step_id)), step_id=self.step_id,
                         batch_size=self.config.batch_size, batch_column=self.BATCH_COLUMN, ctx=self.ctx)
        return rest.write(stage.schema, stage.name, self.data)


class SupabaseWriter(Driver[SupabaseWriterConfig]):
    config_model = SupabaseWriterConfig

    def run(self, *, step_id: str, config: SupabaseWriterConfig, inputs: StepInputs,
            ctx: StepContext) -> StepOutputs:
        data = single_input(step_id, inputs)
        table = TableName(config.schema_, config.table)
        channel = config.channel(step_id, config.ddl_channel)
        if not config.pg_dsn:
            config.key(step_id)
        ctx.event("write_plan", data_path="copy" if config.pg_dsn else "postgrest", ddl_channel=channel.name,
                  write_mode=config.write_mode)
        writer: TableWriter
        if config.pg_dsn and isinstance(channel, Psycopg2Channel):
            writer = CopyWriter(step_id, config, table, data, ctx, dsn=config.pg_dsn, settings=config)
        else:
            writer = StagedSupabaseWriter(step_id, config, table, data, ctx, channel=channel)
        rows = writer.run()
        report_written(ctx, config.target(table.schema, table.name), rows)
        return {}
