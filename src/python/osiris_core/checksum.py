"""An order-sensitive checksum of Arrow data that does not depend on how the rows were split into batches.

Every Arrow type is accepted: types the CSV writer renders itself (numbers, booleans, strings, decimals, dates,
times, timestamps, durations, nulls) go through it; every other type (binary, nested, views, intervals,
run-end encoded, extension types, dictionaries of those) is rendered first as text — bytes as hex, everything else
as canonical JSON — so `osiris parity` can checksum whatever a step produces.
"""

from __future__ import annotations

import datetime as dt
import decimal
import hashlib
import io
import json
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv

SLICE_ROWS = 65_536


class DataChecksum:
    """sha256 over the rows rendered as CSV in fixed-size slices; the schema's names and types come first."""

    def __init__(self, schema: pa.Schema) -> None:
        self._digest = hashlib.sha256(str([(f.name, str(f.type)) for f in schema]).encode())
        self._schema = schema
        self._pending: list[pa.RecordBatch] = []
        self._pending_rows = 0
        self._options = pacsv.WriteOptions(include_header=False)

    def update(self, batch: pa.RecordBatch) -> None:
        self._pending.append(batch)
        self._pending_rows += batch.num_rows
        while self._pending_rows >= SLICE_ROWS:
            table = pa.Table.from_batches(self._pending, schema=self._schema)
            self._write(table.slice(0, SLICE_ROWS))
            rest = table.slice(SLICE_ROWS)
            self._pending = rest.to_batches()
            self._pending_rows = rest.num_rows

    def _write(self, table: pa.Table) -> None:
        if table.num_rows == 0:
            return
        sink = io.BytesIO()
        pacsv.write_csv(_csv_writable(table), sink, self._options)
        self._digest.update(sink.getvalue())

    def hexdigest(self) -> str:
        self._write(pa.Table.from_batches(self._pending, schema=self._schema))
        self._pending, self._pending_rows = [], 0
        return self._digest.hexdigest()


def _csv_native(data_type: pa.DataType) -> bool:
    """Whether Arrow's CSV writer renders this type itself (and exactly)."""
    if pa.types.is_dictionary(data_type):
        return _csv_native(data_type.value_type)
    return any(test(data_type) for test in (
        pa.types.is_integer, pa.types.is_floating, pa.types.is_boolean, pa.types.is_string,
        pa.types.is_large_string, pa.types.is_decimal, pa.types.is_date, pa.types.is_time,
        pa.types.is_timestamp, pa.types.is_duration, pa.types.is_null))


def _json_default(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return [value.days, value.seconds, value.microseconds]
    if isinstance(value, tuple):  # MonthDayNano and other named tuples
        return list(value)
    return str(value)


def _text(value: Any) -> str | None:
    """One value of a type the CSV writer cannot render, as text (injective within a column's type)."""
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.hex()
    return json.dumps(value, sort_keys=True, ensure_ascii=False, default=_json_default)


def _csv_writable(table: pa.Table) -> pa.Table:
    """Columns the CSV writer cannot render (binary, nested, …) as text; the schema hashed up front keeps types."""
    for index, field in enumerate(table.schema):
        if not _csv_native(field.type):
            column = table.column(index)
            if isinstance(field.type, pa.BaseExtensionType):
                column = pa.chunked_array([chunk.storage for chunk in column.chunks], field.type.storage_type)
            text = [_text(v) for v in column.to_pylist()]
            table = table.set_column(index, field.name, pa.array(text, pa.string()))
    return table


def table_checksum(table: pa.Table) -> str:
    checksum = DataChecksum(table.schema)
    for batch in table.to_batches():
        checksum.update(batch)
    return checksum.hexdigest()
