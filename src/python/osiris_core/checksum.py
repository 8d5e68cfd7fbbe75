"""An order-sensitive checksum of Arrow data that does not depend on how the rows were split into batches."""

from __future__ import annotations

import hashlib
import io
import json

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


def _csv_writable(table: pa.Table) -> pa.Table:
    """Nested columns (lists, structs, maps) as canonical JSON text: the CSV writer cannot render them."""
    for index, field in enumerate(table.schema):
        if pa.types.is_nested(field.type):
            text = [None if v is None else json.dumps(v, sort_keys=True, default=str)
                    for v in table.column(index).to_pylist()]
            table = table.set_column(index, field.name, pa.array(text, pa.string()))
    return table


def table_checksum(table: pa.Table) -> str:
    checksum = DataChecksum(table.schema)
    for batch in table.to_batches():
        checksum.update(batch)
    return checksum.hexdigest()
