"""Reading PostgreSQL through the shared SQL extractor: the psycopg2 probe, the integer-key lookup and the ConnectorX
stream (used by `postgres.extractor`, and by `supabase.extractor` with pg_dsn).

NUMERIC columns keep their precision and scale: ConnectorX carries decimal128(38,10), so wider or unconstrained
columns are read as exact text (an unconstrained or over-wide one stays text).
"""

from __future__ import annotations

import pyarrow as pa

from osiris_core.errors import DriverError
from osiris_drivers.connection import ConnectionSettings
from osiris_drivers.postgres.connection import TlsUnsupported, connectorx_url, pg_connection
from osiris_drivers.postgres.dialect import POSTGRES
from osiris_drivers.sql.connectorx import decimal_is_exact, open_stream
from osiris_drivers.sql.dialect import TableName
from osiris_drivers.sql.extractor import ResultColumn, SqlSource

NUMERIC_OID = 1700
MAX_DECIMAL128_PRECISION = 38
INTEGER_TYPES = frozenset({"smallint", "integer", "bigint"})


class PostgresSource(SqlSource):
    dialect = POSTGRES

    def __init__(self, step_id: str, settings: ConnectionSettings, *, dsn: str, where: str | None = None) -> None:
        super().__init__(step_id, settings, where=where)
        self._dsn = dsn
        self._url = ""

    def prepare(self) -> None:
        try:
            self._url = connectorx_url(self._dsn)
        except TlsUnsupported as exc:
            raise DriverError(str(exc), step_id=self.step_id,
                              hint="use sslmode verify-ca with sslrootcert (the CA is still verified) or require") \
                from None

    def describe(self, sql: str) -> list[ResultColumn]:
        try:
            with pg_connection(self._dsn) as connection, connection.cursor() as cursor:
                cursor.execute(f"SELECT * FROM ({sql}) AS osiris_probe LIMIT 0")
                description = cursor.description or ()
        except Exception as exc:
            raise self.settings.failure(exc, step_id=self.step_id, role="read") from None
        return [_result_column(c.name, c.type_code, c.precision, c.scale) for c in description]

    def integer_key(self, table: TableName) -> str | None:
        """Inheritance parents are read whole: their children share no key with them, pages could split equal
        keys."""
        qualified = POSTGRES.qualified(table)
        try:
            with pg_connection(self._dsn) as connection, connection.cursor() as cursor:
                cursor.execute(
                    "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_index i "
                    "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) "
                    "WHERE i.indrelid = to_regclass(%s) AND i.indisprimary", (qualified,))
                rows = cursor.fetchall()
                cursor.execute("SELECT count(*) FROM pg_inherits WHERE inhparent = to_regclass(%s)", (qualified,))
                children = cursor.fetchone()
        except Exception as exc:
            raise self.settings.failure(exc, step_id=self.step_id, role="read") from None
        if len(rows) == 1 and rows[0][1] in INTEGER_TYPES and not (children and children[0]):
            return str(rows[0][0])
        return None

    def open(self, sql: str) -> pa.RecordBatchReader:
        return open_stream(self._url, sql, self.stream_failure)


def _result_column(name: str, type_code: int, precision: int | None, scale: int | None) -> ResultColumn:
    if type_code != NUMERIC_OID:
        return ResultColumn(name)
    scale = scale or 0
    if not precision or precision > MAX_DECIMAL128_PRECISION or not 0 <= scale <= precision:
        # Unconstrained, wider than decimal128, or a negative scale (PostgreSQL 15): exact as text.
        return ResultColumn(name, pa.string(), as_text=True)
    return ResultColumn(name, pa.decimal128(precision, scale), as_text=not decimal_is_exact(precision, scale))
