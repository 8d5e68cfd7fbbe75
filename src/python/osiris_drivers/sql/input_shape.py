"""Reshaping a write's Arrow input after the plan, as a stream stays a stream: columns left out
(`on_schema_change: ignore`), rows flagged by `hard_delete_column` counted as they pass."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import pyarrow as pa
import pyarrow.compute as pc

from osiris_core.driver import ArrowData

FLAGGED = "_flagged"
"""Input rows flagged by `hard_delete_column` (counted as they stream, where the merge cannot count the rows)."""


INPUT_ROWS = "_input_rows"
"""Input rows read (counted as they stream when `delete_missing` must refuse an empty input)."""


def count_rows(data: ArrowData, counts: dict[str, int]) -> ArrowData:
    """The input unchanged, adding its rows to `counts[INPUT_ROWS]` as they are read."""
    def counted() -> Iterator[pa.RecordBatch]:
        for batch in data.to_batches() if isinstance(data, pa.Table) else data:
            counts[INPUT_ROWS] = counts.get(INPUT_ROWS, 0) + batch.num_rows
            yield batch
    counts[INPUT_ROWS] = 0
    return pa.RecordBatchReader.from_batches(data.schema, counted())


NULL_KEYS = "_null_keys"
"""Input rows with a NULL in a primary_key column (upsert and scd2 refuse them: NULL matches no key)."""


def count_null_keys(data: ArrowData, keys: Sequence[str], counts: dict[str, int]) -> ArrowData:
    """The input unchanged, adding its rows with a NULL in any of `keys` to `counts[NULL_KEYS]` as they are read."""
    def counted() -> Iterator[pa.RecordBatch]:
        for batch in data.to_batches() if isinstance(data, pa.Table) else data:
            nulls = None
            for key in keys:
                missing = pc.is_null(batch.column(key))
                nulls = missing if nulls is None else pc.or_(nulls, missing)
            counts[NULL_KEYS] = counts.get(NULL_KEYS, 0) + int(pc.sum(nulls).as_py() or 0)
            yield batch
    return pa.RecordBatchReader.from_batches(data.schema, counted())


def count_flagged(data: ArrowData, flag: str, counts: dict[str, int]) -> ArrowData:
    """The input unchanged, adding its rows where `flag` is true to `counts[FLAGGED]` as they are read."""
    def counted() -> Iterator[pa.RecordBatch]:
        for batch in data.to_batches() if isinstance(data, pa.Table) else data:
            counts[FLAGGED] = counts.get(FLAGGED, 0) + int(pc.sum(batch.column(flag)).as_py() or 0)
            yield batch
    return pa.RecordBatchReader.from_batches(data.schema, counted())


def select_columns(data: ArrowData, names: Sequence[str]) -> ArrowData:
    """The input with only `names` (a stream stays a stream)."""
    if isinstance(data, pa.Table):
        return data.select(list(names))
    schema = pa.schema([data.schema.field(n) for n in names])
    return pa.RecordBatchReader.from_batches(schema, (b.select(list(names)) for b in data))
