"""`duckdb.processor`: SQL over named Arrow inputs in an in-memory DuckDB, streamed out as record batches.

The query sees its inputs and nothing else: DuckDB's external access (files, URLs, ATTACH, COPY, extensions)
is off and the configuration locked, so SQL cannot read `/etc/passwd` or turn access back on. A pipeline opts
in per step with `allow_external_access: true`, which stays visible in the compiled step config.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pyarrow as pa
from pydantic import Field

from osiris_core.driver import (
    MAIN_OUTPUT,
    SINGLE_INPUT_SQL_NAME,
    Driver,
    DriverConfig,
    StepContext,
    StepInputs,
    StepOutputs,
)
from osiris_core.errors import DriverError
from osiris_core.interrupts import cancellable
from osiris_drivers.duckdb.connection import EXTERNAL_ACCESS_HINT, is_refusal, memory_connection
from osiris_drivers.duckdb.dialect import DUCKDB
from osiris_drivers.duckdb.passthrough import keep_sources, passed_through

if TYPE_CHECKING:
    import duckdb

SINGLE_INPUT_NAME = SINGLE_INPUT_SQL_NAME
BATCH_ROWS = 122_880


def _arrow_scans(node: Any) -> int:
    if isinstance(node, list):
        return sum(_arrow_scans(n) for n in node)
    own = 1 if isinstance(node, dict) and node.get("extra_info", {}).get("Function") == "ARROW_SCAN" else 0
    return own + sum(_arrow_scans(c) for c in node.get("children", []))


def register_inputs(con: duckdb.DuckDBPyConnection, inputs: StepInputs, query: str) -> None:
    """Make every input queryable by name (and `input_df` when there is one), as often as the query reads it.

    Tables are registered zero-copy. A stream can be scanned only once: it stays a stream when it is the only
    input and the query's plan scans it once (so memory stays bounded); otherwise it is first loaded into a
    temporary DuckDB table, which spills to disk past the memory limit.
    """
    streams = [name for name, data in inputs.items() if not isinstance(data, pa.Table)]
    for name, data in inputs.items():
        con.register(f"__osiris_{name}" if name in streams else name, data)
    for name in streams:
        con.execute(f"CREATE TEMP VIEW {DUCKDB.quote_ident(name)} AS "
                    f"SELECT * FROM {DUCKDB.quote_ident('__osiris_' + name)}")
    if len(inputs) == 1:
        con.execute(f"CREATE TEMP VIEW {SINGLE_INPUT_NAME} AS SELECT * FROM {DUCKDB.quote_ident(next(iter(inputs)))}")
    if not streams:
        return
    plan = con.execute(f"EXPLAIN (FORMAT json) {query}").fetchall()
    if len(inputs) == 1 and _arrow_scans(json.loads(plan[0][1])) <= 1:
        return
    for name in streams:
        con.execute(f"DROP VIEW {DUCKDB.quote_ident(name)}")
        con.execute(f"CREATE TEMP TABLE {DUCKDB.quote_ident(name)} AS "
                    f"SELECT * FROM {DUCKDB.quote_ident('__osiris_' + name)}")
        con.unregister(f"__osiris_{name}")


class DuckDBProcessorConfig(DriverConfig):
    query: str = Field(min_length=1)
    memory_limit: str = Field(default="256MB", pattern=r"^\d+(\.\d+)?\s*(KB|MB|GB|TB|KiB|MiB|GiB|TiB)$")
    allow_external_access: bool = False


class DuckDBProcessor(Driver[DuckDBProcessorConfig]):
    config_model = DuckDBProcessorConfig

    def run(self, *, step_id: str, config: DuckDBProcessorConfig, inputs: StepInputs,
            ctx: StepContext) -> StepOutputs:
        import duckdb  # here: compiling a pipeline (e.g. on a sandbox run's host) imports no DuckDB

        spill = tempfile.TemporaryDirectory(prefix="osiris-duckdb-")
        con = memory_connection(config.memory_limit, spill.name, allow_external_access=config.allow_external_access)
        schemas = {name: data.schema for name, data in inputs.items()}
        if len(inputs) == 1:
            schemas[SINGLE_INPUT_NAME] = next(iter(inputs.values())).schema
        try:
            with cancellable(con.interrupt):  # SIGINT/SIGTERM end a long query
                register_inputs(con, inputs, config.query)
                origins = passed_through(con, config.query, schemas)
                result = con.execute(config.query)
                reader = result.fetch_record_batch(BATCH_ROWS)
        except BaseException as exc:
            # A stop or a step timeout may leave the query running in DuckDB's threads, and closing a connection
            # waits for them: interrupt it first.
            con.interrupt()
            con.close()
            spill.cleanup()
            if not isinstance(exc, duckdb.Error):
                raise
            available = sorted(inputs) + ([SINGLE_INPUT_NAME] if len(inputs) == 1 else [])
            hint = EXTERNAL_ACCESS_HINT if is_refusal(exc) else f"fix the query; tables available: {available}"
            raise DriverError(f"SQL failed: {' '.join(str(exc).split())}", step_id=step_id, hint=hint) from None

        schema = keep_sources(reader.schema, origins)

        def batches() -> Iterator[pa.RecordBatch]:
            try:
                with cancellable(con.interrupt):
                    for batch in reader:
                        yield batch if schema is reader.schema else pa.RecordBatch.from_arrays(batch.columns,
                                                                                                schema=schema)
            except duckdb.Error as exc:  # a row late in the result, computed while the next step reads it
                raise DriverError(f"SQL failed: {' '.join(str(exc).split())}", step_id=step_id,
                                  hint="fix the query or the data it reads") from None
            finally:
                con.interrupt()  # a consumer that stops early (an error, a stop) leaves no query running
                con.close()
                spill.cleanup()

        return {MAIN_OUTPUT: pa.RecordBatchReader.from_batches(schema, batches())}
