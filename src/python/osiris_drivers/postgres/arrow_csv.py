"""Arrow record batches as a PostgreSQL `COPY … FROM STDIN (FORMAT csv)` byte stream."""

from __future__ import annotations

import io
import json
from collections.abc import Iterable, Iterator
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv


def _hex_bytea(values: list[bytes | None]) -> pa.Array:
    return pa.array([None if v is None else "\\x" + v.hex() for v in values], pa.string())


def _json_text(values: list[Any]) -> pa.Array:
    return pa.array([None if v is None else json.dumps(v, default=str) for v in values], pa.string())


def csv_ready(batch: pa.RecordBatch) -> pa.RecordBatch:
    """Columns pyarrow's CSV writer cannot write as PostgreSQL reads them become text (bytea hex, JSON)."""
    columns = [_csv_column(column) for column in batch.columns]
    changed = any(new is not old for new, old in zip(columns, batch.columns, strict=True))
    return pa.RecordBatch.from_arrays(columns, names=batch.schema.names) if changed else batch


def _csv_column(column: pa.Array) -> pa.Array:
    kind = column.type
    if pa.types.is_dictionary(kind):
        return _csv_column(column.cast(kind.value_type))
    if pa.types.is_binary(kind) or pa.types.is_large_binary(kind) or pa.types.is_fixed_size_binary(kind):
        return _hex_bytea(column.to_pylist())
    if pa.types.is_nested(kind):
        return _json_text(column.to_pylist())
    return column


class CsvCopyStream(io.RawIOBase):
    """A readable file whose bytes are the batches as CSV: NULL unquoted-empty, strings always quoted."""

    def __init__(self, batches: Iterable[pa.RecordBatch]) -> None:
        super().__init__()
        self._batches: Iterator[pa.RecordBatch] = iter(batches)
        self._chunk = b""
        self._pos = 0
        self.rows = 0
        self._options = pacsv.WriteOptions(include_header=False, quoting_style="needed")

    def readable(self) -> bool:
        return True

    def _next_chunk(self) -> bool:
        for batch in self._batches:
            if batch.num_rows == 0:
                continue
            sink = io.BytesIO()
            pacsv.write_csv(csv_ready(batch), sink, self._options)
            self.rows += batch.num_rows
            self._chunk, self._pos = sink.getvalue(), 0
            return True
        return False

    def read(self, size: int | None = -1) -> bytes:
        """Up to `size` bytes of the current batch's CSV (fewer is allowed); b"" at the end."""
        if self._pos >= len(self._chunk) and not self._next_chunk():
            return b""
        end = len(self._chunk) if size is None or size < 0 else self._pos + size
        data = self._chunk[self._pos:end]
        self._pos += len(data)
        return data
