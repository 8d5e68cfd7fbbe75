"""`duckdb.processor`: SQL over named Arrow inputs in an in-memory DuckDB, streamed out as record batches."""

from __future__ import annotations

from collections.abc import Iterator

import duckdb
import pyarrow as pa
from pydantic import Field

from osiris_core.driver import MAIN_OUTPUT, ArrowData, Driver, DriverConfig, StepContext, StepInputs, StepOutputs
from osiris_core.errors import DriverError

SINGLE_INPUT_NAME = "input_df"
BATCH_ROWS = 122_880


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def register_input(con: duckdb.DuckDBPyConnection, name: str, data: ArrowData) -> None:
    """Make `data` queryable as `name`, any number of times.

    A table is registered zero-copy. A stream can be scanned only once, so it is loaded into a temporary
    DuckDB table (which spills to disk past DuckDB's memory limit) rather than handed over as a stream.
    """
    if isinstance(data, pa.Table):
        con.register(name, data)
        return
    stream_name = f"__osiris_stream_{name}"
    con.register(stream_name, data)
    con.execute(f"CREATE TEMP TABLE {quote_ident(name)} AS SELECT * FROM {quote_ident(stream_name)}")
    con.unregister(stream_name)


class DuckDBProcessorConfig(DriverConfig):
    query: str = Field(min_length=1)


class DuckDBProcessor(Driver[DuckDBProcessorConfig]):
    config_model = DuckDBProcessorConfig

    def run(self, *, step_id: str, config: DuckDBProcessorConfig, inputs: StepInputs,
            ctx: StepContext) -> StepOutputs:
        con = duckdb.connect(":memory:")
        try:
            for name, data in inputs.items():
                register_input(con, name, data)
            if len(inputs) == 1:
                con.execute(f"CREATE TEMP VIEW {SINGLE_INPUT_NAME} AS SELECT * FROM {quote_ident(next(iter(inputs)))}")
            result = con.execute(config.query)
            reader = result.fetch_record_batch(BATCH_ROWS)
        except duckdb.Error as exc:
            con.close()
            available = sorted(inputs) + ([SINGLE_INPUT_NAME] if len(inputs) == 1 else [])
            raise DriverError(f"SQL failed: {exc}", step_id=step_id,
                              hint=f"fix the query; tables available: {available}") from None

        def batches() -> Iterator[pa.RecordBatch]:
            try:
                yield from reader
            finally:
                con.close()

        return {MAIN_OUTPUT: pa.RecordBatchReader.from_batches(reader.schema, batches())}
