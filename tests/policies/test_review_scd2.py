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
