"""scd2 and deletion edge cases a demanding user tries: values that only differ as NULL, '' or separators, keys
that leave and come back, composite keys named like SQL words."""

from __future__ import annotations

import pyarrow as pa
import pytest

from osiris_core.errors import DriverError
from tests.policies.conftest import Target

SCD2 = {"write_mode": "scd2", "primary_key": ["id"]}


def one(value: str | None, other: str | None = "x") -> pa.Table:
    return pa.table({"id": pa.array([1], pa.int64()), "v": pa.array([value], pa.string()),
                     "w": pa.array([other], pa.string())})


def test_scd2_null_empty_and_the_text_null_are_different_versions(target: Target) -> None:
    table = target.table()
    target.write(table, one(None), **SCD2)
    for value in ["", "NULL", None, "-", "0:"]:
        assert target.write(table, one(value), **SCD2).rows == 1, value
    assert target.write(table, one("0:"), **SCD2).rows == 0  # unchanged: no version


def test_scd2_values_holding_a_separator_do_not_hash_alike(target: Target) -> None:
    table = target.table()
    target.write(table, one("a\x1f", "b"), **SCD2)
    assert target.write(table, one("a", "\x1fb"), **SCD2).rows == 1
    assert target.write(table, one("a1:", ""), **SCD2).rows == 1
    assert target.write(table, one("a", "1:"), **SCD2).rows == 1


@pytest.mark.parametrize("policy", [{"write_mode": "upsert", "delete_missing": "hard"},
                                    {"write_mode": "upsert", "delete_missing": "soft"},
                                    {"write_mode": "scd2", "delete_missing": "hard"}])
def test_delete_missing_refuses_an_input_without_rows(target: Target, policy: dict[str, str]) -> None:
    table = target.table()
    target.write(table, one("a"), primary_key=["id"], **policy)
    before = target.sql(f"SELECT * FROM {target.q(table)}")
    empty = one("a").slice(0, 0)
    with pytest.raises(DriverError) as info:
        target.write(table, pa.RecordBatchReader.from_batches(empty.schema, empty.to_batches()),
                     primary_key=["id"], **policy)
    assert "the input has no rows: delete_missing" in info.value.message
    assert "left unchanged" in info.value.message
    assert target.sql(f"SELECT * FROM {target.q(table)}") == before
    fresh = target.table()  # a table the write creates has nothing to lose: an empty first run is fine
    assert target.write(fresh, empty, primary_key=["id"], **policy).rows == 0


def pairs(a: list[int], b: list[int | None]) -> pa.Table:
    return pa.table({"a": pa.array(a, pa.int64()), "b": pa.array(b, pa.int64()), "v": ["x"] * len(a)})


@pytest.mark.parametrize("policy", [{"write_mode": "upsert", "delete_missing": "soft"},
                                    {"write_mode": "upsert"}, {"write_mode": "scd2", "delete_missing": "hard"}])
def test_a_null_in_a_key_column_is_refused_not_duplicated(target: Target, policy: dict[str, str]) -> None:
    """A hand-made table with a nullable UNIQUE key: NULL matched no key, so each run stamped the row deleted and
    inserted it again."""
    table = target.table()
    integer = target.types["int"]
    text = "VARCHAR(10)" if target.name == "mysql" else target.types["text"]
    own = ", ".join(f"{c} {target.types['ts' if c != '_osiris_row_hash' else 'hash']}" for c in
                    ["_osiris_valid_from", "_osiris_valid_to", "_osiris_row_hash"]) if policy["write_mode"] == "scd2" \
        else f"_osiris_deleted_at {target.types['ts']}"
    target.sql(f"CREATE TABLE {target.q(table)} (a {integer} NOT NULL, b {integer}, v {text}, {own}, UNIQUE (a, b))")
    target.write(table, pairs([1], [1]), primary_key=["a", "b"], **policy)
    before = target.sql(f"SELECT * FROM {target.q(table)}")
    with pytest.raises(DriverError) as info:
        target.write(table, pairs([1, 2], [1, None]), primary_key=["a", "b"], **policy)
    assert "primary_key ['a', 'b'] has a NULL in 1 input rows" in info.value.message
    assert target.sql(f"SELECT * FROM {target.q(table)}") == before


def test_scd2_a_current_row_loaded_without_a_hash_gets_its_changes(target: Target) -> None:
    """History migrated by hand into a table with the scd2 columns has no row hash: a change was never seen."""
    table = target.table()
    types = target.types
    text = "VARCHAR(10)" if target.name == "mysql" else types["text"]
    target.sql(f"CREATE TABLE {target.q(table)} (id {types['int']} NOT NULL, v {text}, w {text}, "
               f"_osiris_valid_from {types['ts']} NOT NULL, _osiris_valid_to {types['ts']}, "
               f"_osiris_row_hash {types['hash']}, PRIMARY KEY (id, _osiris_valid_from))")
    target.sql(f"INSERT INTO {target.q(table)} (id, v, w, _osiris_valid_from) VALUES (1, 'old', 'x', "
               "'2020-01-01 00:00:00')")
    written = target.write(table, one("new"), **SCD2)
    assert (written.rows, written.metrics["rows_closed"]) == (1, 1)
    assert target.sql(f"SELECT v FROM {target.q(table)} WHERE _osiris_valid_to IS NULL") == [("new",)]
    assert target.write(table, one("new"), **SCD2).rows == 0  # hashed now: unchanged is unchanged


def test_scd2_hash_is_the_same_however_the_values_were_read() -> None:
    """The same values as ms or µs timestamps, float32 or float64, date64 or date32, time32 or time64 hash alike
    (a source read another way creates no versions); different values still differ."""
    from osiris_drivers.sql.scd2 import row_hashes

    def hashes(**columns: pa.Array) -> list[str]:
        return [str(h) for h in row_hashes(pa.RecordBatch.from_pydict(columns), sorted(columns)).to_pylist()]

    moments = [1_700_000_000_123, None]
    assert hashes(t=pa.array(moments, pa.timestamp("ms", "UTC"))) == \
        hashes(t=pa.array([m * 1000 if m else None for m in moments], pa.timestamp("us", "UTC"))) == \
        hashes(t=pa.array([m * 1_000_000 if m else None for m in moments], pa.timestamp("ns", "UTC")))
    assert hashes(t=pa.array([1], pa.timestamp("ns"))) != hashes(t=pa.array([0], pa.timestamp("ns")))  # sub-µs kept
    assert hashes(r=pa.array([1.5, 0.1], pa.float32())) == hashes(r=pa.array([1.5, 0.1], pa.float32()).cast(
        pa.float64()))
    assert hashes(d=pa.array([86_400_000], pa.date64())) == hashes(d=pa.array([1], pa.date32()))
    assert hashes(c=pa.array([5_000], pa.time32("ms"))) == hashes(c=pa.array([5_000_000], pa.time64("us")))
    assert hashes(c=pa.array([5_000], pa.time32("ms"))) != hashes(c=pa.array([5_001], pa.time32("ms")))


def test_scd2_a_timestamp_read_in_another_unit_creates_no_version(target: Target) -> None:
    table = target.table()
    moment = 1_700_000_000_123

    def at(kind: pa.DataType, value: int) -> pa.Table:
        return pa.table({"id": pa.array([1], pa.int64()), "t": pa.array([value], kind)})

    target.write(table, at(pa.timestamp("ms", "UTC"), moment), **SCD2)
    assert target.write(table, at(pa.timestamp("us", "UTC"), moment * 1000), **SCD2).rows == 0
    assert target.write(table, at(pa.timestamp("us", "UTC"), moment * 1000 + 1), **SCD2).rows == 1


def test_scd2_hash_is_sha256_of_the_framed_text_for_any_text() -> None:
    """Each row's hash is SHA-256 (hex) over `<sorted names joined by \\x1f>\\n` and each value as `<length>:<text>`
    (NULL `-`), as stored by every earlier version: non-ASCII, empty, NULL and long values, many batches' worth."""
    import hashlib
    import random

    from osiris_drivers.sql.scd2 import row_hashes

    pieces = ["", "a", "é", "日本", "🙂", "\x1f", "-", "0:", "NULL", "x" * 5000, "\n", "\\", "'", "ü" * 300, "\x00"]
    chooser = random.Random(12)
    size = 3000
    words = [None if chooser.random() < 0.1 else "".join(chooser.choice(pieces) for _ in range(chooser.randint(0, 4)))
             for _ in range(size)]
    numbers = [None if chooser.random() < 0.1 else chooser.randint(-2**62, 2**62) for _ in range(size)]
    batch = pa.RecordBatch.from_pydict({"w": pa.array(words, pa.string()), "n": pa.array(numbers, pa.int64())})

    def framed(value: object) -> str:
        return "-" if value is None else f"{len(str(value))}:{value}"

    expected = [hashlib.sha256(f"n\x1fw\n{framed(n)}{framed(w)}".encode()).hexdigest() for n, w in
                zip(numbers, words, strict=True)]
    assert row_hashes(batch, ["w", "n"]).to_pylist() == expected
    assert row_hashes(batch.slice(0, 0), ["w", "n"]).to_pylist() == []
    # pinned: the digest earlier versions stored for this row (a changed one would version every row once)
    pinned = pa.RecordBatch.from_pydict({"v": pa.array(["é日🙂"]), "k": pa.array([None], pa.int32())})
    stored = "46cf6c830a086df6d27d44eca780055ac8e047b402d974d44d83ba7112acccc5"
    assert row_hashes(pinned, ["v", "k"]).to_pylist() == [stored]
