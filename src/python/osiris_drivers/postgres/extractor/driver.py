"""`postgres.extractor`: a query or a table, streamed as Arrow record batches."""

from __future__ import annotations

from pydantic import Field

from osiris_core.driver import MAIN_OUTPUT, Driver, StepContext, StepInputs, StepOutputs
from osiris_core.errors import DriverError
from osiris_drivers.postgres.connection import PostgresConnectionFields
from osiris_drivers.postgres.extract import stream_query, table_query


class PostgresExtractorConfig(PostgresConnectionFields):
    query: str | None = Field(default=None, min_length=1)
    schema_: str = Field(default="public", alias="schema")
    table: str | None = Field(default=None, min_length=1)
    columns: list[str] | None = None
    limit: int | None = Field(default=None, ge=0)


def source_query(step_id: str, query: str | None, schema: str, table: str | None, columns: list[str] | None,
                 limit: int | None) -> str:
    """The SELECT to run: `query`, or one built from table/columns/limit; exactly one of them."""
    if (query is None) == (table is None):
        raise DriverError("give exactly one of `query` and `table`", step_id=step_id,
                          hint="query: SELECT … for SQL, or table: name (with optional columns and limit)")
    if query is not None:
        if columns is not None or limit is not None:
            raise DriverError("`columns` and `limit` go with `table`, not `query`", step_id=step_id,
                              hint="put them in the SQL instead")
        return query
    assert table is not None
    return table_query(schema, table, columns, limit)


class PostgresExtractor(Driver[PostgresExtractorConfig]):
    config_model = PostgresExtractorConfig

    def run(self, *, step_id: str, config: PostgresExtractorConfig, inputs: StepInputs,
            ctx: StepContext) -> StepOutputs:
        query = source_query(step_id, config.query, config.schema_, config.table, config.columns, config.limit)
        return {MAIN_OUTPUT: stream_query(config.dsn, query, step_id)}
