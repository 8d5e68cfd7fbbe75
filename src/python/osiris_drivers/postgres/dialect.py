"""PostgreSQL as a `Dialect` (Supabase is PostgreSQL too): double-quoted names, Arrow → column types, string
literals for SQL sent as text.

What differs from the shared defaults: `replace` empties a table whose columns match the input, so its column
types, keys, grants and row-level-security policies survive (a table with other columns is rebuilt); staging
tables are UNLOGGED; NUMERIC is read as exact text when ConnectorX would round it.
"""

from __future__ import annotations

import pyarrow as pa

from osiris_drivers.sql.dialect import Dialect


class PostgresDialect(Dialect):
    NAME = "PostgreSQL"
    FAMILY = "postgresql"
    REPLACE_KEEPS_MATCHING_TABLE = True
    MERGE_REFUSES_DUPLICATE_KEYS = True
    INSERT_OVERRIDING = "OVERRIDING SYSTEM VALUE "
    CREATE_STAGE = "CREATE UNLOGGED TABLE"
    TEXT_CAST = "{}::text"

    def column_type(self, arrow: pa.DataType, *, key: bool) -> str:
        """The PostgreSQL column type that holds every value of `arrow` without loss."""
        t = pa.types
        if t.is_dictionary(arrow):
            return self.column_type(arrow.value_type, key=key)
        if t.is_boolean(arrow):
            return "BOOLEAN"
        if t.is_int8(arrow) or t.is_int16(arrow) or t.is_uint8(arrow):
            return "SMALLINT"
        if t.is_int32(arrow) or t.is_uint16(arrow):
            return "INTEGER"
        if t.is_int64(arrow) or t.is_uint32(arrow):
            return "BIGINT"
        if t.is_uint64(arrow):
            return "NUMERIC(20,0)"
        if t.is_float16(arrow) or t.is_float32(arrow):
            return "REAL"
        if t.is_float64(arrow):
            return "DOUBLE PRECISION"
        if t.is_decimal(arrow):
            return f"NUMERIC({arrow.precision},{arrow.scale})"
        if t.is_string(arrow) or t.is_large_string(arrow) or t.is_null(arrow):
            return "TEXT"
        if t.is_binary(arrow) or t.is_large_binary(arrow) or t.is_fixed_size_binary(arrow):
            return "BYTEA"
        if t.is_date(arrow):
            return "DATE"
        if t.is_timestamp(arrow):  # a naive timestamp stays naive: no time zone is assumed
            return "TIMESTAMPTZ" if arrow.tz is not None else "TIMESTAMP"
        if t.is_time(arrow):
            return "TIME"
        return "JSONB"


POSTGRES = PostgresDialect()


def quote_literal(value: str) -> str:
    """A string literal for SQL sent as text, whatever the server's `standard_conforming_strings`.

    An escape string (`E'…'`) reads `\\` as one backslash and `''` as one quote under either setting, so doubling
    both leaves no escape a value could use. (A plain `'…'` is not safe: with the setting off, a value ending in a
    backslash escapes the closing quote. A `SET standard_conforming_strings` in the same batch does not help:
    PostgreSQL lexes a whole batch before running its first statement.)
    """
    return "E'" + value.replace("\\", "\\\\").replace("'", "''") + "'"
