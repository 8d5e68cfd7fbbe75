"""How MySQL result columns travel through ConnectorX exactly.

ConnectorX decides most Arrow types itself (BIGINT UNSIGNED → uint64, DATE → date32, DATETIME(n) → timestamp[us],
TIME → time64[us], JSON/TEXT → string, BLOB/BINARY/BIT → large_binary, YEAR → int16). It gets three wrong, which
`result_column` corrects from the result set's column metadata:

- DECIMAL(p,s) arrives as decimal128(38,10): cast to decimal128(p,s) (decimal256 past 38 digits). Columns wider
  than ConnectorX's 28 digits or 10 decimals are fetched as text (`CAST(c AS CHAR)`) and parsed exactly, so no
  digit is rounded away.
- TINYINT(1) / BOOLEAN arrives as int8: becomes bool (non-zero → true), as MySQL Connector/J does.
- TIMESTAMP arrives as naive: the session runs in UTC, so it becomes timestamp[us, tz=UTC].
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from osiris_drivers.sql.connectorx import decimal_is_exact
from osiris_drivers.sql.extractor import ResultColumn

# pymysql.constants.FIELD_TYPE, spelled out so this module does not import pymysql.
DECIMAL, TINY, TIMESTAMP, NEWDECIMAL = 0, 1, 7, 246
UNSIGNED_FLAG = 32
MAX_DECIMAL128_DIGITS = 38


def decimal_type(precision: int, scale: int) -> pa.DataType:
    if precision <= MAX_DECIMAL128_DIGITS:
        return pa.decimal128(precision, scale)
    return pa.decimal256(precision, scale)


def result_column(field: Any) -> ResultColumn:
    """A pymysql field descriptor → how its column travels."""
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
