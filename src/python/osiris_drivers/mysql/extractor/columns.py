"""How MySQL result columns travel through ConnectorX exactly.

ConnectorX decides most Arrow types itself (BIGINT UNSIGNED → uint64, DATE → date32, DATETIME(n) → timestamp[us],
TIME → time64[us], JSON/TEXT → string, BLOB/BINARY/BIT → large_binary, YEAR → int16). It gets three wrong, which
`result_column` corrects from the result set's column metadata:

- DECIMAL(p,s) arrives as decimal128(38,10): cast to decimal128(p,s) (decimal256 past 38 digits). Columns wider
  than ConnectorX's 28 digits or 10 decimals are fetched as text (`CAST(c AS CHAR)`) and parsed exactly, so no
  digit is rounded away.
- TINYINT(1) / BOOLEAN arrives as int8: becomes bool; a value other than 0, 1 or NULL is refused (it would become
  true, and 1 when written back: `CAST(c AS SIGNED)` in a query reads it as a number).
- TIMESTAMP arrives as naive: the session runs in UTC, so it becomes timestamp[us, tz=UTC].
"""

from __future__ import annotations

import re
from typing import Any

import pyarrow as pa

from osiris_drivers.sql.connectorx import decimal_is_exact
from osiris_drivers.sql.extractor import ResultColumn
from osiris_drivers.sql.source_types import SourceType

# pymysql.constants.FIELD_TYPE, spelled out so this module does not import pymysql.
DECIMAL, TINY, TIMESTAMP, NEWDECIMAL = 0, 1, 7, 246
UNSIGNED_FLAG = 32
MAX_DECIMAL128_DIGITS = 38


def decimal_type(precision: int, scale: int) -> pa.DataType:
    if precision <= MAX_DECIMAL128_DIGITS:
        return pa.decimal128(precision, scale)
    return pa.decimal256(precision, scale)


def result_column(field: Any) -> ResultColumn:
    """A pymysql field descriptor → how its column travels (with its described type, `described`)."""
    column = _travel(field)
    return ResultColumn(column.name, column.target, column.as_text, described(field))


def _travel(field: Any) -> ResultColumn:
    name, type_code, length, scale = str(field.name), int(field.type_code), int(field.length), int(field.scale)
    if type_code in (DECIMAL, NEWDECIMAL):
        # DECIMAL(p,s) reports a display length of p, plus one for the point (s > 0) and one for a sign.
        unsigned = bool(int(field.flags) & UNSIGNED_FLAG)
        precision = max(length - (1 if scale > 0 else 0) - (0 if unsigned else 1), scale, 1)
        return ResultColumn(name, decimal_type(precision, scale), as_text=not decimal_is_exact(precision, scale))
    if type_code == TINY and length == 1:  # TINYINT(1), which is what BOOLEAN and BOOL are
        return ResultColumn(name, pa.bool_())
    if type_code == TIMESTAMP:
        return ResultColumn(name, pa.timestamp("us", tz="UTC"))
    return ResultColumn(name)


DECLARED_SQL = (
    "SELECT c.COLUMN_NAME, c.DATA_TYPE, c.COLUMN_TYPE, c.IS_NULLABLE, c.CHARACTER_MAXIMUM_LENGTH, "
    "c.NUMERIC_PRECISION, c.NUMERIC_SCALE, c.DATETIME_PRECISION, EXISTS (SELECT 1 FROM "
    "information_schema.CHECK_CONSTRAINTS k WHERE k.CONSTRAINT_SCHEMA = %(schema)s AND k.TABLE_NAME = %(table)s "
    "AND k.CHECK_CLAUSE = CONCAT('json_valid(`', REPLACE(c.COLUMN_NAME, '`', '``'), '`)')) "
    "FROM information_schema.COLUMNS c WHERE c.TABLE_SCHEMA = %(schema)s AND c.TABLE_NAME = %(table)s "
    "ORDER BY c.ORDINAL_POSITION")
"""Each column's declared type; a MariaDB JSON column is LONGTEXT with a json_valid check. Every information_schema
table is filtered by constants: MariaDB then opens only this table's definition (a check matched on `c.TABLE_NAME`
read every table's constraints, per column: 35-70 ms with 300 tables on the server, growing with their number)."""
_LABEL = re.compile(r"'((?:[^']|'')*)'")
_SIZED = ("char", "varchar", "binary", "varbinary", "bit")


def declared(row: tuple[Any, ...]) -> SourceType:
    """A DECLARED_SQL row → the column's SourceType."""
    _, data_type, column_type, is_nullable, length, precision, scale, fraction, is_json = row
    base, full = str(data_type).lower(), str(column_type).lower()
    if is_json and base == "longtext":
        base = "json"
    values: tuple[str, ...] = ()
    if base in ("enum", "set"):
        inside = str(column_type)[len(base) + 1:-1]
        values = tuple(m.replace("''", "'").replace("\\\\", "\\") for m in _LABEL.findall(inside))
    size = None
    if base in _SIZED:
        size = int(length) if length is not None and base != "bit" else int(precision or 1)
    elif base == "tinyint" and full.startswith("tinyint(1)"):
        size = 1
    return SourceType(
        family="mysql", type=base, nullable=str(is_nullable).upper() == "YES", length=size,
        precision=(int(precision) if base == "decimal" and precision is not None else
                   int(fraction) if base in ("time", "datetime", "timestamp") and fraction is not None else None),
        scale=int(scale) if base == "decimal" and scale is not None else None,
        unsigned="unsigned" in full, values=values)


# The result set's own description of a query's columns (pymysql.constants.FIELD_TYPE / FLAG, spelled out).
_NAMED = {2: "smallint", 9: "mediumint", 3: "int", 8: "bigint", 4: "float", 5: "double", 10: "date", 14: "date",
          13: "year", 7: "timestamp", 12: "datetime", 11: "time", 16: "bit", 245: "json"}
_FRACTIONAL_CODES = frozenset({7, 11, 12})
_BLOBS = frozenset({249, 250, 251, 252})
_VARYING, _FIXED = frozenset({15, 253}), frozenset({247, 254})
BINARY_CHARSET = 63
NOT_NULL_FLAG, ENUM_FLAG, SET_FLAG = 1, 256, 2048
_MAX_BYTES_PER_CHAR = {"utf8mb4": 4, "utf8mb3": 3, "utf8": 3, "utf16": 4, "utf32": 4, "ucs2": 2}
_SIZES = ((255, "tiny"), (65_535, ""), (16_777_215, "medium"))


def _sized_blob(chars: int, kind: str) -> str:
    return next((f"{prefix}{kind}" for limit, prefix in _SIZES if chars <= limit), f"long{kind}")


def described(field: Any) -> SourceType | None:
    """A query column's type as the result set describes it (no enum labels; MariaDB's JSON reads as LONGTEXT)."""
    code, flags, length, scale = int(field.type_code), int(field.flags), int(field.length), int(field.scale)
    unsigned, binary = bool(flags & UNSIGNED_FLAG), int(field.charsetnr) == BINARY_CHARSET
    size: int | None = None
    precision: int | None = None
    decimals: int | None = None
    if code == TINY:
        base, size = "tinyint", (1 if length == 1 else None)
    elif code in (DECIMAL, NEWDECIMAL):
        base, decimals = "decimal", scale
        precision = max(length - (1 if scale > 0 else 0) - (0 if unsigned else 1), scale, 1)
    elif code in _NAMED:
        base = _NAMED[code]
        precision = scale if code in _FRACTIONAL_CODES else None
        size = length if code == 16 else None
    else:
        per_char = 1 if binary else _bytes_per_char(int(field.charsetnr))
        if per_char is None:
            return None
        chars = length // per_char
        if flags & ENUM_FLAG:
            base = "enum"
        elif flags & SET_FLAG:
            base = "set"
        elif code in _BLOBS:
            base = _sized_blob(chars, "blob" if binary else "text")
        elif code in _VARYING:
            base, size = ("varbinary" if binary else "varchar"), chars
        elif code in _FIXED:
            base, size = ("binary" if binary else "char"), chars
        else:
            return None
    return SourceType(family="mysql", type=base, nullable=not flags & NOT_NULL_FLAG, length=size,
                      precision=precision, scale=decimals, unsigned=unsigned)


def _bytes_per_char(charset_id: int) -> int | None:
    from pymysql.charset import charset_by_id

    try:
        name = str(getattr(charset_by_id(charset_id), "name", ""))  # the stubs omit Charset.name
    except KeyError:
        return None
    return _MAX_BYTES_PER_CHAR.get(name, 1)
