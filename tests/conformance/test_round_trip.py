"""Every connector: the type matrix round trips exactly; every write mode; composite, mixed-case and
reserved-word keys; empty inputs. One registry (`tests/conformance/connectors.py`) feeds every test."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pytest

from tests.conformance.connectors import CONNECTORS, Connector, Resources, read_back, unique
from tests.conformance.matrix import comparable, expected, matrix_for

MODAL = [c for c in CONNECTORS if c.modes]


def ids(connectors: list[Connector] | tuple[Connector, ...]) -> list[str]:
    return [c.name for c in connectors]


def rows_by(table: pa.Table, key: list[str]) -> list[dict[str, Any]]:
    return sorted(table.to_pylist(), key=lambda row: tuple(row[k] for k in key))


@pytest.mark.parametrize("connector", CONNECTORS, ids=ids(CONNECTORS))
def test_type_matrix_round_trips(connector: Connector, resources: Resources) -> None:
    data = matrix_for(connector)
    table = unique("matrix")
    connector.write(resources, table, data, "replace", ["id"])
    back = read_back(connector, resources, table, data.schema)
    assert back.column_names == data.column_names
    got = rows_by(back, ["id"])
    for name in data.column_names:
        want = [expected(connector, name, v) for v in data.column(name).to_pylist()]
        assert [comparable(connector, name, row[name]) for row in got] == want, name


KEY = ["Region", "select"]
"""A composite key: a mixed-case name and a reserved word."""


def keyed(rows: list[tuple[str, int, str]]) -> pa.Table:
    return pa.table({"Region": pa.array([r[0] for r in rows], pa.string()),
                     "select": pa.array([r[1] for r in rows], pa.int64()),
                     "order": pa.array([r[2] for r in rows], pa.string())})


FIRST = [("eu", 1, "a"), ("eu", 2, "b"), ("us", 1, "c")]
SECOND = [("eu", 2, "B"), ("us", 9, "new")]
AFTER = {
    "append": FIRST + SECOND,
    "upsert": [("eu", 1, "a"), ("eu", 2, "B"), ("us", 1, "c"), ("us", 9, "new")],
    "replace": SECOND,
}


@pytest.mark.parametrize("mode", ["append", "upsert", "replace"])
@pytest.mark.parametrize("connector", MODAL, ids=ids(MODAL))
def test_write_mode_with_composite_mixed_case_reserved_key(connector: Connector, mode: str,
                                                           resources: Resources) -> None:
    table = unique("Order")  # a mixed-case table name
    key = [] if mode == "append" else KEY
    connector.write(resources, table, keyed(FIRST), mode, key)
    connector.write(resources, table, keyed(SECOND), mode, key)
    back = connector.read(resources, table)
    assert back.column_names == ["Region", "select", "order"]
    rows = sorted((r["Region"], r["select"], r["order"]) for r in back.to_pylist())
    assert rows == sorted(AFTER[mode])


@pytest.mark.parametrize("mode", ["append", "upsert", "replace"])
@pytest.mark.parametrize("connector", CONNECTORS, ids=ids(CONNECTORS))
def test_empty_input_creates_the_table_and_writes_nothing(connector: Connector, mode: str,
                                                          resources: Resources) -> None:
    if not connector.modes and mode != "replace":
        pytest.skip("a CSV file is always rewritten: one mode")
    table = unique("empty")
    empty = keyed([])
    connector.write(resources, table, empty, mode, [] if mode == "append" else KEY)
    back = read_back(connector, resources, table, empty.schema)
    assert back.num_rows == 0
    assert back.column_names == ["Region", "select", "order"]
    if connector.modes:  # a second empty write keeps what is there
        connector.write(resources, table, keyed(FIRST), "append", [])
        connector.write(resources, table, empty, mode, [] if mode == "append" else KEY)
        assert connector.read(resources, table).num_rows == (0 if mode == "replace" else len(FIRST))
