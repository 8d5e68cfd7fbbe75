"""A PostgreSQL rebuild (replace with other columns) keeps CHECK and FOREIGN KEY constraints on columns that
remain, and triggers: before, they were dropped with the old table, silently."""

from __future__ import annotations

import pyarrow as pa
import pytest

from osiris_core.errors import DriverError
from tests.policies.conftest import Target


@pytest.fixture(params=["postgres", "supabase"])
def pg_target(request: pytest.FixtureRequest) -> Target:
    found: Target = request.getfixturevalue(f"{request.param}_target")
    return found


def test_replace_rebuild_keeps_constraints_and_triggers(pg_target: Target) -> None:
    target = pg_target
    table = target.table()
    parent, q = f"{table}_parent", target.q(table)
    target.sql(f"CREATE TABLE {target.q(parent)} (id BIGINT PRIMARY KEY); INSERT INTO {target.q(parent)} VALUES (1)")
    target.sql(f"CREATE TABLE {q} (id BIGINT, pid BIGINT, v TEXT, gone TEXT, "
               f"CONSTRAINT {table}_v CHECK (v <> 'bad'), CONSTRAINT {table}_p FOREIGN KEY (pid) "
               f"REFERENCES {target.q(parent)} (id), CONSTRAINT {table}_g CHECK (gone <> ''))")
    target.sql(f"CREATE FUNCTION {table}_up() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW.v := upper(NEW.v); "
               f"RETURN NEW; END $$; CREATE TRIGGER {table}_t BEFORE INSERT ON {q} FOR EACH ROW EXECUTE FUNCTION "
               f"{table}_up()")
    data = pa.table({"id": pa.array([1], pa.int64()), "pid": pa.array([1], pa.int64()), "v": ["a"]})
    target.write(table, data, write_mode="replace")
    assert target.rows(table, ["id", "pid", "v"]) == [(1, 1, "A")]  # the trigger is back and fired
    assert target.sql(f"SELECT conname FROM pg_constraint WHERE conrelid = '{q}'::regclass ORDER BY 1") == \
        [(f"{table}_p",), (f"{table}_v",)]  # the CHECK on the dropped column is gone with it
    bad = pa.table({"id": pa.array([2], pa.int64()), "pid": pa.array([9], pa.int64()), "v": ["b"]})
    with pytest.raises(DriverError) as info:  # the foreign key is enforced again
        target.write(table, bad.append_column("x", pa.array([1], pa.int64())), write_mode="replace")
    assert "foreign key" in str(info.value)
    assert target.rows(table, ["id", "pid", "v"]) == [(1, 1, "A")]


def test_replace_rebuild_keeps_the_primary_key_when_the_write_names_none(pg_target: Target) -> None:
    target = pg_target
    table = target.table()
    q = target.q(table)
    target.sql(f"CREATE TABLE {q} (id BIGINT PRIMARY KEY, parent BIGINT REFERENCES {q} (id), v TEXT, gone TEXT)")
    data = pa.table({"id": pa.array([1, 2], pa.int64()), "parent": pa.array([None, 1], pa.int64()), "v": ["a", "b"]})
    target.write(table, data, write_mode="replace")
    assert target.sql(f"SELECT contype FROM pg_constraint WHERE conrelid = '{q}'::regclass ORDER BY 1") == \
        [("f",), ("p",)]  # the self-reference needs the key back first
    assert target.write(table, data.slice(1), write_mode="upsert", primary_key=["id"]).rows == 1
