"""Config types shared by the CSV components: encodings, one-character options and declared column types."""

from __future__ import annotations

import codecs
import re
from typing import Annotated

import pyarrow as pa
from pydantic import AfterValidator, Field


def _known_encoding(value: str) -> str:
    try:
        codecs.lookup(value)
    except LookupError:
        raise ValueError(f"unknown encoding {value!r}") from None
    return value


Encoding = Annotated[str, AfterValidator(_known_encoding)]
"""A text encoding Python knows (utf-8, latin-1, cp1252, utf-16, …)."""
OneChar = Annotated[str, Field(min_length=1, max_length=1)]


SIMPLE_TYPES: dict[str, pa.DataType] = {
    "string": pa.string(), "bool": pa.bool_(),
    "int8": pa.int8(), "int16": pa.int16(), "int32": pa.int32(), "int64": pa.int64(),
    "uint8": pa.uint8(), "uint16": pa.uint16(), "uint32": pa.uint32(), "uint64": pa.uint64(),
    "float32": pa.float32(), "float64": pa.float64(),
    "date": pa.date32(), "time": pa.time64("us"),
    "timestamp": pa.timestamp("us"), "timestamptz": pa.timestamp("us", tz="UTC"),
}
"""The column types a CSV column can be declared as (besides `decimal(p,s)`)."""
DECIMAL = re.compile(r"^decimal\(\s*(\d+)\s*,\s*(\d+)\s*\)$")
MAX_DECIMAL_PRECISION = 38
"""Arrow's CSV reader converts to decimal128 only."""


def arrow_type(name: str) -> pa.DataType:
    """The Arrow type of a declared column type: `int64`, `decimal(12,2)`, `timestamptz`, … (see SIMPLE_TYPES)."""
    if name in SIMPLE_TYPES:
        return SIMPLE_TYPES[name]
    match = DECIMAL.match(name)
    if not match:
        raise ValueError(f"unknown column type {name!r}: use one of {', '.join(SIMPLE_TYPES)} or decimal(p,s)")
    precision, scale = int(match[1]), int(match[2])
    if not 1 <= precision <= MAX_DECIMAL_PRECISION or scale > precision:
        raise ValueError(f"{name}: precision must be 1 to {MAX_DECIMAL_PRECISION} and scale at most the precision")
    return pa.decimal128(precision, scale)


def _column_type(value: str) -> str:
    arrow_type(value)
    return value


ColumnType = Annotated[str, AfterValidator(_column_type)]
"""A declared CSV column type (checked when the config is validated: at compile time too)."""
