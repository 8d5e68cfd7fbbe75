"""Streaming a PostgreSQL query into Arrow record batches with ConnectorX, with exact NUMERIC types."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pyarrow as pa

from osiris_core.errors import DriverError
from osiris_drivers.connectorx_reader import guarded_batches, open_stream
from osiris_drivers.postgres.connection import driver_error, normalized_dsn, pg_connection
from osiris_drivers.postgres.sql import qualified, quote_ident

NUMERIC_OID = 1700
MAX_DECIMAL128_PRECISION = 38


def table_query(schema: str, table: str, columns: list[str] | None, limit: int | None) -> str:
    cols = ", ".join(quote_ident(c) for c in columns) if columns else "*"
    return f"SELECT {cols} FROM {qualified(schema, table)}" + (f" LIMIT {int(limit)}" if limit is not None else "")


CONNECTORX_EXACT_PRECISION = 28
CONNECTORX_EXACT_SCALE = 10
"""ConnectorX decodes NUMERIC as decimal128(38,10) through a 28-digit decimal: beyond these it rounds or panics."""


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
        if not precision or precision > MAX_DECIMAL128_PRECISION:
            numerics.append(_Numeric(column.name, pa.string(), as_text=True))  # unconstrained: exact as text
        else:
            exact = precision <= CONNECTORX_EXACT_PRECISION and scale <= CONNECTORX_EXACT_SCALE
            numerics.append(_Numeric(column.name, pa.decimal128(precision, scale), as_text=not exact))
    return [c.name for c in description], numerics


def stream_query(dsn: str, query: str, step_id: str) -> pa.RecordBatchReader:
    """The query's rows as a stream of record batches (bounded memory), NUMERIC values exact."""
    query = query.strip().rstrip(";")
    names, numerics = _numeric_columns(dsn, query, step_id)
    as_text = {n.name for n in numerics if n.as_text}
    if as_text:
        selected = ", ".join(f"{quote_ident(n)}::text AS {quote_ident(n)}" if n in as_text else quote_ident(n)
                             for n in names)
        query = f"SELECT {selected} FROM ({query}) AS osiris_exact"
    def describe(exc: BaseException, panic: bool) -> DriverError:
        if panic:
            return DriverError(f"a value has no Arrow form: {' '.join(str(exc).split())}", step_id=step_id,
                               hint="CAST such columns to text in the query")
        return DriverError(f"query failed: {' '.join(str(exc).split())}", step_id=step_id,
                           hint="check the query and the connection")

    reader = open_stream(normalized_dsn(dsn), query, describe)
    targets = {n.name: n.target for n in numerics}
    schema = pa.schema([pa.field(f.name, targets.get(f.name, f.type)) for f in reader.schema])

    def batches() -> Iterator[pa.RecordBatch]:
        for batch in guarded_batches(reader, describe):
            yield batch.cast(schema) if targets else batch

    return pa.RecordBatchReader.from_batches(schema, batches())
