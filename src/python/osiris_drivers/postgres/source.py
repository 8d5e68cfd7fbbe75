"""Reading PostgreSQL through the shared SQL extractor: the psycopg2 probe, the integer-key lookup and the ConnectorX
stream (used by `postgres.extractor`, and by `supabase.extractor` with pg_dsn). Each column that is a table's
column carries its declared type (`DECLARED_SQL`); types ConnectorX cannot read are read as text
(`TEXT_READ_OIDS`).

NUMERIC columns keep their precision and scale: ConnectorX carries decimal128(38,10), so wider or unconstrained
columns are read as exact text (an unconstrained or over-wide one stays text).
"""

from __future__ import annotations

from dataclasses import replace
from functools import partial
from typing import Any

import pyarrow as pa

from osiris_core.errors import DriverError
from osiris_drivers.connection import ConnectionSettings
from osiris_drivers.postgres.connection import TlsUnsupported, connectorx_url, pg_connection
from osiris_drivers.postgres.dialect import POSTGRES
from osiris_drivers.sql.connectorx import decimal_is_exact, open_stream
from osiris_drivers.sql.dialect import TableName
from osiris_drivers.sql.extractor import Cancel, ResultColumn, SqlSource
from osiris_drivers.sql.source_types import SourceType

NUMERIC_OID = 1700
TEXT_READ_OIDS = frozenset({
    114,  # json: keeps its text as written (ConnectorX would re-serialise it)
    1186, 650, 829, 774, 790, 142, 1266, 1560, 1562,  # interval cidr macaddr macaddr8 money xml timetz bit varbit
    600, 601, 602, 603, 604, 628, 718, 3614, 3615,  # point lseg path box polygon line circle tsvector tsquery
    # arrays of: date bytea jsonb json uuid timestamptz timestamp time interval inet cidr timetz macaddr xml money
    1182, 1001, 3807, 199, 2951, 1185, 1115, 1183, 1187, 1041, 651, 1270, 1040, 143, 791,
    1561, 1563, 1014,  # arrays of: bit varbit char(n)
})
"""Types ConnectorX cannot read (or, for json and bit, not as written): read as their exact text, which their
declared type takes back (`source_types`); an array then travels as its PostgreSQL literal (`{a,b}`). So does
any array of more than one dimension."""
MAX_DECIMAL128_PRECISION = 38
INTEGER_TYPES = frozenset({"smallint", "integer", "bigint"})
DECLARED_SQL = """
SELECT c.n, a.attnotnull, CASE WHEN t.oid <> e.oid THEN greatest(a.attndims, 1) ELSE 0 END, e.typtype = 'e',
       format_type(e.oid, NULL),
       information_schema._pg_char_max_length(e.oid, a.atttypmod),
       information_schema._pg_numeric_precision(e.oid, a.atttypmod),
       information_schema._pg_numeric_scale(e.oid, a.atttypmod),
       CASE WHEN a.atttypmod >= 0 THEN information_schema._pg_datetime_precision(e.oid, a.atttypmod) END,
       CASE WHEN e.typtype = 'e' THEN (SELECT array_agg(enumlabel::text ORDER BY enumsortorder) FROM pg_enum
                                      WHERE enumtypid = e.oid) END
FROM unnest(%s::int[], %s::oid[], %s::int[]) AS c(n, rel, att)
JOIN pg_attribute a ON a.attrelid = c.rel AND a.attnum = c.att AND NOT a.attisdropped
JOIN pg_type t ON t.oid = a.atttypid
JOIN pg_type e ON e.oid = CASE WHEN t.typcategory = 'A' AND t.typelem <> 0 THEN t.typelem ELSE t.oid END
"""
"""The declared type of each result column that is a table's column (psycopg2 reports its table and number)."""


class PostgresSource(SqlSource):
    dialect = POSTGRES
    WHOLE_PAGES = False
    """ConnectorX 0.4's whole read types smallint/integer/real as int16/int32/float where its stream (what the
    extractor has always given) widens them to int64/double."""

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
                traced = [(n, c.table_oid, c.table_column) for n, c in enumerate(description)
                          if c.table_oid and c.table_column]
                declared: dict[int, SourceType] = {}
                if traced:
                    cursor.execute(DECLARED_SQL, tuple(list(x) for x in zip(*traced, strict=True)))
                    declared = {int(row[0]): _declared(row) for row in cursor.fetchall()}
        except Exception as exc:
            raise self.settings.failure(exc, step_id=self.step_id, role="read") from None
        columns = [replace(_result_column(c.name, c.type_code, c.precision, c.scale), source=declared.get(n))
                   for n, c in enumerate(description)]
        return [replace(c, target=pa.string(), as_text=True) if c.source is not None and c.source.array > 1 else c
                for c in columns]

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

    def open(self, sql: str, *, whole: bool = False) -> pa.RecordBatchReader:
        return open_stream(self._url, sql, self.stream_failure, whole=whole)

    def canceller(self, marker: str) -> Cancel | None:
        return partial(cancel_marked, self._dsn, marker)


def cancel_marked(dsn: str, marker: str) -> None:
    """Cancel the other backends' running statements whose text contains `marker` (ConnectorX runs a stream as
    `COPY (<query>) TO STDOUT`, the marker comment inside)."""
    with pg_connection(dsn) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE pid <> pg_backend_pid() "
                       "AND state = 'active' AND position(%s in query) > 0", (marker,))


_FRACTIONAL = ("time", "timestamp", "interval")


def _declared(row: tuple[Any, ...]) -> SourceType:
    """A DECLARED_SQL row → the column's SourceType (array types by their element)."""
    _, not_null, dims, is_enum, base, length, precision, scale, fraction, labels = row
    base = str(base)
    numeric = base == "numeric"
    return SourceType(
        family="postgresql", type="enum" if is_enum else base, nullable=not not_null,
        length=int(length) if length is not None else None,
        precision=int(precision) if numeric and precision is not None else (
            int(fraction) if base.startswith(_FRACTIONAL) and fraction is not None else None),
        scale=int(scale) if numeric and scale is not None else None,
        values=tuple(str(v) for v in labels or ()), array=int(dims))


def _result_column(name: str, type_code: int, precision: int | None, scale: int | None) -> ResultColumn:
    if type_code in TEXT_READ_OIDS:
        return ResultColumn(name, pa.string(), as_text=True)
    if type_code != NUMERIC_OID:
        return ResultColumn(name)
    scale = scale or 0
    if not precision or precision > MAX_DECIMAL128_PRECISION or not 0 <= scale <= precision:
        # Unconstrained, wider than decimal128, or a negative scale (PostgreSQL 15): exact as text.
        return ResultColumn(name, pa.string(), as_text=True)
    return ResultColumn(name, pa.decimal128(precision, scale), as_text=not decimal_is_exact(precision, scale))
