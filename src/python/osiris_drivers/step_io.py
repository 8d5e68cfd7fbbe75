"""What every component does with its step's data: read the input once, batch by batch; report what it wrote."""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa

from osiris_core.driver import ROWS_WRITTEN, ArrowData, StepContext


def batches(data: ArrowData) -> Iterator[pa.RecordBatch]:
    """The input's non-empty record batches, read once (a stream cannot be read twice)."""
    for batch in data.to_batches() if isinstance(data, pa.Table) else data:
        if batch.num_rows:
            yield batch


def slices(data: ArrowData, rows: int) -> Iterator[pa.RecordBatch]:
    """The input in batches of at most `rows` rows (zero-copy slices)."""
    for batch in batches(data):
        for start in range(0, batch.num_rows, rows):
            yield batch.slice(start, rows)


def report_written(ctx: StepContext, target: str, rows: int) -> None:
    """What every writer reports once its write committed: the rows metric and `output_written` with the
    credential-free target URI (`osiris_core.targets`)."""
    ctx.metric(ROWS_WRITTEN, rows, "rows")
    ctx.output_written(target, rows=rows)
