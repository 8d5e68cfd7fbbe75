"""Streaming a PostgreSQL query into Arrow record batches with ConnectorX, with exact NUMERIC types."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pyarrow as pa

from osiris_core.errors import DriverError
from osiris_drivers.connectorx_decimals import decimal_is_exact
from osiris_drivers.connectorx_reader import Describe, guarded_batches, open_stream
from osiris_drivers.keyset_pages import KEY_ALIAS, PAGE_ROWS, keyset_pages
from osiris_drivers.postgres.connection import TlsUnsupported, connectorx_url, driver_error, pg_connection
from osiris_drivers.postgres.sql import qualified, quote_ident

NUMERIC_OID = 1700
MAX_DECIMAL128_PRECISION = 38


def table_query(schema: str, table: str, columns: list[str] | None, limit: int | None) -> str:
    cols = ", ".join(quote_ident(c) for c in columns) if columns else "*"
    return f"SELECT {cols} FROM {qualified(schema, table)}" + (f" LIMIT {int(limit)}" if limit is not None else "")


@dataclass(frozen=True)
class _Numeric:
    name: str
    target: pa.DataType
    as_text: bool
    """Fetched as text and converted exactly (ConnectorX would round or fail)."""


def _numeric_columns(dsn: str, query: str, step_id: str) -> tuple[list[str], list[_Numeric]]:
    """All result column names, and how each NUMERIC column must travel to stay exact."""
    import psycopg2

    try:
        with pg_connection(dsn) as connection, connection.cursor() as cursor:
            cursor.execute(f"SELECT * FROM ({query}) AS osiris_probe LIMIT 0")
            description = cursor.description or ()
    except psycopg2.Error as exc:
        raise driver_error(exc, step_id=step_id, doing="running the query") from None
    numerics = []
    for column in description:
        if column.type_code != NUMERIC_OID:
            continue
        precision, scale = column.precision, column.scale or 0
        if not precision or precision > MAX_DECIMAL128_PRECISION or not 0 <= scale <= precision:
            # Unconstrained, wider than decimal128, or a negative scale (PostgreSQL 15): exact as text.
            numerics.append(_Numeric(column.name, pa.string(), as_text=True))
        else:
            numerics.append(_Numeric(column.name, pa.decimal128(precision, scale),
                                     as_text=not decimal_is_exact(precision, scale)))
    return [c.name for c in description], numerics


def _stream_url(dsn: str, step_id: str) -> str:
    try:
        return connectorx_url(dsn)
    except TlsUnsupported as exc:
        raise DriverError(str(exc), step_id=step_id,
                          hint="use sslmode verify-ca with sslrootcert (the CA is still verified) or require") \
            from None


def _describer(step_id: str) -> Describe:
    def describe(exc: BaseException, panic: bool) -> DriverError:
        if panic:
            return DriverError(f"a value has no Arrow form: {' '.join(str(exc).split())}", step_id=step_id,
                               hint="CAST such columns to text in the query")
        return DriverError(f"query failed: {' '.join(str(exc).split())}", step_id=step_id,
                           hint="check the query and the connection")

    return describe


def _exact_select(names: list[str], numerics: list[_Numeric]) -> str:
    """The select list that fetches ConnectorX-inexact NUMERIC columns as text."""
    as_text = {n.name for n in numerics if n.as_text}
    return ", ".join(f"{quote_ident(n)}::text AS {quote_ident(n)}" if n in as_text else quote_ident(n)
                     for n in names)


def _cast_to(reader_fields: list[pa.Field], numerics: list[_Numeric]) -> pa.Schema:
    targets = {n.name: n.target for n in numerics}
    return pa.schema([pa.field(f.name, targets.get(f.name, f.type)) for f in reader_fields])


def stream_query(dsn: str, query: str, step_id: str) -> pa.RecordBatchReader:
    """The query's rows as one stream of record batches, NUMERIC values exact.

    ConnectorX reads ahead of a slow consumer without limit; tables with an integer key avoid that through
    `stream_table`.
    """
    query = query.strip().rstrip(";")
    url = _stream_url(dsn, step_id)
    names, numerics = _numeric_columns(dsn, query, step_id)
    if any(n.as_text for n in numerics):
        query = f"SELECT {_exact_select(names, numerics)} FROM ({query}) AS osiris_exact"
    describe = _describer(step_id)
    reader = open_stream(url, query, describe)
    schema = _cast_to(list(reader.schema), numerics)

    def batches() -> Iterator[pa.RecordBatch]:
        for batch in guarded_batches(reader, describe):
            yield batch.cast(schema) if numerics else batch

    return pa.RecordBatchReader.from_batches(schema, batches())


def _integer_key(dsn: str, schema: str, table: str, step_id: str) -> str | None:
    """The table's primary key when it is one smallint/integer/bigint column."""
    import psycopg2

    try:
        with pg_connection(dsn) as connection, connection.cursor() as cursor:
            cursor.execute(
                "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_index i "
                "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) "
                "WHERE i.indrelid = to_regclass(%s) AND i.indisprimary", (qualified(schema, table),))
            rows = cursor.fetchall()
            # Inheritance children share no key with their parent: pages could split equal keys. Read whole.
            cursor.execute("SELECT count(*) FROM pg_inherits WHERE inhparent = to_regclass(%s)",
                           (qualified(schema, table),))
            children = cursor.fetchone()
    except psycopg2.Error as exc:
        raise driver_error(exc, step_id=step_id, doing="reading the table's primary key") from None
    if len(rows) == 1 and rows[0][1] in {"smallint", "integer", "bigint"} and not (children and children[0]):
        return str(rows[0][0])
    return None


def stream_table(dsn: str, schema: str, table: str, columns: list[str] | None, limit: int | None,
                 step_id: str) -> pa.RecordBatchReader:
    """A table's rows; in key pages (bounded memory) when it has an integer primary key."""
    url = _stream_url(dsn, step_id)
    key = _integer_key(dsn, schema, table, step_id)
    if key is None:
        return stream_query(dsn, table_query(schema, table, columns, limit), step_id)
    names, numerics = _numeric_columns(dsn, table_query(schema, table, columns, None), step_id)
    select = _exact_select(names, numerics)
    describe = _describer(step_id)

    page_rows = PAGE_ROWS if limit is None else max(1, min(PAGE_ROWS, limit))

    def page_sql(after: int | None) -> str:
        where = f" WHERE {quote_ident(key)} > {int(after)}" if after is not None else ""
        return (f"SELECT {select}, {quote_ident(key)} AS {KEY_ALIAS} FROM {qualified(schema, table)}{where} "
                f"ORDER BY {quote_ident(key)} LIMIT {page_rows}")

    first = open_stream(url, page_sql(None), describe)
    fields = list(first.schema)
    out_schema = _cast_to(fields[:-1], numerics)
    with_key = pa.schema([*out_schema, fields[-1]])

    def read_page(after: int | None) -> Iterator[pa.RecordBatch]:
        reader = first if after is None else open_stream(url, page_sql(after), describe)
        for batch in guarded_batches(reader, describe):
            yield batch.cast(with_key) if numerics else batch

    return pa.RecordBatchReader.from_batches(
        out_schema, keyset_pages(read_page, out_schema, limit=limit, page_rows=page_rows, name=f"osiris-{step_id}"))
