"""What differs between SQL databases, declared in one place per database.

A `Dialect` states the differences as class attributes (case folding, identifier length, what `replace` keeps,
how a merge counts rows, schemas) and a few hooks (quoting, Arrow → column types, the merge statement). The
shared writer and extractor (`osiris_drivers.sql.writer`, `osiris_drivers.sql.extractor`) build every other
statement from them, so each name is quoted by exactly one `quote_ident` per database.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import pyarrow as pa
import pyarrow.compute as pc

from osiris_drivers.sql.source_types import source_of
from osiris_drivers.sql.type_map import target_type


class UnsupportedType(ValueError):
    """An Arrow type a writer has no column type for."""


@dataclass(frozen=True)
class TableName:
    """A table and the namespace it lives in (a schema; a database for MySQL), as the user named them."""

    schema: str
    name: str

    def __str__(self) -> str:
        return f"{self.schema}.{self.name}"


def split_name(table: str, default_schema: str) -> TableName:
    """`schema.table` or `table` (the namespace then defaults); the last dot separates."""
    schema, _, name = table.rpartition(".")
    return TableName(schema or default_schema, name)


class Dialect:
    """ANSI-flavoured defaults; each database's subclass overrides what differs."""

    NAME: ClassVar[str] = "SQL"
    FAMILY: ClassVar[str] = ""
    """The type family its columns are declared in (`osiris_drivers.sql.type_map`): `postgresql`, `mysql`, …"""
    QUOTE: ClassVar[str] = '"'
    """The identifier quote; a quote inside a name is doubled."""
    FOLDS_CASE: ClassVar[bool] = False
    """Column names that differ only in case are one column (so the writer refuses inputs where they clash)."""
    MAX_IDENTIFIER_LENGTH: ClassVar[int] = 63
    """Longer helper-table names are shortened with a hash."""
    REPLACE_KEEPS_MATCHING_TABLE: ClassVar[bool] = False
    """`replace` empties a table whose columns match the input (keeping its column types, keys, grants and
    policies) instead of rebuilding it from the input's schema."""
    MERGE_COUNTS_ROWS: ClassVar[bool] = True
    """The merge statement's row count is the rows written (MySQL counts an updated row twice: False)."""
    INSERT_OVERRIDING: ClassVar[str] = ""
    """Written between an INSERT's column list and its SELECT, so the input's values are written as given (PostgreSQL:
    `OVERRIDING SYSTEM VALUE`, else a GENERATED ALWAYS identity column refuses them)."""
    MERGE_REFUSES_DUPLICATE_KEYS: ClassVar[bool] = False
    """The merge fails (rather than keeping one row) when two staged rows share a key and it updates non-key
    columns (PostgreSQL: cardinality_violation), so an upsert's duplicate check runs only after such a failure."""
    CREATES_SCHEMAS: ClassVar[bool] = True
    """A writer creating a table first creates its schema if missing (MySQL databases are not created)."""
    TABLE_OPTIONS: ClassVar[str] = ""
    """Appended to CREATE TABLE."""
    CREATE_STAGE: ClassVar[str] = "CREATE TABLE"
    """How a staging table that lives until the rows moved in is created."""
    TEXT_CAST: ClassVar[str] = "CAST({} AS VARCHAR)"
    """A column read as exact text (`{}` is the quoted name)."""
    TIMESTAMP_TYPE: ClassVar[str] = "TIMESTAMPTZ"
    """The type of the writer's own time columns (`_osiris_valid_from`, `_osiris_deleted_at`, …), in UTC."""
    HASH_TYPE: ClassVar[str] = "VARCHAR(64)"
    """The type of `_osiris_row_hash` (64 hex digits)."""
    PARTIAL_UNIQUE_INDEX: ClassVar[bool] = True
    """A unique index can have a WHERE clause (scd2 enforces one current row per key with one)."""
    LITERAL_OFFSETS: ClassVar[bool] = True
    """Timestamp literals may carry a UTC offset (MySQL: no; its sessions run in UTC, so values go as UTC)."""

    # ------------------------------------------------------------------------------------------- names

    def quote_ident(self, name: str) -> str:
        """A quoted identifier: reserved words, any case and any character survive."""
        return self.QUOTE + name.replace(self.QUOTE, self.QUOTE * 2) + self.QUOTE

    def quote_literal(self, text: str) -> str:
        """A string literal: the one way every value is put into SQL text (a quote inside is doubled)."""
        return "'" + text.replace("'", "''") + "'"

    def qualified(self, table: TableName) -> str:
        return f"{self.quote_ident(table.schema)}.{self.quote_ident(table.name)}"

    def column_list(self, names: Sequence[str]) -> str:
        return ", ".join(self.quote_ident(n) for n in names)

    def fold(self, name: str) -> str:
        """The form in which two column names are compared."""
        return name.lower() if self.FOLDS_CASE else name

    def same_columns(self, existing: Sequence[str], names: Sequence[str]) -> bool:
        return sorted(map(self.fold, existing)) == sorted(map(self.fold, names))

    def helper_name(self, table: str, suffix: str) -> str:
        """`<table><suffix>`, shortened to the identifier limit with a hash of the full name."""
        if len(table) + len(suffix) <= self.MAX_IDENTIFIER_LENGTH:
            return table + suffix
        digest = hashlib.sha256(table.encode("utf-8")).hexdigest()[:8]
        return f"{table[:self.MAX_IDENTIFIER_LENGTH - len(suffix) - 9]}_{digest}{suffix}"

    # ------------------------------------------------------------------------------------------- types

    def column_type(self, arrow: pa.DataType, *, key: bool) -> str:
        """The column type holding every value of `arrow` (`key`: it is part of the primary key)."""
        raise UnsupportedType(f"no {self.NAME} column type for Arrow {arrow}")

    def source_type(self, field: pa.Field, *, key: bool) -> str | None:
        """The column type for a field that carries its source's declared type (`source_types`): the declared
        type itself in the same family, else the documented mapping (`type_map`); None: the Arrow type decides."""
        source = source_of(field)
        listed = pa.types.is_list(field.type) or pa.types.is_large_list(field.type)
        return target_type(source, self.FAMILY, key=key, listed=listed) if source is not None else None

    def field_type(self, field: pa.Field, *, key: bool) -> str:
        """The column type for `field`: from its source type when it carries one, else from its Arrow type."""
        return self.source_type(field, key=key) or self.column_type(field.type, key=key)

    def check_writable(self, schema: pa.Schema) -> None:
        """Raise `UnsupportedType` naming the first column this database cannot store."""
        for field in schema:
            try:
                self.field_type(field, key=False)
            except UnsupportedType as exc:
                raise UnsupportedType(f"column '{field.name}': {exc}") from None

    def column_types(self, schema: pa.Schema, primary_key: Sequence[str]) -> list[str]:
        keys = set(primary_key)
        return [self.field_type(f, key=f.name in keys) for f in schema]

    def cast_column(self, values: pa.Array, target: pa.DataType) -> pa.Array:
        """A column as read → `target` (exact: a value that does not fit raises ArrowInvalid)."""
        if values.type == target:
            return values
        if pa.types.is_boolean(target) and pa.types.is_integer(values.type):
            # MySQL's BOOLEAN is TINYINT(1), which holds -128..127: only 0 and 1 are booleans, any other value
            # would silently become true (and 1 when written back), so it is refused.
            other = pc.filter(values, pc.and_(pc.is_valid(values),
                                              pc.invert(pc.is_in(values, pa.array([0, 1], values.type)))))
            if len(other):
                raise pa.ArrowInvalid(f"a BOOLEAN (TINYINT(1)) column holds {other[0].as_py()}, which is not a boolean "
                                      "(0 or 1); read it as a number with CAST(column AS SIGNED) in a query")
            result: pa.Array = pc.not_equal(values, 0)
            return result
        return values.cast(target)

    # ------------------------------------------------------------------------------------------- statements

    def column_definition(self, field: pa.Field, sql_type: str, *, key: bool) -> str:
        """`name type`, NOT NULL when the field is not nullable (a NOT NULL source column, `source_types`)."""
        not_null = " NOT NULL" if not field.nullable else ""
        return f"{self.quote_ident(field.name)} {sql_type}{not_null}"

    def create_table_sql(self, table: str, schema: pa.Schema, types: Sequence[str],
                         primary_key: Sequence[str]) -> str:
        """CREATE TABLE `table` (already quoted) with the input's columns, `types` and primary key."""
        keys = set(primary_key)
        columns = [self.column_definition(f, t, key=f.name in keys) for f, t in zip(schema, types, strict=True)]
        if primary_key:
            columns.append(f"PRIMARY KEY ({self.column_list(primary_key)})")
        options = f" {self.TABLE_OPTIONS}" if self.TABLE_OPTIONS else ""
        return f"CREATE TABLE {table} ({', '.join(columns)}){options}"

    def insert_sql(self, target: str, source: str, names: Sequence[str]) -> str:
        columns = self.column_list(names)
        return f"INSERT INTO {target} ({columns}) {self.INSERT_OVERRIDING}SELECT {columns} FROM {source}"

    def merge_sql(self, target: str, source: str, names: Sequence[str], primary_key: Sequence[str]) -> str:
        """Insert `source`'s rows into `target`; a row whose key exists updates every non-key column."""
        keys = {self.fold(k) for k in primary_key}
        updates = ", ".join(f"{self.quote_ident(c)} = EXCLUDED.{self.quote_ident(c)}" for c in names
                            if self.fold(c) not in keys)
        action = f"DO UPDATE SET {updates}" if updates else "DO NOTHING"
        return f"{self.insert_sql(target, source, names)} ON CONFLICT ({self.column_list(primary_key)}) {action}"

    def add_column_sql(self, table: str, name: str, sql_type: str) -> str:
        return f"ALTER TABLE {table} ADD COLUMN {self.quote_ident(name)} {sql_type}"

    def drop_column_sql(self, table: str, name: str) -> str:
        return f"ALTER TABLE {table} DROP COLUMN {self.quote_ident(name)}"

    def retype_column_sql(self, table: str, name: str, sql_type: str) -> str:
        """Widen a column to `sql_type` (its values convert implicitly)."""
        return f"ALTER TABLE {table} ALTER COLUMN {self.quote_ident(name)} SET DATA TYPE {sql_type}"

    def timestamp_sql(self, value: dt.datetime) -> str:
        """A UTC timestamp with microseconds as a literal of `TIMESTAMP_TYPE`."""
        return f"CAST('{value.strftime('%Y-%m-%d %H:%M:%S.%f')}+00:00' AS {self.TIMESTAMP_TYPE})"

    def copy_table_sql(self, table: str, like: str) -> str:
        """Create `table` empty with `like`'s columns, keys, indexes and comments."""
        return f"CREATE TABLE {table} (LIKE {like} INCLUDING ALL)"

    def empty_sql(self, target: str) -> str:
        return f"TRUNCATE {target}"

    def select_sql(self, table: TableName, columns: Sequence[str] | None, limit: int | None) -> str:
        selected = self.column_list(columns) if columns else "*"
        return f"SELECT {selected} FROM {self.qualified(table)}" + (f" LIMIT {int(limit)}" if limit is not None else "")

    def text_select(self, name: str) -> str:
        """`name` as exact text, under its own name."""
        return f"{self.TEXT_CAST.format(self.quote_ident(name))} AS {self.quote_ident(name)}"


def hex_encode(values: pa.Array) -> pa.Array:
    """Binary → lower-case hex text, vectorised (no per-row Python); nulls stay null. How bulk loads send bytes
    as text: MySQL's `UNHEX`, PostgreSQL's `\\x…` bytea input."""
    data = values.cast(pa.large_binary()) if not pa.types.is_large_binary(values.type) else values
    validity, offsets_buffer, data_buffer = data.buffers()
    del validity
    offsets = pa.Array.from_buffers(pa.int64(), len(data) + 1, [None, offsets_buffer], offset=data.offset)
    first = offsets[0].as_py() if len(offsets) else 0
    last = offsets[-1].as_py() if len(offsets) else 0
    raw = data_buffer.slice(first, last - first).to_pybytes() if data_buffer is not None and last > first else b""
    new_offsets = pc.multiply(pc.subtract(offsets, first), 2)
    encoded = pa.Array.from_buffers(pa.large_string(), len(data),
                                    [None, new_offsets.buffers()[1], pa.py_buffer(raw.hex().encode("ascii"))])
    if data.null_count:
        encoded = pc.if_else(pc.is_valid(data), encoded, pa.scalar(None, pa.large_string()))
    return encoded
