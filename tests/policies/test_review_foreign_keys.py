"""MySQL swaps a changed table in by RENAME TABLE: a table with foreign keys (its own, or other tables' pointing at
it) is refused before anything changes, never silently re-pointed or dropped. PostgreSQL refuses too, by its own
rule (no DROP … CASCADE)."""

from __future__ import annotations

import pyarrow as pa
import pytest

from osiris_core.errors import DriverError
from tests.policies.conftest import Target


def rows(extra: bool = False) -> pa.Table:
    columns = {"id": pa.array([1, 2], pa.int64()), "v": ["a", "b"]}
    if extra:
        columns["w"] = pa.array([7, 8], pa.int64())
    return pa.table(columns)


def references(target: Target, child: str) -> list[tuple[object, ...]]:
    return target.sql("SELECT REFERENCED_TABLE_NAME FROM information_schema.REFERENTIAL_CONSTRAINTS WHERE "
                      f"CONSTRAINT_SCHEMA = '{target.schema}' AND TABLE_NAME = '{child}'")


@pytest.mark.parametrize("config", [{"write_mode": "upsert", "primary_key": ["id"]},
                                    {"write_mode": "replace"}])
def test_mysql_refuses_to_swap_a_table_other_tables_reference(mysql_target: Target,
                                                              config: dict[str, object]) -> None:
    target = mysql_target
    table = target.table()
    child = f"{table}_child"
    target.write(table, rows(), write_mode="upsert", primary_key=["id"])
    target.sql(f"CREATE TABLE {target.q(child)} (cid BIGINT PRIMARY KEY, pid BIGINT, CONSTRAINT {child}_fk "
               f"FOREIGN KEY (pid) REFERENCES {target.q(table)} (id))")
    with pytest.raises(DriverError) as info:
        target.write(table, rows(extra=True), **config)
    assert f"foreign keys {child}_fk ({child} → {table})" in info.value.message
    assert references(target, child) == [(table,)]  # still the live table, never the swapped-out one
    assert target.sql("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = "
                      f"'{target.schema}' AND TABLE_NAME LIKE '{table}\\_\\_osiris%'") == [(0,)]
    assert target.columns(table) == ["id", "v"]
    assert target.write(table, rows(), write_mode="upsert", primary_key=["id"]).rows == 2  # no swap: fine


def test_mysql_refuses_a_schema_change_that_would_drop_the_tables_own_foreign_key(mysql_target: Target) -> None:
    target = mysql_target
    table = target.table()
    parent = f"{table}_parent"
    target.sql(f"CREATE TABLE {target.q(parent)} (id BIGINT PRIMARY KEY)")
    target.sql(f"INSERT INTO {target.q(parent)} VALUES (1)")
    target.sql(f"CREATE TABLE {target.q(table)} (id BIGINT PRIMARY KEY, pid BIGINT, CONSTRAINT {table}_fk "
               f"FOREIGN KEY (pid) REFERENCES {target.q(parent)} (id))")
    data = pa.table({"id": pa.array([1], pa.int64()), "pid": pa.array([1], pa.int64()), "note": ["x"]})
    with pytest.raises(DriverError) as info:
        target.write(table, data)
    assert f"{table}_fk ({table} → {parent})" in info.value.message
    assert "on_schema_change append_new_columns adds note" in info.value.message
    assert references(target, table) == [(parent,)]
    assert target.columns(table) == ["id", "pid"]


def test_postgres_replace_names_the_foreign_key_it_will_not_drop(postgres_target: Target) -> None:
    target = postgres_target
    table = target.table()
    child = f"{table}_child"
    target.write(table, rows(), write_mode="upsert", primary_key=["id"])
    target.sql(f"CREATE TABLE {target.q(child)} (cid BIGINT PRIMARY KEY, pid BIGINT REFERENCES {target.q(table)})")
    with pytest.raises(DriverError) as info:
        target.write(table, rows(extra=True), write_mode="replace")
    assert "the table was left unchanged" in str(info.value) and child in str(info.value)
    assert target.columns(table) == ["id", "v"]


def test_mysql_refuses_a_schema_change_that_would_drop_the_tables_triggers(mysql_target: Target) -> None:
    target = mysql_target
    table = target.table()
    audit = f"{table}_audit"
    target.write(table, rows(), write_mode="upsert", primary_key=["id"])
    target.sql(f"CREATE TABLE {target.q(audit)} (id BIGINT)")
    target.sql(f"CREATE TRIGGER {table}_trg AFTER INSERT ON {target.q(table)} FOR EACH ROW "
               f"INSERT INTO {target.q(audit)} VALUES (NEW.id)")
    with pytest.raises(DriverError) as info:
        target.write(table, rows(extra=True), write_mode="upsert", primary_key=["id"])
    assert f"triggers {table}_trg" in info.value.message
    assert target.sql("SELECT COUNT(*) FROM information_schema.TRIGGERS WHERE EVENT_OBJECT_SCHEMA = "
                      f"'{target.schema}' AND EVENT_OBJECT_TABLE = '{table}'") == [(1,)]
    assert target.columns(table) == ["id", "v"]


def test_mysql_widening_an_auto_increment_key_keeps_auto_increment(mysql_target: Target) -> None:
    """MODIFY COLUMN restates the whole column: AUTO_INCREMENT was silently dropped with the widening."""
    target = mysql_target
    table = target.table()
    target.sql(f"CREATE TABLE {target.q(table)} (id INT NOT NULL AUTO_INCREMENT PRIMARY KEY, v LONGTEXT)")
    target.write(table, rows(), write_mode="upsert", primary_key=["id"], on_schema_change="sync_all_columns")
    assert target.sql("SELECT COLUMN_TYPE, EXTRA FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = "
                      f"'{target.schema}' AND TABLE_NAME = '{table}' AND COLUMN_NAME = 'id'") == \
        [("bigint(20)", "auto_increment")]
    target.sql(f"INSERT INTO {target.q(table)} (v) VALUES ('next')")
    assert target.rows(table, ["id", "v"]) == [(1, "a"), (2, "b"), (3, "next")]


def test_mysql_replace_keeps_the_primary_key_when_the_write_names_none(mysql_target: Target) -> None:
    target = mysql_target
    table = target.table()
    target.sql(f"CREATE TABLE {target.q(table)} (id BIGINT PRIMARY KEY, v VARCHAR(10), gone INT)")
    target.write(table, rows(), write_mode="replace")
    assert target.sql(f"SELECT COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE WHERE TABLE_SCHEMA = "
                      f"'{target.schema}' AND TABLE_NAME = '{table}' AND CONSTRAINT_NAME = 'PRIMARY'") == [("id",)]
    assert target.write(table, rows().slice(1), write_mode="upsert", primary_key=["id"]).rows == 1
