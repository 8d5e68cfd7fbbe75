"""A PostgreSQL table whose key is a GENERATED ALWAYS identity takes the input's values in every write mode, on
both the psycopg2 and the Supabase staged path (PostgreSQL refuses them without `OVERRIDING SYSTEM VALUE`)."""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa
import pytest

from tests.policies.conftest import Target


@pytest.fixture(params=["postgres", "supabase"])
def pg_target(request: pytest.FixtureRequest) -> Iterator[Target]:
    yield request.getfixturevalue(f"{request.param}_target")


@pytest.mark.parametrize("write_mode", ["append", "upsert", "replace"])
def test_an_always_identity_key_takes_the_inputs_values(pg_target: Target, write_mode: str) -> None:
    target, table = pg_target, pg_target.table()
    q = target.q(table)
    target.sql(f"CREATE TABLE {q} (id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, a TEXT)")
    target.sql(f"INSERT INTO {q} (a) VALUES ('first')")  # id 1
    data = pa.table({"id": pa.array([1, 7], pa.int64()), "a": ["one", "seven"]})
    if write_mode == "append":
        data = data.slice(1)
    target.write(table, data, write_mode=write_mode, primary_key=["id"])
    expected = {"append": [(1, "first"), (7, "seven")], "upsert": [(1, "one"), (7, "seven")],
                "replace": [(1, "one"), (7, "seven")]}[write_mode]
    assert target.rows(table, ["id", "a"]) == expected
    assert target.sql(f"SELECT attidentity FROM pg_attribute WHERE attrelid = '{q}'::regclass AND attname = 'id'") \
        == [("a",)]
