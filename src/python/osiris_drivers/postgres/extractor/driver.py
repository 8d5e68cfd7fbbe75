"""`postgres.extractor`: a query or a table, streamed as Arrow record batches."""

from __future__ import annotations

import pyarrow as pa
from pydantic import Field

from osiris_core.driver import MAIN_OUTPUT, Driver, StepContext, StepInputs, StepOutputs
from osiris_core.errors import DriverError
from osiris_drivers.postgres.connection import PostgresConnectionFields
from osiris_drivers.postgres.extract import stream_query, stream_table


class PostgresExtractorConfig(PostgresConnectionFields):
    query: str | None = Field(default=None, min_length=1)
    schema_: str = Field(default="public", alias="schema")
    table: str | None = Field(default=None, min_length=1)
    columns: list[str] | None = None
    limit: int | None = Field(default=None, ge=0)


def check_source(step_id: str, query: str | None, table: str | None, columns: list[str] | None,
                 limit: int | None) -> None:
    """Exactly one of `query` and `table`; `columns` and `limit` only with `table`."""
    if (query is None) == (table is None):
        raise DriverError("give exactly one of `query` and `table`", step_id=step_id,
                          hint="query: SELECT … for SQL, or table: name (with optional columns and limit)")
    if query is not None and (columns is not None or limit is not None):
        raise DriverError("`columns` and `limit` go with `table`, not `query`", step_id=step_id,
                          hint="put them in the SQL instead")


def read_source(dsn: str, *, step_id: str, query: str | None, schema: str, table: str | None,
                columns: list[str] | None, limit: int | None) -> pa.RecordBatchReader:
    """The rows of `query`, or of `table` (read in key pages when it has an integer primary key)."""
    check_source(step_id, query, table, columns, limit)
    if query is not None:
        return stream_query(dsn, query, step_id)
    assert table is not None
    return stream_table(dsn, schema, table, columns, limit, step_id)


class PostgresExtractor(Driver[PostgresExtractorConfig]):
    config_model = PostgresExtractorConfig

    def run(self, *, step_id: str, config: PostgresExtractorConfig, inputs: StepInputs,
            ctx: StepContext) -> StepOutputs:
        return {MAIN_OUTPUT: read_source(config.dsn, step_id=step_id, query=config.query, schema=config.schema_,
                                         table=config.table, columns=config.columns, limit=config.limit)}
