"""COPY, PostgreSQL's fast path: Arrow record batches as a `COPY … FROM STDIN (FORMAT csv)` byte stream, and the
writer that loads with it in one transaction (used by `postgres.writer`, and by `supabase.writer` with pg_dsn).
"""

from __future__ import annotations

import contextlib
import io
import json
import uuid
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from osiris_core.driver import ArrowData, StepContext
from osiris_core.interrupts import cancellable
from osiris_drivers.connection import ConnectionSettings
from osiris_drivers.postgres.binary_copy import BinaryCopyStream, encoders_for
from osiris_drivers.postgres.connection import pg_connection
from osiris_drivers.postgres.dialect import POSTGRES
from osiris_drivers.postgres.rebuild import column_types_sql, kept_on_rebuild
from osiris_drivers.sql.dialect import TableName, hex_encode
from osiris_drivers.sql.source_types import source_of
from osiris_drivers.sql.writer import KEYED_MODES, STAGE_PREFIX, TableWriteOptions, TransactionalWriter
from osiris_drivers.step_io import batches

if TYPE_CHECKING:
    import psycopg2.extensions

COPY_READ_SIZE = 8 << 20
"""Bytes psycopg2 asks the stream for at a time: more than one encoded slice (~2.3 MB for P1's 16,384 rows), so
each slice goes out whole, as the same bytes object (a smaller read copies every slice once more)."""
CARDINALITY_VIOLATION = "21000"
"""`ON CONFLICT DO UPDATE command cannot affect row a second time`: two staged rows share a key."""


def _hex_bytea(values: pa.Array) -> pa.Array:
    """bytea's text input `\\x<hex>`, vectorised."""
    prefix = pa.scalar("\\x", pa.large_string())
    result: pa.Array = pc.binary_join_element_wise(prefix, hex_encode(values), pa.scalar("", pa.large_string()))
    return result


def _json_text(values: list[Any]) -> pa.Array:
    return pa.array([None if v is None else json.dumps(v, default=str) for v in values], pa.string())


def array_literal(value: Any) -> str:
    """A (nested) list as PostgreSQL's array input: `{"a","b \\"c\\"",NULL}`."""
    if value is None:
        return "NULL"
    if isinstance(value, list):
        return "{" + ",".join(array_literal(v) for v in value) + "}"
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, bytes):
        value = "\\x" + value.hex()
    text = value.isoformat() if hasattr(value, "isoformat") else str(value)
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _array_text(values: list[Any]) -> pa.Array:
    return pa.array([None if v is None else array_literal(v) for v in values], pa.string())


def csv_ready(batch: pa.RecordBatch) -> pa.RecordBatch:
    """Columns pyarrow's CSV writer cannot write as PostgreSQL reads them become text (bytea hex; lists as
    PostgreSQL arrays when they were arrays in PostgreSQL (`source_types`), else as JSON like structs)."""
    columns = [_array_text(column.to_pylist()) if is_pg_array(field) else _csv_column(column)
               for field, column in zip(batch.schema, batch.columns, strict=True)]
    changed = any(new is not old for new, old in zip(columns, batch.columns, strict=True))
    return pa.RecordBatch.from_arrays(columns, names=batch.schema.names) if changed else batch


def is_pg_array(field: pa.Field) -> bool:
    """A list column that was a PostgreSQL array: it is written into an array column (`type_map`)."""
    source = source_of(field)
    return bool(pa.types.is_list(field.type) or pa.types.is_large_list(field.type)) and source is not None \
        and source.family == "postgresql" and source.array > 0


def _csv_column(column: pa.Array) -> pa.Array:
    kind = column.type
    if pa.types.is_dictionary(kind):
        return _csv_column(column.cast(kind.value_type))
    if pa.types.is_binary(kind) or pa.types.is_large_binary(kind) or pa.types.is_fixed_size_binary(kind):
        return _hex_bytea(column)
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


def column_types(cursor: psycopg2.extensions.cursor, table: str, names: Sequence[str]) -> list[str] | None:
    """The PostgreSQL types (`format_type`) of `names` in `table` (quoted), or None if one is missing."""
    cursor.execute("SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
                   "WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped", (table,))
    types = {str(name): str(kind) for name, kind in cursor.fetchall()}
    return [types[name] for name in names] if all(name in types for name in names) else None


def copy_into(cursor: psycopg2.extensions.cursor, table: str, names: Sequence[str], data: ArrowData) -> int:
    """COPY every input row into `table` (quoted) over `cursor`; the row count.

    Binary COPY when every column's Arrow type and target type have a binary encoding
    (`osiris_drivers.postgres.binary_copy`): no text to write or parse; else CSV.
    """
    targets = column_types(cursor, table, names)
    encoders = encoders_for(data.schema, targets) if targets is not None else None
    stream: CsvCopyStream | BinaryCopyStream
    if encoders is None:
        stream, options = CsvCopyStream(batches(data)), "FORMAT csv"
    else:
        stream, options = BinaryCopyStream(batches(data), encoders), "FORMAT binary"
    cursor.copy_expert(f"COPY {table} ({POSTGRES.column_list(names)}) FROM STDIN WITH ({options})", stream,
                       COPY_READ_SIZE)
    return stream.rows


class CopyWriter(TransactionalWriter):
    """DDL, COPY and the merge in one psycopg2 transaction over `dsn`."""

    dialect = POSTGRES

    def __init__(self, step_id: str, options: TableWriteOptions, table: TableName, data: ArrowData,
                 ctx: StepContext, *, dsn: str, settings: ConnectionSettings) -> None:
        super().__init__(step_id, options, table, data, ctx, settings=settings)
        self._dsn = dsn
        self._connection: contextlib.ExitStack | None = None
        self._cursor: psycopg2.extensions.cursor | None = None
        self._key_after_load: tuple[str, list[str]] | None = None
        """A table this write created without its primary key, added once the rows are in."""

    @property
    def cursor(self) -> psycopg2.extensions.cursor:
        assert self._cursor is not None
        return self._cursor

    def open(self) -> None:
        with contextlib.ExitStack() as stack:
            connection = stack.enter_context(pg_connection(self._dsn))
            stack.enter_context(cancellable(connection.cancel))  # SIGINT/SIGTERM cancel the running statement
            self._cursor = stack.enter_context(connection.cursor())
            self._connection = stack.pop_all()

    def close(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(Exception):
                self._connection.close()

    def begin(self) -> None:
        """psycopg2 opens the transaction at the first statement."""

    def commit(self) -> None:
        self.cursor.connection.commit()

    def rollback(self) -> None:
        self.cursor.connection.rollback()

    def execute(self, sql: str) -> int:
        self.cursor.execute(sql)
        return int(self.cursor.rowcount)

    def duplicate_keys_refused(self, exc: BaseException) -> bool:
        return getattr(exc, "pgcode", None) == CARDINALITY_VIOLATION

    def query_row(self, sql: str) -> Sequence[Any] | None:
        self.cursor.execute(sql)
        row: Sequence[Any] | None = self.cursor.fetchone()
        return row

    def columns(self) -> list[str] | None:
        self.cursor.execute("SELECT to_regclass(%s) IS NOT NULL", (self.target,))
        row = self.cursor.fetchone()
        if not (row and row[0]):
            return None
        self.cursor.execute("SELECT a.attname FROM pg_attribute a WHERE a.attrelid = to_regclass(%s) "
                            "AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum", (self.target,))
        return [str(r[0]) for r in self.cursor.fetchall()]

    def query(self, sql: str) -> list[dict[str, Any]]:
        """Rows of one read-only statement in the open transaction, as dicts."""
        self.cursor.execute(sql)
        names = [d[0] for d in self.cursor.description or ()]
        return [dict(zip(names, row, strict=True)) for row in self.cursor.fetchall()]

    def table_types(self, existing: list[str]) -> dict[str, str | None]:
        return {str(r["name"]): str(r["type"]) for r in self.query(column_types_sql(self.target))}

    def kept_on_rebuild(self, table: str) -> list[str]:
        return kept_on_rebuild(self, self.query, table)

    def load(self, table: str) -> int:
        return copy_into(self.cursor, table, self.names, self.data)

    def create_statements(self, table: str) -> list[str]:
        """The shared statements, but a created table that is not merged into (append, replace) gets its primary
        key after the load (`fill`): one index build instead of an index insert per row, in the same transaction."""
        statements = super().create_statements(table)
        schema, types, key = self.table_definition()
        if self.options.write_mode in KEYED_MODES or not key:
            return statements
        keyed = self.dialect.create_table_sql(table, schema, types, key)
        unkeyed = self.dialect.create_table_sql(table, schema, types, [])
        self._key_after_load = (table, key)
        return [unkeyed if statement == keyed else statement for statement in statements]

    def fill(self, table: str) -> int:
        rows = super().fill(table)
        if self._key_after_load is not None and self._key_after_load[0] == table:
            self.execute(f"ALTER TABLE {table} ADD PRIMARY KEY ({self.dialect.column_list(self._key_after_load[1])})")
        return rows

    def stage(self, table: str) -> tuple[str, int | None]:
        """A temporary table typed from the input, dropped at commit, loaded by COPY."""
        stage = POSTGRES.quote_ident(f"{STAGE_PREFIX}{uuid.uuid4().hex[:12]}")
        columns = ", ".join(f"{POSTGRES.quote_ident(f.name)} {t}" for f, t in zip(self.data.schema,
                                                                                   self.column_types(), strict=True))
        self.execute(f"CREATE TEMP TABLE {stage} ({columns}) ON COMMIT DROP")
        return stage, self.load(stage)
