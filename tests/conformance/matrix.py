"""The type matrix every connector round trips: each Arrow type a pipeline carries, at its edges, with NULLs."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from typing import Any

import pyarrow as pa

from osiris_drivers.sql.source_types import SourceType, with_source
from tests.conformance.connectors import Connector

UTC = dt.UTC
TEXT = 'héllo ✓ 日本 "q" \\ ,;\ttab'
COLUMNS: dict[str, pa.Array] = {
    "id": pa.array([1, 2, 3], pa.int64()),
    "i8": pa.array([-128, 127, None], pa.int8()),
    "i16": pa.array([-32768, 32767, None], pa.int16()),
    "i32": pa.array([-2**31, 2**31 - 1, None], pa.int32()),
    "i64": pa.array([-2**63, 2**63 - 1, None], pa.int64()),
    "u8": pa.array([0, 255, None], pa.uint8()),
    "u16": pa.array([0, 65535, None], pa.uint16()),
    "u32": pa.array([0, 2**32 - 1, None], pa.uint32()),
    "u64": pa.array([0, 2**64 - 1, None], pa.uint64()),
    "f32": pa.array([1.5, -0.25, None], pa.float32()),
    "f64": pa.array([1e300, -2.5, None], pa.float64()),
    "dec": pa.array([Decimal("1234567890123456789012345678.0123456789"), Decimal("-0.0000000001"), None],
                    pa.decimal128(38, 10)),
    "s": pa.array([TEXT, "", None], pa.string()),
    "b": pa.array([True, False, None], pa.bool_()),
    "d": pa.array([dt.date(2024, 2, 29), dt.date(1970, 1, 1), None], pa.date32()),
    "t": pa.array([dt.time(12, 34, 56, 123456), dt.time(0, 0), None], pa.time64("us")),
    "ts": pa.array([dt.datetime(2024, 1, 2, 3, 4, 5, 123456), dt.datetime(1999, 12, 31, 23, 59, 59, 999999), None],
                   pa.timestamp("us")),
    "tsz": pa.array([dt.datetime(2024, 1, 2, 3, 4, 5, 123456, tzinfo=UTC),
                     dt.datetime(2038, 6, 1, 0, 0, 0, 1, tzinfo=UTC), None], pa.timestamp("us", tz="UTC")),
    "bin": pa.array([b"\x00\xff\\,\"\n", b"", None], pa.binary()),
    "lst": pa.array([["a", "b"], [], None], pa.list_(pa.string())),
    "st": pa.array([{"x": 1, "y": "é"}, {"x": None, "y": ""}, None],
                   pa.struct([("x", pa.int64()), ("y", pa.string())])),
}
JSON_FIELD = with_source(pa.field("js", pa.string()), SourceType("postgresql", "jsonb"))
"""JSON as the extractors deliver it: text whose field says jsonb (`source_types`)."""
JSON_VALUES = pa.array(['{"a": [1, "é", null], "b": {"c": true}}', "[]", None], pa.string())


def matrix_for(connector: Connector) -> pa.Table:
    """The matrix without the columns the connector does not round trip."""
    table = pa.table({name: values for name, values in COLUMNS.items() if name not in connector.lacks})
    return table if "js" in connector.lacks else table.append_column(JSON_FIELD, JSON_VALUES)


def expected(connector: Connector, name: str, value: Any) -> Any:
    """A matrix value as the connector reads it back (the documented conversions only)."""
    if value is None:
        return None
    if name == "js":
        return json.loads(value)
    if name == "tsz" and connector.zoned_as_utc:
        return value.astimezone(UTC).replace(tzinfo=None)
    return value


def comparable(connector: Connector, name: str, value: Any) -> Any:
    """A value read back, in the form `expected` gives."""
    if value is None:
        return None
    if name == "js" or (name in ("lst", "st") and connector.lists_as_json and isinstance(value, str)):
        return json.loads(value)
    if isinstance(value, Decimal) and name.startswith("u"):
        return int(value)
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        return value.astimezone(UTC)
    if isinstance(value, memoryview):
        return bytes(value)
    return value
