"""`postgres.writer`: COPY into PostgreSQL, DDL and merge in the same transaction (the shared transactional
skeleton with PostgreSQL's hooks, `osiris_drivers.postgres.copy.CopyWriter`)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from osiris_core.driver import Driver, StepContext, StepInputs, StepOutputs, single_input
from osiris_core.state import StateStore
from osiris_drivers.postgres.connection import PostgresSettings, pg_connection
from osiris_drivers.postgres.copy import CopyWriter
from osiris_drivers.postgres.dialect import POSTGRES
from osiris_drivers.sql.dialect import TableName
from osiris_drivers.sql.state import SqlStateStore
from osiris_drivers.sql.writer import TableWriteOptions
from osiris_drivers.step_io import report_written


class PostgresWriterConfig(PostgresSettings, TableWriteOptions):
    """Connection fields and table write options."""

    schema_: str = Field(default="public", alias="schema")


class PostgresStateStore(SqlStateStore):
    """The state table over a psycopg2 DSN, one short session per statement."""

    def __init__(self, *args: Any, dsn: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.dsn = dsn

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        with pg_connection(self.dsn) as connection, connection.cursor() as cursor:
            cursor.execute(sql)
            rows = [tuple(row) for row in cursor.fetchall()] if cursor.description else []
            connection.commit()
            return rows


class PostgresWriter(Driver[PostgresWriterConfig]):
    config_model = PostgresWriterConfig

    def state_store(self, *, step_id: str, config: PostgresWriterConfig) -> StateStore:
        table = TableName(config.schema_, config.table)
        return PostgresStateStore(step_id, config, POSTGRES, table, config.target(table.schema, table.name),
                                  write_mode=config.write_mode, primary_key=config.primary_key,
                                  delete_missing=config.delete_missing, dsn=config.dsn)

    def run(self, *, step_id: str, config: PostgresWriterConfig, inputs: StepInputs,
            ctx: StepContext) -> StepOutputs:
        table = TableName(config.schema_, config.table)
        rows = CopyWriter(step_id, config, table, single_input(step_id, inputs), ctx, dsn=config.dsn,
                          settings=config).run()
        report_written(ctx, config.target(table.schema, table.name), rows)
        return {}
