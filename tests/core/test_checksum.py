"""`osiris_core.checksum`: every Arrow type checksums (no crash), the checksum tells values apart, and it does not
depend on how the rows were split into batches."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

import pyarrow as pa
import pytest

from osiris_core.checksum import SLICE_ROWS, DataChecksum, table_checksum

ROWS: dict[str, tuple[pa.DataType, list[object], list[object]]] = {
    # name: (type, values, the same values with one changed)
    "binary": (pa.binary(), [b"\xff\x00", None, b""], [b"\xff\x01", None, b""]),
    "large_binary": (pa.large_binary(), [b"\xff", None, b""], [b"\xfe", None, b""]),
    "fixed_size_binary": (pa.binary(2), [b"\xff\x00", None, b"ab"], [b"\xff\x00", None, b"ac"]),
    "binary_view": (pa.binary_view(), [b"\x80", None, b""], [b"\x81", None, b""]),
    "string_view": (pa.string_view(), ["a", None, ""], ["a", "", ""]),
    "large_string": (pa.large_string(), ["a", None, ""], ["a", "", None]),
    "decimal128": (pa.decimal128(12, 2), [Decimal("1.50"), None, Decimal("-0.01")],
                   [Decimal("1.51"), None, Decimal("-0.01")]),
    "decimal256": (pa.decimal256(60, 2), [Decimal("1.50"), None, Decimal("0")], [Decimal("1.50"), None, Decimal("1")]),
    "float16": (pa.float16(), [1.5, None, 0.0], [1.5, None, 2.0]),
    "list": (pa.list_(pa.int64()), [[1, 2], None, []], [[1, 2], [], []]),
    "large_list": (pa.large_list(pa.binary()), [[b"\xff"], None, []], [[b"\xfe"], None, []]),
    "list_view": (pa.list_view(pa.int32()), [[1], None, []], [[2], None, []]),
    "struct": (pa.struct([("b", pa.binary()), ("d", pa.decimal128(5, 1)), ("t", pa.timestamp("us", "UTC"))]),
               [{"b": b"\x00", "d": Decimal("1.5"), "t": dt.datetime(2024, 1, 1, tzinfo=dt.UTC)}, None,
                {"b": None, "d": None, "t": None}],
               [{"b": b"\x01", "d": Decimal("1.5"), "t": dt.datetime(2024, 1, 1, tzinfo=dt.UTC)}, None,
                {"b": None, "d": None, "t": None}]),
    "map": (pa.map_(pa.string(), pa.int64()), [[("k", 1)], None, []], [[("k", 2)], None, []]),
    "interval": (pa.month_day_nano_interval(), [pa.MonthDayNano([1, 2, 3]), None, pa.MonthDayNano([0, 0, 0])],
                 [pa.MonthDayNano([1, 2, 4]), None, pa.MonthDayNano([0, 0, 0])]),
    "duration": (pa.duration("ms"), [dt.timedelta(seconds=1), None, dt.timedelta(0)],
                 [dt.timedelta(seconds=2), None, dt.timedelta(0)]),
    "time64": (pa.time64("ns"), [dt.time(1, 2, 3), None, dt.time(0)], [dt.time(1, 2, 4), None, dt.time(0)]),
    "timestamptz": (pa.timestamp("us", "Europe/Rome"), [dt.datetime(2024, 1, 1, tzinfo=dt.UTC), None,
                                                       dt.datetime(1970, 1, 1, tzinfo=dt.UTC)],
                    [dt.datetime(2024, 1, 2, tzinfo=dt.UTC), None, dt.datetime(1970, 1, 1, tzinfo=dt.UTC)]),
    "null": (pa.null(), [None, None, None], [None, None]),
}


def _column(data_type: pa.DataType, values: list[object]) -> pa.Array:
    return pa.array(values, data_type)


def _extra_columns() -> dict[str, tuple[pa.Array, pa.Array]]:
    """Types built from arrays rather than Python values: dictionaries, run-end encoded, unions, extensions."""
    first, second = uuid.UUID(int=1).bytes, uuid.UUID(int=2).bytes
    return {
        "dictionary_of_binary": (pa.array([b"\xff", None, b"\xff"]).dictionary_encode(),
                                 pa.array([b"\xff", None, b"\xfe"]).dictionary_encode()),
        "dictionary_of_string": (pa.array(["a", None, "a"]).dictionary_encode(),
                                 pa.array(["a", None, "b"]).dictionary_encode()),
        "run_end_encoded": (pa.RunEndEncodedArray.from_arrays([2, 3], pa.array([1, 2], pa.int64())),
                            pa.RunEndEncodedArray.from_arrays([1, 3], pa.array([1, 2], pa.int64()))),
        "dense_union": (pa.UnionArray.from_dense(pa.array([0, 1, 0], pa.int8()), pa.array([0, 0, 1], pa.int32()),
                                                 [pa.array([1, 2]), pa.array([b"\xff"])]),
                        pa.UnionArray.from_dense(pa.array([0, 1, 0], pa.int8()), pa.array([0, 0, 1], pa.int32()),
                                                 [pa.array([1, 3]), pa.array([b"\xff"])])),
        "uuid_extension": (pa.ExtensionArray.from_storage(pa.uuid(), pa.array([first, None, first], pa.binary(16))),
                           pa.ExtensionArray.from_storage(pa.uuid(), pa.array([first, None, second], pa.binary(16)))),
    }


def _cases() -> dict[str, tuple[pa.Array, pa.Array | None]]:
    cases: dict[str, tuple[pa.Array, pa.Array | None]] = {
        name: (_column(t, a), _column(t, b) if len(b) == len(a) else None) for name, (t, a, b) in ROWS.items()}
    cases.update(_extra_columns())
    return cases


@pytest.mark.parametrize("name", sorted(_cases()))
def test_every_arrow_type_checksums_and_a_changed_value_changes_it(name: str) -> None:
    values, changed = _cases()[name]
    digest = table_checksum(pa.table({"c": values, "i": pa.array(range(len(values)))}))
    assert len(digest) == 64
    if changed is not None:
        assert table_checksum(pa.table({"c": changed, "i": pa.array(range(len(changed)))})) != digest


def test_all_types_in_one_table_do_not_depend_on_batch_boundaries() -> None:
    columns = {name: values for name, (values, _) in _cases().items()}
    table = pa.table(columns)
    whole = table_checksum(table)
    for size in (1, 2):
        checksum = DataChecksum(table.schema)
        for batch in table.to_batches(max_chunksize=size):
            checksum.update(batch)
        assert checksum.hexdigest() == whole


def test_slices_across_many_batches_give_the_one_checksum() -> None:
    rows = SLICE_ROWS + 123
    table = pa.table({"b": pa.array([i.to_bytes(4, "big") for i in range(rows)], pa.binary()),
                      "l": pa.array([[i] for i in range(rows)], pa.list_(pa.int64()))})
    checksum = DataChecksum(table.schema)
    for batch in table.to_batches(max_chunksize=1000):
        checksum.update(batch)
    assert checksum.hexdigest() == table_checksum(table)


def test_the_type_is_part_of_the_checksum() -> None:
    """Binary rendered as hex never collides with a string column holding that hex."""
    as_binary = pa.table({"c": pa.array([b"\xff"], pa.binary())})
    as_text = pa.table({"c": pa.array(["ff"], pa.string())})
    assert table_checksum(as_binary) != table_checksum(as_text)


def test_empty_string_and_null_differ_in_every_text_rendering() -> None:
    for data_type in (pa.string(), pa.binary(), pa.list_(pa.string())):
        empty = [[""]] if pa.types.is_list(data_type) else [b"" if data_type == pa.binary() else ""]
        assert table_checksum(pa.table({"c": pa.array(empty, data_type)})) != \
            table_checksum(pa.table({"c": pa.array([None], data_type)}))
