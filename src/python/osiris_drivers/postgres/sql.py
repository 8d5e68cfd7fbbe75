"""SQL text for PostgreSQL: identifier quoting and Arrow → PostgreSQL column types."""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa


def quote_ident(name: str) -> str:
    """A quoted identifier: reserved words and mixed case survive."""
    return '"' + name.replace('"', '""') + '"'


def qualified(schema: str, table: str) -> str:
    return f"{quote_ident(schema)}.{quote_ident(table)}"


def column_list(names: Sequence[str]) -> str:
    return ", ".join(quote_ident(n) for n in names)


def pg_type(arrow_type: pa.DataType) -> str:
    """The PostgreSQL column type that holds every value of `arrow_type` without loss."""
    t = pa.types
    if t.is_boolean(arrow_type):
        return "BOOLEAN"
    if t.is_int8(arrow_type) or t.is_int16(arrow_type) or t.is_uint8(arrow_type):
        return "SMALLINT"
    if t.is_int32(arrow_type) or t.is_uint16(arrow_type):
        return "INTEGER"
    if t.is_int64(arrow_type) or t.is_uint32(arrow_type):
        return "BIGINT"
    if t.is_uint64(arrow_type):
        return "NUMERIC(20,0)"
    if t.is_float16(arrow_type) or t.is_float32(arrow_type):
        return "REAL"
    if t.is_float64(arrow_type):
        return "DOUBLE PRECISION"
    if t.is_decimal(arrow_type):
        return f"NUMERIC({arrow_type.precision},{arrow_type.scale})"
    if t.is_string(arrow_type) or t.is_large_string(arrow_type):
        return "TEXT"
    if t.is_binary(arrow_type) or t.is_large_binary(arrow_type) or t.is_fixed_size_binary(arrow_type):
        return "BYTEA"
    if t.is_date(arrow_type):
        return "DATE"
    if t.is_timestamp(arrow_type):
        return "TIMESTAMPTZ"
    if t.is_time(arrow_type):
        return "TIME"
    if t.is_dictionary(arrow_type):
        return pg_type(arrow_type.value_type)
    if t.is_null(arrow_type):
        return "TEXT"
    return "JSONB"


def create_table_sql(schema: str, table: str, arrow_schema: pa.Schema, primary_key: Sequence[str]) -> str:
    columns = [f"{quote_ident(f.name)} {pg_type(f.type)}" for f in arrow_schema]
    if primary_key:
        columns.append(f"PRIMARY KEY ({column_list(primary_key)})")
    return f"CREATE TABLE {qualified(schema, table)} ({', '.join(columns)})"


def upsert_sql(target: str, source: str, columns: Sequence[str], primary_key: Sequence[str]) -> str:
    """INSERT … SELECT … ON CONFLICT (key) DO UPDATE: update every non-key column from the new row."""
    cols = column_list(columns)
    updates = ", ".join(f"{quote_ident(c)} = EXCLUDED.{quote_ident(c)}" for c in columns if c not in primary_key)
    action = f"DO UPDATE SET {updates}" if updates else "DO NOTHING"
    conflict = f"ON CONFLICT ({column_list(primary_key)}) {action}"
    return f"INSERT INTO {target} ({cols}) SELECT {cols} FROM {source} {conflict}"


def quote_literal(value: str) -> str:
    """A string literal for SQL sent as text, whatever the server's `standard_conforming_strings`.

    An escape string (`E'…'`) reads `\\` as one backslash and `''` as one quote under either setting, so doubling
    both leaves no escape a value could use. (A plain `'…'` is not safe: with the setting off, a value ending in a
    backslash escapes the closing quote. A `SET standard_conforming_strings` in the same batch does not help:
    PostgreSQL lexes a whole batch before running its first statement.)
    """
    return "E'" + value.replace("\\", "\\\\").replace("'", "''") + "'"
