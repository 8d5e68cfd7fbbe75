"""Streaming a PostgreSQL query into Arrow record batches with ConnectorX, with exact NUMERIC types."""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa

from osiris_core.errors import DriverError
from osiris_drivers.postgres.connection import driver_error, pg_connection
from osiris_drivers.postgres.sql import qualified, quote_ident

NUMERIC_OID = 1700
MAX_DECIMAL128_PRECISION = 38


def table_query(schema: str, table: str, columns: list[str] | None, limit: int | None) -> str:
    cols = ", ".join(quote_ident(c) for c in columns) if columns else "*"
    return f"SELECT {cols} FROM {qualified(schema, table)}" + (f" LIMIT {int(limit)}" if limit is not None else "")


def _declared_decimals(dsn: str, query: str, step_id: str) -> dict[str, pa.DataType]:
    """NUMERIC(p,s) columns of the query's result, from the server's own description."""
    import psycopg2

    try:
        with pg_connection(dsn) as connection, connection.cursor() as cursor:
            cursor.execute(f"SELECT * FROM ({query}) AS osiris_probe LIMIT 0")
            description = cursor.description or ()
    except psycopg2.Error as exc:
        raise driver_error(exc, step_id=step_id, doing="running the query") from None
    decimals: dict[str, pa.DataType] = {}
    for column in description:
        if column.type_code == NUMERIC_OID and column.precision and column.precision <= MAX_DECIMAL128_PRECISION:
            decimals[column.name] = pa.decimal128(column.precision, column.scale or 0)
    return decimals


def stream_query(dsn: str, query: str, step_id: str) -> pa.RecordBatchReader:
    """The query's rows as a stream of record batches (bounded memory)."""
    import connectorx

    query = query.strip().rstrip(";")
    decimals = _declared_decimals(dsn, query, step_id)
    try:
        reader = connectorx.read_sql(dsn, query, return_type="arrow_stream")
    except Exception as exc:  # ConnectorX raises plain RuntimeErrors
        raise DriverError(f"query failed: {' '.join(str(exc).split())}", step_id=step_id,
                          hint="check the query and the connection") from None
    schema = pa.schema([pa.field(f.name, decimals.get(f.name, f.type)) for f in reader.schema])

    def batches() -> Iterator[pa.RecordBatch]:
        for batch in reader:
            yield batch.cast(schema) if decimals else batch

    return pa.RecordBatchReader.from_batches(schema, batches())
