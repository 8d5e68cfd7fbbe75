"""Arrow ↔ MySQL types.

Reading: ConnectorX decides most Arrow types itself (BIGINT UNSIGNED → uint64, DATE → date32, DATETIME(n) →
timestamp[us], TIME → time64[us], JSON/TEXT → string, BLOB/BINARY/BIT → large_binary, YEAR → int16). It gets
three wrong, which `arrow_type` corrects from the result set's column metadata:

- DECIMAL(p,s) arrives as decimal128(38,10): cast to decimal128(p,s) (decimal256 past 38 digits). Columns
  wider than ConnectorX's 28 digits or 10 decimals are fetched as text (`CAST(c AS CHAR)`) and parsed
  exactly, so no digit is rounded away.
- TINYINT(1) / BOOLEAN arrives as int8: becomes bool (non-zero → true), as MySQL Connector/J does.
- TIMESTAMP arrives as naive: the session runs in UTC, so it becomes timestamp[us, tz=UTC].

Writing: `column_type` is the DDL for a column the writer creates, and `to_text` / `to_python` prepare
Arrow columns for `LOAD DATA` / `INSERT`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from osiris_core.arrow_values import python_safe
from osiris_drivers.connectorx_decimals import decimal_is_exact

# pymysql.constants.FIELD_TYPE, spelled out so this module does not import pymysql.
DECIMAL, TINY, TIMESTAMP, NEWDECIMAL = 0, 1, 7, 246
UNSIGNED_FLAG = 32
MAX_DECIMAL128_DIGITS = 38
MAX_MYSQL_DECIMAL = (65, 30)
KEY_TEXT = "VARCHAR(255)"
KEY_BINARY = "VARBINARY(255)"


class UnsupportedType(ValueError):
    """An Arrow type the MySQL writer has no column type for."""


@dataclass(frozen=True)
class ResultColumn:
    """One column of a result set as the server describes it (pymysql's field descriptor)."""

    name: str
    type_code: int
    length: int
    scale: int
    unsigned: bool

    @classmethod
    def from_field(cls, field: Any) -> ResultColumn:
        return cls(name=str(field.name), type_code=int(field.type_code), length=int(field.length),
                   scale=int(field.scale), unsigned=bool(int(field.flags) & UNSIGNED_FLAG))

    @property
    def is_decimal(self) -> bool:
        return self.type_code in (DECIMAL, NEWDECIMAL)

    @property
    def decimal_precision(self) -> int:
        """DECIMAL(p,s) reports a display length of p, plus one for the point (s > 0) and one for a sign."""
        digits = self.length - (1 if self.scale > 0 else 0) - (0 if self.unsigned else 1)
        return max(digits, self.scale, 1)

    @property
    def as_text(self) -> bool:
        """Whether the column must travel as text to keep every digit (see module docstring)."""
        return self.is_decimal and not decimal_is_exact(self.decimal_precision, self.scale)

    @property
    def is_boolean(self) -> bool:
        """TINYINT(1), which is what BOOLEAN and BOOL are."""
        return self.type_code == TINY and self.length == 1


def decimal_type(precision: int, scale: int) -> pa.DataType:
    if precision <= MAX_DECIMAL128_DIGITS:
        return pa.decimal128(precision, scale)
    return pa.decimal256(precision, scale)


def arrow_type(column: ResultColumn) -> pa.DataType | None:
    """The Arrow type the extractor casts this column to, or None to keep ConnectorX's."""
    if column.is_decimal:
        return decimal_type(column.decimal_precision, column.scale)
    if column.is_boolean:
        return pa.bool_()
    if column.type_code == TIMESTAMP:
        return pa.timestamp("us", tz="UTC")
    return None


def cast_column(values: pa.Array, target: pa.DataType) -> pa.Array:
    """ConnectorX's column → `target` (exact: a value that does not fit raises ArrowInvalid)."""
    if values.type == target:
        return values
    if pa.types.is_boolean(target) and pa.types.is_integer(values.type):
        result: pa.Array = pc.not_equal(values, 0)
        return result
    return values.cast(target)


# --------------------------------------------------------------------------------------------- writing


def _plain(arrow: pa.DataType) -> pa.DataType:
    return arrow.value_type if pa.types.is_dictionary(arrow) else arrow


def is_binary(arrow: pa.DataType) -> bool:
    arrow = _plain(arrow)
    return bool(pa.types.is_binary(arrow) or pa.types.is_large_binary(arrow) or pa.types.is_fixed_size_binary(arrow)
                or pa.types.is_binary_view(arrow))


def is_text(arrow: pa.DataType) -> bool:
    arrow = _plain(arrow)
    return bool(pa.types.is_string(arrow) or pa.types.is_large_string(arrow) or pa.types.is_string_view(arrow))


_INTEGERS = {
    pa.int8(): "TINYINT", pa.int16(): "SMALLINT", pa.int32(): "INT", pa.int64(): "BIGINT",
    pa.uint8(): "TINYINT UNSIGNED", pa.uint16(): "SMALLINT UNSIGNED", pa.uint32(): "INT UNSIGNED",
    pa.uint64(): "BIGINT UNSIGNED",
}


def column_type(arrow: pa.DataType, *, key: bool = False) -> str:
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


def check_writable(schema: pa.Schema) -> None:
    """Raise `UnsupportedType` naming the first column the writer cannot store."""
    for field in schema:
        try:
            column_type(field.type)
        except UnsupportedType as exc:
            raise UnsupportedType(f"column '{field.name}': {exc}") from None


def _normalised(values: pa.Array) -> pa.Array:
    """Dictionary decoded, time zones dropped (values are UTC, the session's zone), date64 as date32."""
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
    return values


def hex_encode(values: pa.Array) -> pa.Array:
    """Binary → lower-case hex text (for `UNHEX` in LOAD DATA), vectorised; nulls stay null."""
    data = values.cast(pa.large_binary()) if not pa.types.is_large_binary(values.type) else values
    validity, offsets_buffer, data_buffer = data.buffers()
    del validity
    offsets = pa.Array.from_buffers(pa.int64(), len(data) + 1, [None, offsets_buffer], offset=data.offset)
    first = offsets[0].as_py() if len(offsets) else 0
    last = offsets[-1].as_py() if len(offsets) else 0
    raw = data_buffer.slice(first, last - first).to_pybytes() if data_buffer is not None and last > first else b""
    new_offsets = pc.multiply(pc.subtract(offsets, first), 2)
    encoded = pa.Array.from_buffers(pa.large_string(), len(data),
                                    [None, new_offsets.buffers()[1], pa.py_buffer(raw.hex().encode("ascii"))])
    if data.null_count:
        encoded = pc.if_else(pc.is_valid(data), encoded, pa.scalar(None, pa.large_string()))
    return encoded


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
