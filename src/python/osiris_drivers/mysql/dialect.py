"""MySQL/MariaDB as a `Dialect`: backtick quoting, Arrow → column types, and the values `LOAD DATA` / `INSERT` send.

What differs from the shared defaults: column names ignore case; identifiers stop at 64 characters; DDL commits at
once (so the writer swaps new tables in with RENAME, `osiris_drivers.sql.writer.SwapWriter`); `replace` rebuilds
the table from the input; an upsert is `INSERT … ON DUPLICATE KEY UPDATE`, whose row count counts an update twice;
databases are never created.

Writing: `column_type` is the DDL for a column the writer creates, and `to_text` / `to_python` prepare Arrow
columns for `LOAD DATA` / `INSERT`.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from typing import Any, ClassVar

import pyarrow as pa
import pyarrow.compute as pc

from osiris_core.arrow_values import python_safe
from osiris_drivers.sql.dialect import Dialect, UnsupportedType, hex_encode

MAX_MYSQL_DECIMAL = (65, 30)
KEY_TEXT = "VARCHAR(255)"
KEY_BINARY = "VARBINARY(255)"

_INTEGERS = {
    pa.int8(): "TINYINT", pa.int16(): "SMALLINT", pa.int32(): "INT", pa.int64(): "BIGINT",
    pa.uint8(): "TINYINT UNSIGNED", pa.uint16(): "SMALLINT UNSIGNED", pa.uint32(): "INT UNSIGNED",
    pa.uint64(): "BIGINT UNSIGNED",
}


class MySQLDialect(Dialect):
    NAME = "MySQL"
    FAMILY = "mysql"
    QUOTE = "`"
    FOLDS_CASE = True
    MAX_IDENTIFIER_LENGTH = 64
    REPLACE_KEEPS_MATCHING_TABLE = False
    MERGE_COUNTS_ROWS = False
    CREATES_SCHEMAS = False
    TABLE_OPTIONS = "ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin"
    TEXT_CAST: ClassVar[str] = "CAST({} AS CHAR)"
    TIMESTAMP_TYPE: ClassVar[str] = "DATETIME(6)"
    HASH_TYPE: ClassVar[str] = "CHAR(64)"
    PARTIAL_UNIQUE_INDEX: ClassVar[bool] = False
    LITERAL_OFFSETS = False

    def quote_literal(self, text: str) -> str:
        """Backslashes escape in MySQL strings (unless NO_BACKSLASH_ESCAPES): doubled, like quotes."""
        return "'" + text.replace("\\", "\\\\").replace("'", "''") + "'"

    def column_type(self, arrow: pa.DataType, *, key: bool) -> str:
        """MySQL column type for a column of `arrow` values; `key` columns get indexable string types."""
        arrow = _plain(arrow)
        if arrow in _INTEGERS:
            return _INTEGERS[arrow]
        if pa.types.is_boolean(arrow):
            return "BOOLEAN"
        if pa.types.is_float16(arrow) or pa.types.is_float32(arrow):
            return "FLOAT"
        if pa.types.is_float64(arrow):
            return "DOUBLE"
        if pa.types.is_decimal(arrow):
            max_precision, max_scale = MAX_MYSQL_DECIMAL
            if arrow.precision > max_precision or arrow.scale > max_scale or arrow.scale < 0:
                raise UnsupportedType(f"{arrow} does not fit MySQL's DECIMAL(≤{max_precision}, ≤{max_scale})")
            return f"DECIMAL({arrow.precision},{arrow.scale})"
        if is_text(arrow) or pa.types.is_null(arrow):
            return KEY_TEXT if key else "LONGTEXT"
        if pa.types.is_fixed_size_binary(arrow) and arrow.byte_width <= 255:
            return f"BINARY({arrow.byte_width})"
        if is_binary(arrow):
            return KEY_BINARY if key else "LONGBLOB"
        if pa.types.is_date(arrow):
            return "DATE"
        if pa.types.is_timestamp(arrow):
            return "DATETIME(6)"
        if pa.types.is_time(arrow):
            return "TIME(6)"
        raise UnsupportedType(f"no MySQL column type for Arrow {arrow}")

    def column_definition(self, field: pa.Field, sql_type: str, *, key: bool) -> str:
        not_null = " NOT NULL" if key or not field.nullable else ""
        return f"{self.quote_ident(field.name)} {sql_type}{not_null}"

    def merge_sql(self, target: str, source: str, names: Sequence[str], primary_key: Sequence[str]) -> str:
        keys = {self.fold(k) for k in primary_key}
        updates = ", ".join(f"{self.quote_ident(n)} = VALUES({self.quote_ident(n)})" for n in names
                            if self.fold(n) not in keys)
        if not updates:  # every column is a key: nothing to update, duplicates are simply kept
            first = self.quote_ident(names[0])
            updates = f"{first} = {first}"
        return f"{self.insert_sql(target, source, names)} ON DUPLICATE KEY UPDATE {updates}"

    def retype_column_sql(self, table: str, name: str, sql_type: str) -> str:
        return f"ALTER TABLE {table} MODIFY COLUMN {self.quote_ident(name)} {sql_type}"

    def timestamp_sql(self, value: dt.datetime) -> str:
        return f"CAST('{value.strftime('%Y-%m-%d %H:%M:%S.%f')}' AS DATETIME(6))"

    def copy_table_sql(self, table: str, like: str) -> str:
        return f"CREATE TABLE {table} LIKE {like}"

    def rename_sql(self, pairs: Sequence[tuple[str, str]]) -> str:
        """One atomic RENAME TABLE of every (old, new) pair."""
        return "RENAME TABLE " + ", ".join(f"{old} TO {new}" for old, new in pairs)


MYSQL = MySQLDialect()


def _plain(arrow: pa.DataType) -> pa.DataType:
    return arrow.value_type if pa.types.is_dictionary(arrow) else arrow


def is_binary(arrow: pa.DataType) -> bool:
    arrow = _plain(arrow)
    return bool(pa.types.is_binary(arrow) or pa.types.is_large_binary(arrow) or pa.types.is_fixed_size_binary(arrow)
                or pa.types.is_binary_view(arrow))


def is_text(arrow: pa.DataType) -> bool:
    arrow = _plain(arrow)
    return bool(pa.types.is_string(arrow) or pa.types.is_large_string(arrow) or pa.types.is_string_view(arrow))


def _normalised(values: pa.Array) -> pa.Array:
    """Dictionary decoded, time zones dropped (values are UTC, the session's zone), date64 as date32, lists and
    structs as JSON text."""
    if pa.types.is_dictionary(values.type):
        values = values.dictionary_decode()
    arrow = values.type
    if pa.types.is_timestamp(arrow) and arrow.tz is not None:
        values = values.cast(pa.timestamp(arrow.unit))
    elif pa.types.is_date64(arrow):
        values = values.cast(pa.date32())
    elif pa.types.is_null(arrow):
        values = values.cast(pa.string())
    elif pa.types.is_float16(arrow):
        values = values.cast(pa.float32())
    elif pa.types.is_string_view(arrow):
        values = values.cast(pa.large_string())
    elif pa.types.is_binary_view(arrow) or pa.types.is_fixed_size_binary(arrow):
        values = values.cast(pa.large_binary())
    elif pa.types.is_nested(arrow):  # a PostgreSQL array into a JSON column (`type_map`)
        values = pa.array([None if v is None else json.dumps(v, default=str, ensure_ascii=False)
                           for v in python_safe(pa.RecordBatch.from_arrays([values], names=["v"])).column(0)
                           .to_pylist()], pa.string())
    return values


def to_text(values: pa.Array) -> pa.Array:
    """A column in the form `LOAD DATA … ESCAPED BY '\\\\'` reads back exactly (binary as hex)."""
    values = _normalised(values)
    arrow = values.type
    if is_binary(arrow):
        return hex_encode(values)
    if is_text(arrow):
        escaped: pa.Array = pc.replace_substring(values, "\\", "\\\\")
        return escaped
    if pa.types.is_boolean(arrow):
        return values.cast(pa.int8())
    return values


def to_python(values: pa.Array) -> list[Any]:
    """A column as Python values pymysql escapes correctly (for the INSERT fallback)."""
    normalised = _normalised(values)
    if pa.types.is_timestamp(normalised.type) or pa.types.is_time(normalised.type):
        normalised = python_safe(pa.RecordBatch.from_arrays([normalised], names=["v"])).column(0)
    return list(normalised.to_pylist())
