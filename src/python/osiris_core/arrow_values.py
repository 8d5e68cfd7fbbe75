"""Arrow → Python values without loss: what writers that go through Python objects must use."""

from __future__ import annotations

import pyarrow as pa


def _needs_text(kind: pa.DataType) -> bool:
    """Nanosecond times have no Python equivalent (datetime stops at microseconds)."""
    temporal = pa.types.is_timestamp(kind) or pa.types.is_time(kind) or pa.types.is_duration(kind)
    return temporal and getattr(kind, "unit", None) == "ns"


def python_safe(batch: pa.RecordBatch) -> pa.RecordBatch:
    """The batch with nanosecond temporal columns as exact ISO text (`2024-01-01 12:00:00.123456789`)."""
    if not any(_needs_text(f.type) for f in batch.schema):
        return batch
    columns = [c.cast(pa.string()) if _needs_text(c.type) else c for c in batch.columns]
    return pa.RecordBatch.from_arrays(columns, names=batch.schema.names)
