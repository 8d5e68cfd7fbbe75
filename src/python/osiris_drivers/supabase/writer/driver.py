"""`supabase.writer`: COPY or PostgREST for the data, psycopg2 or HTTP SQL for the DDL, atomic either way."""

from __future__ import annotations

from functools import partial

from pydantic import Field

from osiris_core.driver import ROWS_WRITTEN, Driver, StepContext, StepInputs, StepOutputs, single_input
from osiris_drivers.postgres.ddl_channel import Psycopg2Channel
from osiris_drivers.postgres.loader import (
    CopyStageWriter,
    StageWriter,
    TableWriteOptions,
    load_in_one_transaction,
    load_via_stage,
)
from osiris_drivers.supabase.connection import (
    DdlChannelName,
    SupabaseConnectionFields,
    api_key,
    ddl_channel,
    rest_client,
)
from osiris_drivers.supabase.rest_stage import RestStageWriter

RELOAD_SCHEMA_SQL = "\nNOTIFY pgrst, 'reload schema';"
"""PostgREST learns about new tables (the staging table) only after this."""


class SupabaseWriterConfig(SupabaseConnectionFields, TableWriteOptions):
    ddl_channel: DdlChannelName = "auto"
    batch_size: int = Field(default=1000, ge=1, le=100_000)


class SupabaseWriter(Driver[SupabaseWriterConfig]):
    config_model = SupabaseWriterConfig

    def run(self, *, step_id: str, config: SupabaseWriterConfig, inputs: StepInputs,
            ctx: StepContext) -> StepOutputs:
        data = single_input(step_id, inputs)
        plan = config.plan(step_id)
        channel = ddl_channel(step_id=step_id, requested=config.ddl_channel, url=config.url,
                              service_role_key=config.service_role_key, pg_dsn=config.pg_dsn,
                              sql_url=config.sql_url)
        data_path = "copy" if config.pg_dsn else "postgrest"
        ctx.event("write_plan", data_path=data_path, ddl_channel=channel.name, write_mode=config.write_mode)
        if config.pg_dsn and isinstance(channel, Psycopg2Channel):
            rows = load_in_one_transaction(config.pg_dsn, plan, data)
        else:
            writer: StageWriter
            reload_sql = ""
            if config.pg_dsn:
                writer = CopyStageWriter(config.pg_dsn, step_id)
            else:
                key = api_key(step_id=step_id, service_role_key=config.service_role_key, anon_key=config.anon_key)
                writer = RestStageWriter(partial(rest_client, config.url, key), step_id=step_id,
                                         batch_size=config.batch_size, ctx=ctx)
                reload_sql = RELOAD_SCHEMA_SQL
            rows = load_via_stage(channel, writer, plan, data, reload_sql=reload_sql)
        ctx.metric(ROWS_WRITTEN, rows, "rows")
        ctx.event("output_written", target=f"supabase:{config.schema_}.{config.table}", rows=rows)
        return {}
