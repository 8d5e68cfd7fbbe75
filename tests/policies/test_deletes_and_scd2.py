"""delete_missing, hard_delete_column and write_mode scd2 on every SQL writer, and a failure in the middle of
these writes leaving the table as it was."""

from __future__ import annotations

import hashlib

import pyarrow as pa
import pytest

from osiris_core.errors import DriverError
from tests.policies.conftest import Target

KEYED = {"write_mode": "upsert", "primary_key": ["id"]}


def orders(ids: list[int], values: list[str], deleted: list[bool] | None = None) -> pa.Table:
    columns = {"id": pa.array(ids, pa.int64()), "v": values}
    if deleted is not None:
        columns["_deleted"] = pa.array(deleted, pa.bool_())
    return pa.table(columns)


def test_delete_missing_hard_deletes_keys_the_full_extract_lacks(target: Target) -> None:
    table = target.table()
    target.write(table, orders([1, 2, 3], ["a", "b", "c"]), **KEYED)
    written = target.write(table, orders([2, 4], ["b2", "d"]), **KEYED, delete_missing="hard")
    assert target.rows(table, ["id", "v"]) == [(2, "b2"), (4, "d")]
    assert written.rows == 2
    assert written.metrics["rows_deleted"] == 2


def test_delete_missing_soft_stamps_and_clears_deleted_at(target: Target) -> None:
    table = target.table()
    target.write(table, orders([1, 2, 3], ["a", "b", "c"]), **KEYED)
    target.write(table, orders([2], ["b2"]), **KEYED, delete_missing="soft")
    assert "_osiris_deleted_at" in target.columns(table)
    stamped = target.rows(table, ["id"], " WHERE _osiris_deleted_at IS NOT NULL")
    assert stamped == [(1,), (3,)]
    assert target.rows(table, ["id", "v"]) == [(1, "a"), (2, "b2"), (3, "c")]  # nothing is removed
    stamps = target.sql(f"SELECT DISTINCT _osiris_deleted_at FROM {target.q(table)} "
                        "WHERE _osiris_deleted_at IS NOT NULL")
    assert len(stamps) == 1  # one timestamp per run
    written = target.write(table, orders([1, 2], ["a2", "b2"]), **KEYED, delete_missing="soft")
    assert target.rows(table, ["id"], " WHERE _osiris_deleted_at IS NOT NULL") == [(3,)]  # 1 came back
    assert target.rows(table, ["id", "v"]) == [(1, "a2"), (2, "b2"), (3, "c")]
    assert written.metrics == {"rows_deleted": 0, "rows_undeleted": 1}


def test_hard_delete_column_deletes_flagged_keys_and_is_not_written(target: Target) -> None:
    table = target.table()
    target.write(table, orders([1, 2, 3], ["a", "b", "c"]), **KEYED)
    written = target.write(table, orders([1, 2, 5], ["a", "b2", "e"], [True, False, False]), **KEYED,
                           hard_delete_column="_deleted")
    assert target.rows(table, ["id", "v"]) == [(2, "b2"), (3, "c"), (5, "e")]
    assert "_deleted" not in target.columns(table)
    assert written.rows == 2  # the flagged row is not written
    assert written.metrics["rows_deleted"] == 1
    fresh = target.table()  # a table the write creates never gets the flag column either
    target.write(fresh, orders([1, 2], ["a", "b"], [False, True]), **KEYED, hard_delete_column="_deleted")
    assert target.columns(fresh) == ["id", "v"] and target.rows(fresh, ["id", "v"]) == [(1, "a")]


def versions(target: Target, table: str) -> list[tuple[object, ...]]:
    """(id, v, current?) for every version, oldest first per key."""
    return [(r[0], r[1], r[3] is None) for r in target.sql(
        f"SELECT id, v, _osiris_valid_from, _osiris_valid_to FROM {target.q(table)} ORDER BY id, _osiris_valid_from")]


def assert_one_current_row_per_key(target: Target, table: str) -> None:
    counts = target.sql(f"SELECT id, COUNT(*) FROM {target.q(table)} WHERE _osiris_valid_to IS NULL GROUP BY id "
                        "HAVING COUNT(*) > 1")
    assert counts == []


def test_scd2_over_three_runs_insert_update_delete_noop(target: Target) -> None:
    table = target.table()
    scd2 = {"write_mode": "scd2", "primary_key": ["id"], "delete_missing": "hard"}
    first = target.write(table, orders([1, 2, 3], ["a", "b", "c"]), **scd2)
    assert first.rows == 3
    assert versions(target, table) == [(1, "a", True), (2, "b", True), (3, "c", True)]
    second_input = orders([1, 2, 4], ["a", "b2", "d"])  # 1 unchanged, 2 changed, 3 gone, 4 new
    second = target.write(table, second_input, **scd2)
    assert second.rows == 2  # the versions inserted: 2 (new version) and 4
    assert versions(target, table) == [(1, "a", True), (2, "b", False), (2, "b2", True), (3, "c", False),
                                       (4, "d", True)]
    assert second.metrics["rows_closed"] == 2
    third = target.write(table, second_input, **scd2)  # the same extract again: nothing changes
    assert third.rows == 0
    assert len(versions(target, table)) == 5
    assert_one_current_row_per_key(target, table)
    # One valid_from per run; a closed version's valid_to is the next run's valid_from.
    runs = target.sql(f"SELECT DISTINCT _osiris_valid_from FROM {target.q(table)}")
    assert len(runs) == 2
    closed = target.sql(f"SELECT o._osiris_valid_to, n._osiris_valid_from FROM {target.q(table)} o JOIN "
                        f"{target.q(table)} n ON n.id = o.id AND n._osiris_valid_to IS NULL "
                        "WHERE o._osiris_valid_to IS NOT NULL")
    assert closed and all(a == b for a, b in closed)
    hashes = target.sql(f"SELECT _osiris_row_hash FROM {target.q(table)} WHERE id = 1")
    assert len(hashes[0][0]) == 64
    if target.dialect.PARTIAL_UNIQUE_INDEX:  # PostgreSQL enforces one current row per key itself
        index = target.sql(f"SELECT indexdef FROM pg_indexes WHERE tablename = '{table}' AND indexname LIKE "
                           "'%osiris_current'")
        assert index and "UNIQUE" in index[0][0] and "WHERE (_osiris_valid_to IS NULL)" in index[0][0]
        with pytest.raises(Exception, match="duplicate key"):
            target.sql(f"INSERT INTO {target.q(table)} (id, v, _osiris_row_hash, _osiris_valid_from) "
                       "VALUES (1, 'dup', 'x', now())")


def test_scd2_row_hash_is_the_same_in_every_database(target: Target) -> None:
    table = target.table()
    target.write(table, orders([1], ["a"]), write_mode="scd2", primary_key=["id"])
    value = target.sql(f"SELECT _osiris_row_hash FROM {target.q(table)}")[0][0]
    assert value == hashlib.sha256(b"v\n" + b"1:a").hexdigest()  # the names, then each value as <length>:<text>


def test_scd2_with_ignore_hashes_only_the_columns_it_writes(target: Target) -> None:
    table = target.table()
    scd2 = {"write_mode": "scd2", "primary_key": ["id"], "on_schema_change": "ignore"}
    target.write(table, orders([1], ["a"]), **scd2)
    extra = pa.table({"id": pa.array([1], pa.int64()), "v": ["a"], "note": ["not stored"]})
    assert target.write(table, extra, **scd2).rows == 0  # a change in an ignored column is no change
    assert versions(target, table) == [(1, "a", True)]
    assert "note" not in target.columns(table)


def test_scd2_refuses_a_table_without_its_columns(target: Target) -> None:
    table = target.table()
    target.write(table, orders([1], ["a"]), **KEYED)
    with pytest.raises(DriverError) as info:
        target.write(table, orders([1], ["b"]), write_mode="scd2", primary_key=["id"])
    assert "has no scd2 columns" in info.value.message
    assert target.rows(table, ["id", "v"]) == [(1, "a")]


def test_a_failure_mid_write_leaves_the_table_unchanged(target: Target) -> None:
    """The new column is added, keys deleted, then the merge fails (a NOT NULL column the input lacks): the
    column, the deletions and the rows are all undone."""
    table = target.table()
    t = target.types
    target.sql(f"CREATE TABLE {target.q(table)} (id {t['int']} NOT NULL PRIMARY KEY, v {t['text']}, "
               f"req {t['int']} NOT NULL)")
    target.sql(f"INSERT INTO {target.q(table)} (id, v, req) VALUES (1, 'a', 1), (2, 'b', 2)")
    data = pa.table({"id": pa.array([2, 3], pa.int64()), "v": ["b2", "c"], "extra": pa.array([1, 2], pa.int64())})
    with pytest.raises(DriverError) as info:
        target.write(table, data, **KEYED, delete_missing="hard")
    assert "unchanged" in (info.value.hint or "") + info.value.message
    assert target.columns(table) == ["id", "v", "req"]
    assert target.rows(table, ["id", "v", "req"]) == [(1, "a", 1), (2, "b", 2)]


def test_scd2_refuses_two_versions_of_a_key_in_one_run(target: Target) -> None:
    """A created scd2 table's primary key is the key plus _osiris_valid_from (one per run): a key twice in one
    input cannot become two current rows."""
    table = target.table()
    target.write(table, orders([1], ["a"]), write_mode="scd2", primary_key=["id"])
    with pytest.raises(DriverError):
        target.write(table, orders([1, 1, 2], ["b", "c", "d"]), write_mode="scd2", primary_key=["id"])
    assert versions(target, table) == [(1, "a", True)]


def test_a_failed_scd2_write_closes_nothing(target: Target) -> None:
    table = target.table()
    t = target.types
    target.sql(f"CREATE TABLE {target.q(table)} (id {t['int']} NOT NULL, v {t['text']}, req {t['int']} NOT NULL, "
               f"_osiris_row_hash {t['hash']}, _osiris_valid_from {t['ts']} NOT NULL, _osiris_valid_to {t['ts']})")
    target.sql(f"INSERT INTO {target.q(table)} (id, v, req, _osiris_row_hash, _osiris_valid_from) "
               "VALUES (1, 'a', 1, 'old', CURRENT_TIMESTAMP)")
    with pytest.raises(DriverError):
        target.write(table, orders([1], ["a2"]), write_mode="scd2", primary_key=["id"])
    assert [(r[0], r[1], r[2]) for r in versions(target, table)] == [(1, "a", True)]


def test_a_failed_sync_all_columns_write_keeps_dropped_and_widened_columns(target: Target) -> None:
    """sync_all_columns adds, drops and widens, then a row breaks a CHECK: the table keeps its old shape."""
    table = target.table()
    t = target.types
    target.sql(f"CREATE TABLE {target.q(table)} (id {t['int']} NOT NULL PRIMARY KEY, v {t['text']} "
               f"CHECK (v <> 'boom'), n INTEGER, gone {t['int']})")
    target.sql(f"INSERT INTO {target.q(table)} (id, v, n, gone) VALUES (1, 'a', 1, 10)")
    data = pa.table({"id": pa.array([2], pa.int64()), "v": ["boom"], "n": pa.array([2**40], pa.int64()),
                     "extra": pa.array([1], pa.int64())})
    with pytest.raises(DriverError):
        target.write(table, data, **KEYED, on_schema_change="sync_all_columns", delete_missing="soft")
    assert target.columns(table) == ["id", "v", "n", "gone"]
    assert "big" not in target.column_type(table, "n")
    assert target.rows(table, ["id", "v", "n", "gone"]) == [(1, "a", 1, 10)]


def stream(table: pa.Table) -> pa.RecordBatchReader:
    """The input as a pipeline hands it over: a stream of small batches, readable once."""
    return pa.RecordBatchReader.from_batches(table.schema, table.to_batches(max_chunksize=1))


def test_policies_read_a_streamed_input_once(target: Target) -> None:
    table = target.table()
    scd2 = {"write_mode": "scd2", "primary_key": ["id"], "delete_missing": "soft",
            "hard_delete_column": "_deleted", "on_schema_change": "ignore"}
    first = orders([1, 2, 3], ["a", "b", "c"], [False, False, False])
    assert target.write(table, stream(first), **scd2).rows == 3
    second = orders([1, 2, 4], ["a2", "b", "d"], [False, True, False]).append_column("note", pa.array(["x"] * 3))
    written = target.write(table, stream(second), **scd2)
    assert written.rows == 2 and written.metrics["rows_closed"] == 3  # 1 changed; 2 flagged; 3 missing
    assert versions(target, table) == [(1, "a", False), (1, "a2", True), (2, "b", False), (3, "c", False),
                                       (4, "d", True)]
