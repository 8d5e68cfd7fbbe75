"""Binary COPY (`osiris_drivers.postgres.binary_copy`) stores exactly what the CSV path stores — decimals, µs
timestamps, NULL vs empty, unicode, bytes, float edge values, extreme integers and dates — and the writer falls
back to CSV for a column it cannot encode for its target type."""

from __future__ import annotations

import datetime as dt
import math
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from osiris_drivers.postgres.binary_copy import BinaryCopyStream, encoder_for, encoders_for
from osiris_drivers.postgres.copy import CsvCopyStream, copy_into
from osiris_drivers.postgres.writer.driver import PostgresWriter, PostgresWriterConfig
from osiris_drivers.sql.source_types import SourceType
from osiris_drivers.sql.type_map import target_type
from tests.support.databases import PostgresDatabase
from tests.support.runs import Recorder

UTC = dt.UTC
COLUMNS: list[tuple[str, pa.Array, str]] = [
    ("i16", pa.array([1, -32768, None, 32767, 0], pa.int16()), "smallint"),
    ("i32", pa.array([1, None, -2**31, 2**31 - 1, 0], pa.int32()), "integer"),
    ("i64", pa.array([None, -2**63, 2**63 - 1, 0, 7], pa.int64()), "bigint"),
    ("u32", pa.array([0, 2**32 - 1, None, 5, 1], pa.uint32()), "bigint"),
    ("f32", pa.array([1.5, None, float("inf"), -0.0, 3.25], pa.float32()), "real"),
    ("f64", pa.array([0.1, float("nan"), None, -1e308, 5e-324], pa.float64()), "double precision"),
    ("b", pa.array([True, False, None, True, False]), "boolean"),
    ("d", pa.array([Decimal("123456789012.34"), Decimal("-0.01"), None, Decimal("0.00"), Decimal("-999999999999.99")],
                   pa.decimal128(14, 2)), "numeric(14,2)"),
    ("d18", pa.array([Decimal("999999999999999999"), Decimal("-999999999999999999"), Decimal("0"), None,
                      Decimal("10000")], pa.decimal128(18, 0)), "numeric(18,0)"),
    ("d7", pa.array([Decimal("12345678901.1234567"), Decimal("-0.0000001"), None, Decimal("1"), Decimal("0.5")],
                    pa.decimal128(18, 7)), "numeric(18,7)"),
    ("frac", pa.array([Decimal("0.1234"), Decimal("-0.0001"), None, Decimal("0"), Decimal("0.9999")],
                      pa.decimal128(4, 4)), "numeric(4,4)"),
    ("s", pa.array(["héllo ☃ 𝄞", "", None, 'a,"b"\n\\N\t\r', "NULL"], pa.string()), "text"),
    ("ls", pa.array(["x", None, "", "ü", " "], pa.large_string()), "character varying(10)"),
    ("bin", pa.array([b"\x00\xff", b"", None, b"\\x41", b"NULL"], pa.binary()), "bytea"),
    ("day", pa.array([dt.date(2000, 1, 1), dt.date(1, 1, 1), None, dt.date(9999, 12, 31), dt.date(1969, 12, 31)],
                     pa.date32()), "date"),
    ("ts", pa.array([dt.datetime(2024, 1, 1, 0, 0, 0, 1), None, dt.datetime(1970, 1, 1),
                     dt.datetime(1899, 12, 31, 23, 59, 59, 999999), dt.datetime(1999, 12, 31, 23, 59, 59, 999999)],
                    pa.timestamp("us")), "timestamp with time zone"),
    ("tz", pa.array([dt.datetime(2024, 6, 1, 12, 30, 0, 123456, tzinfo=UTC), None,
                     dt.datetime(2000, 1, 1, tzinfo=UTC), dt.datetime(1990, 3, 4, 5, 6, 7, tzinfo=UTC),
                     dt.datetime(2030, 1, 1, tzinfo=UTC)], pa.timestamp("us", "Europe/Berlin")),
     "timestamp with time zone"),
    ("ms", pa.array([1, None, -1, 0, 1_700_000_000_123], pa.timestamp("ms")), "timestamp without time zone"),
    ("ts6", pa.array([dt.datetime(2024, 1, 1, 0, 0, 0, 1), None, dt.datetime(1970, 1, 1), dt.datetime(1, 1, 1),
                      dt.datetime(9999, 12, 31, 23, 59, 59, 999999)], pa.timestamp("us")),
     "timestamp(6) without time zone"),
    ("ts0", pa.array([dt.datetime(2024, 1, 1, 0, 0, 0, 500000), dt.datetime(2024, 1, 1, 0, 0, 0, 499999), None,
                      dt.datetime(1999, 12, 31, 23, 59, 59, 999999), dt.datetime(1969, 12, 31, 23, 59, 59, 500001)],
                     pa.timestamp("us")), "timestamp(0) with time zone"),
    ("cat", pa.array(["a", "b", None, "a", ""]).dictionary_encode(), "text"),
    ("js", pa.array(['{"b": 1, "a": [true, null]}', "[]", None, '"ü ☃"', "1.50"], pa.string()), "json"),
    ("jsb", pa.array(['{"b": 1, "a": [true, null]}', "{}", None, '"ü ☃"', "null"], pa.string()), "jsonb"),
    ("ch", pa.array(["ab", "", None, "abcde", "ü"], pa.string()), "character(5)"),
    ("tm", pa.array([dt.time(0, 0), dt.time(23, 59, 59, 999999), None, dt.time(12, 30, 0, 1), dt.time(1, 2, 3)],
                    pa.time64("us")), "time without time zone"),
    ("tm3", pa.array([0, 86_399_999, None, 45_296_789, 1], pa.time32("ms")), "time(3) without time zone"),
    ("nothing", pa.array([None] * 5, pa.null()), "text"),
]
TABLE = pa.table({name: values for name, values, _ in COLUMNS})
TYPES = [kind for _, _, kind in COLUMNS]


def _fetch(cursor: Any, table: str) -> list[tuple[Any, ...]]:
    cursor.execute(f"SELECT * FROM {table} ORDER BY ctid")
    return [tuple(bytes(v) if isinstance(v, memoryview) else v for v in row) for row in cursor.fetchall()]


def _same(a: list[tuple[Any, ...]], b: list[tuple[Any, ...]]) -> bool:
    def key(value: Any) -> Any:
        return "nan" if isinstance(value, float) and math.isnan(value) else (type(value).__name__, value)
    return [tuple(map(key, row)) for row in a] == [tuple(map(key, row)) for row in b]


def test_every_covered_column_has_an_encoder() -> None:
    assert encoders_for(TABLE.schema, TYPES) is not None


@pytest.mark.parametrize("data", [TABLE, TABLE.slice(1, 3)], ids=["whole", "sliced"])
def test_binary_copy_stores_what_csv_stores(pg_db: PostgresDatabase, data: pa.Table) -> None:
    encoders = encoders_for(data.schema, TYPES)
    assert encoders is not None
    columns = ", ".join(f'"{name}" {kind}' for name, kind in zip(data.column_names, TYPES, strict=True))
    with pg_db.connect() as connection, connection.cursor() as cursor:
        cursor.execute("SET TIME ZONE 'UTC'")
        stored = {}
        for kind in ("csv", "binary"):
            table = f"bin_{kind}_{uuid.uuid4().hex[:8]}"
            cursor.execute(f"CREATE TEMP TABLE {table} ({columns})")
            if kind == "csv":
                cursor.copy_expert(f"COPY {table} FROM STDIN WITH (FORMAT csv)", CsvCopyStream(data.to_batches()))
            else:
                stream = BinaryCopyStream(data.to_batches(max_chunksize=2), encoders)
                cursor.copy_expert(f"COPY {table} FROM STDIN WITH (FORMAT binary)", stream)
                assert stream.rows == data.num_rows
            stored[kind] = _fetch(cursor, table)
        connection.rollback()
    assert len(stored["binary"]) == data.num_rows
    assert _same(stored["binary"], stored["csv"])


def test_values_arrive_exactly(pg_db: PostgresDatabase) -> None:
    columns = ", ".join(f'"{name}" {kind}' for name, kind in zip(TABLE.column_names, TYPES, strict=True))
    with pg_db.connect() as connection, connection.cursor() as cursor:
        cursor.execute("SET TIME ZONE 'UTC'")
        cursor.execute(f"CREATE TEMP TABLE exact ({columns})")
        assert copy_into(cursor, "exact", TABLE.column_names, TABLE) == TABLE.num_rows
        rows = _fetch(cursor, "exact")
        connection.rollback()
    by_name = {name: [row[i] for row in rows] for i, name in enumerate(TABLE.column_names)}
    assert by_name["d"] == [Decimal("123456789012.34"), Decimal("-0.01"), None, Decimal("0.00"),
                            Decimal("-999999999999.99")]
    assert [str(v) for v in by_name["d7"]] == ["12345678901.1234567", "-1E-7", "None", "1.0000000", "0.5000000"]
    assert by_name["frac"] == [Decimal("0.1234"), Decimal("-0.0001"), None, Decimal("0.0000"), Decimal("0.9999")]
    assert by_name["s"] == ["héllo ☃ 𝄞", "", None, 'a,"b"\n\\N\t\r', "NULL"]
    assert by_name["bin"] == [b"\x00\xff", b"", None, b"\\x41", b"NULL"]
    assert by_name["ts"][0] == dt.datetime(2024, 1, 1, 0, 0, 0, 1, tzinfo=UTC)
    assert by_name["ts"][3] == dt.datetime(1899, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
    assert by_name["tz"][0] == dt.datetime(2024, 6, 1, 12, 30, 0, 123456, tzinfo=UTC)
    assert by_name["ms"][0] == dt.datetime(1970, 1, 1, 0, 0, 0, 1000)
    assert by_name["ts6"][0] == dt.datetime(2024, 1, 1, 0, 0, 0, 1)
    assert by_name["ts0"][:2] == [dt.datetime(2024, 1, 1, 0, 0, 1, tzinfo=UTC), dt.datetime(2024, 1, 1, tzinfo=UTC)]
    assert by_name["day"] == [dt.date(2000, 1, 1), dt.date(1, 1, 1), None, dt.date(9999, 12, 31),
                              dt.date(1969, 12, 31)]
    assert by_name["i64"] == [None, -2**63, 2**63 - 1, 0, 7]
    assert by_name["f64"][4] == 5e-324 and math.isnan(by_name["f64"][1])


@pytest.mark.parametrize("source", [SourceType("mysql", kind, precision=p) for kind in ("datetime", "timestamp")
                                    for p in (None, 0, 3, 6)] + [
                                    SourceType("postgresql", "timestamp without time zone", precision=3)])
def test_the_timestamp_columns_the_writer_creates_are_encoded_in_binary(source: SourceType) -> None:
    """P1's `updated_at DATETIME(6)` becomes `timestamp(6) without time zone`: its COPY must not fall back to CSV."""
    target = target_type(source, "postgresql", key=False)
    assert target is not None
    assert encoder_for(pa.timestamp("us"), target) is not None


@pytest.mark.parametrize(("arrow", "target"), [
    (pa.int64(), "smallint"),  # never narrowed: the server's range check stays with CSV
    (pa.uint64(), "bigint"),
    (pa.float64(), "real"),
    (pa.decimal128(38, 2), "numeric(38,2)"),
    (pa.timestamp("ns"), "timestamp with time zone"),
    (pa.timestamp("us"), "time(6) without time zone"),
    (pa.string(), "uuid"),
    (pa.time64("ns"), "time without time zone"),
    (pa.list_(pa.int64()), "jsonb"),
    (pa.int64(), "numeric"),
])
def test_pairs_without_a_binary_encoding_are_left_to_csv(arrow: pa.DataType, target: str) -> None:
    assert encoder_for(arrow, target) is None


@pytest.mark.parametrize("mode", ["append", "upsert", "replace"])
def test_a_column_binary_cannot_encode_falls_back_to_csv(pg_db: PostgresDatabase, tmp_path: Path, mode: str) -> None:
    """An existing table whose `n` is SMALLINT while the input is int64: the load goes as CSV and still works."""
    name = f"fallback_{uuid.uuid4().hex[:8]}"
    with pg_db.connect() as connection, connection.cursor() as cursor:
        cursor.execute(f"CREATE TABLE {name} (id BIGINT PRIMARY KEY, n SMALLINT, price NUMERIC(40,3))")
    data = pa.table({"id": pa.array([1, 2], pa.int64()), "n": pa.array([7, None], pa.int64()),
                     "price": pa.array([Decimal("1.500"), Decimal("-2.250")], pa.decimal128(14, 3))})
    config = PostgresWriterConfig.model_validate({
        "host": pg_db.host, "port": pg_db.port, "database": pg_db.database, "user": pg_db.user,
        "table": name, "write_mode": mode, "primary_key": ["id"]})
    PostgresWriter().run(step_id="w", config=config, inputs={"src": data}, ctx=Recorder().context(tmp_path))
    with pg_db.connect() as connection, connection.cursor() as cursor:
        cursor.execute(f"SELECT id, n, price FROM {name} ORDER BY id")
        rows = cursor.fetchall()
        cursor.execute(f"DROP TABLE {name}")
    assert rows == [(1, 7, Decimal("1.500")), (2, None, Decimal("-2.250"))]


def test_rows_of_nothing_but_nulls(pg_db: PostgresDatabase) -> None:
    """Every field a constant (NULL): the rows still come out one per input row."""
    data = pa.table({"a": pa.array([None] * 3, pa.null()), "b": pa.array([None] * 3, pa.null())})
    with pg_db.connect() as connection, connection.cursor() as cursor:
        cursor.execute("CREATE TEMP TABLE nothing (a text, b text)")
        assert copy_into(cursor, "nothing", data.column_names, data) == 3
        assert _fetch(cursor, "nothing") == [(None, None)] * 3
        connection.rollback()
