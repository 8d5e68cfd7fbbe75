"""on_schema_change on every SQL writer: each policy against a table whose columns differ from the input's."""

from __future__ import annotations

import pyarrow as pa
import pytest

from osiris_core.errors import DriverError
from osiris_drivers.sql.schema_change import SchemaDiff, SqlType, decide, fits, parse_type
from tests.policies.conftest import Target

FIRST = pa.table({"id": pa.array([1, 2], pa.int64()), "a": ["x", "y"], "gone": pa.array([10, 20], pa.int64())})
SECOND = pa.table({"id": pa.array([2, 3], pa.int64()), "a": ["y2", "z"], "new": pa.array([7, 8], pa.int64())})


@pytest.mark.parametrize("policy", ["ignore", "fail", "append_new_columns", "sync_all_columns"])
def test_each_policy_on_an_added_and_a_removed_column(target: Target, policy: str) -> None:
    table = target.table()
    target.write(table, FIRST, write_mode="upsert", primary_key=["id"])
    before = target.rows(table, ["id", "a", "gone"])
    if policy == "fail":
        with pytest.raises(DriverError) as info:
            target.write(table, SECOND, write_mode="upsert", primary_key=["id"], on_schema_change=policy)
        assert "added: new" in info.value.message and "removed: gone" in info.value.message
        assert "on_schema_change" in (info.value.hint or "")
        assert target.columns(table) == ["id", "a", "gone"]
        assert target.rows(table, ["id", "a", "gone"]) == before
        return
    written = target.write(table, SECOND, write_mode="upsert", primary_key=["id"], on_schema_change=policy)
    assert written.rows == 2
    expected_columns = {"ignore": ["id", "a", "gone"], "append_new_columns": ["id", "a", "gone", "new"],
                        "sync_all_columns": ["id", "a", "new"]}[policy]
    assert target.columns(table) == expected_columns
    values = {"ignore": [(1, "x", 10), (2, "y2", 20), (3, "z", None)],
              "append_new_columns": [(1, "x", 10, None), (2, "y2", 20, 7), (3, "z", None, 8)],
              "sync_all_columns": [(1, "x", None), (2, "y2", 7), (3, "z", 8)]}[policy]
    assert target.rows(table, expected_columns) == values


def test_the_default_appends_new_columns_on_append(target: Target) -> None:
    table = target.table()
    target.write(table, FIRST)
    target.write(table, SECOND)
    assert target.columns(table) == ["id", "a", "gone", "new"]
    assert len(target.rows(table, ["id"])) == 4


def test_sync_all_columns_widens_safe_types_and_refuses_unsafe_ones(target: Target) -> None:
    table = target.table()
    narrow = pa.table({"id": pa.array([1], pa.int64()), "n": pa.array([1], pa.int32()),
                       "f": pa.array([1.5], pa.float32()), "d": pa.array([1], pa.decimal128(6, 2))})
    target.write(table, narrow, write_mode="upsert", primary_key=["id"])
    wide = pa.table({"id": pa.array([2], pa.int64()), "n": pa.array([2**40], pa.int64()),
                     "f": pa.array([1e300], pa.float64()), "d": pa.array([12345678], pa.decimal128(12, 2))})
    with pytest.raises(DriverError) as info:  # the same diff, refused under fail
        target.write(table, wide, write_mode="upsert", primary_key=["id"], on_schema_change="fail")
    assert "type changed: n " in info.value.message and "→" in info.value.message
    target.write(table, wide, write_mode="upsert", primary_key=["id"], on_schema_change="sync_all_columns")
    assert "big" in target.column_type(table, "n")
    assert "double" in target.column_type(table, "f")
    assert target.rows(table, ["id", "n"]) == [(1, 1), (2, 2**40)]
    text = pa.table({"id": pa.array([3], pa.int64()), "n": ["not a number"]})
    before = target.rows(table, ["id", "n"])
    with pytest.raises(DriverError) as refused:
        target.write(table, text, write_mode="upsert", primary_key=["id"], on_schema_change="sync_all_columns")
    assert "cannot safely change" in refused.value.message and "n " in refused.value.message
    assert target.rows(table, ["id", "n"]) == before


def test_type_names_of_every_database_read_alike() -> None:
    assert parse_type("int(11) unsigned") == SqlType("int", 33)
    assert parse_type("tinyint(1)") == SqlType("bool")
    assert parse_type("character varying(20)") == SqlType("text")
    assert parse_type("NUMERIC(12,2)") == SqlType("decimal", 12, 2)
    assert parse_type("timestamp with time zone") == parse_type("DATETIME(6)") == SqlType("timestamp")
    assert parse_type("double precision") == parse_type("DOUBLE") == SqlType("float", 64)
    assert fits(parse_type("INTEGER"), parse_type("bigint")) and not fits(parse_type("BIGINT"), parse_type("int"))
    assert fits(parse_type("NUMERIC(10,2)"), parse_type("numeric(12,4)"))
    assert not fits(parse_type("NUMERIC(10,4)"), parse_type("numeric(12,2)"))
    assert fits(parse_type("BIGINT"), parse_type("numeric(20,0)")) and not fits(parse_type("TEXT"), parse_type("int"))
    assert decide("ignore", SchemaDiff(), "t").alters is False


def test_mysql_widening_keeps_not_null_and_the_comment(mysql_target: Target) -> None:
    target, table = mysql_target, mysql_target.table()
    target.sql(f"CREATE TABLE {target.q(table)} (id BIGINT PRIMARY KEY, n INT NOT NULL COMMENT 'how many')")
    data = pa.table({"id": pa.array([1], pa.int64()), "n": pa.array([2**40], pa.int64())})
    target.write(table, data, write_mode="upsert", primary_key=["id"], on_schema_change="sync_all_columns")
    assert target.sql(f"SELECT COLUMN_TYPE, IS_NULLABLE, COLUMN_COMMENT FROM information_schema.COLUMNS WHERE "
                      f"TABLE_NAME = '{table}' AND COLUMN_NAME = 'n'") == [("bigint(20)", "NO", "how many")]
    assert target.rows(table, ["id", "n"]) == [(1, 2**40)]
