"""replace that rebuilds a table (the input's columns differ) keeps what the new schema allows: PostgreSQL (both
the psycopg2 and the Supabase staged path) its row-level security, grants, non-key indexes and comments, refusing
dependent views;
MySQL its secondary indexes and table comment."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pyarrow as pa
import pytest

from osiris_core.errors import DriverError
from tests.policies.conftest import Target

NEW_INPUT = pa.table({"id": pa.array([5], pa.int64()), "a": ["new"], "c": pa.array([1], pa.int64())})
REPLACE = {"write_mode": "replace", "primary_key": ["id"]}


@pytest.fixture(params=["postgres", "supabase"])
def pg_target(request: pytest.FixtureRequest) -> Iterator[Target]:
    yield request.getfixturevalue(f"{request.param}_target")


@pytest.fixture
def role(pg_target: Target) -> Iterator[str]:
    name = f"osiris_pol_{uuid.uuid4().hex[:8]}"
    pg_target.sql(f'CREATE ROLE "{name}" NOLOGIN')
    yield name
    pg_target.sql(f'DROP OWNED BY "{name}"')
    pg_target.sql(f'DROP ROLE "{name}"')


def test_postgres_replace_keeps_rls_grants_indexes_and_comments(pg_target: Target, role: str) -> None:
    target, table = pg_target, pg_target.table()
    q = target.q(table)
    target.sql(f"CREATE TABLE {q} (id BIGINT PRIMARY KEY, a TEXT, old TEXT)")
    target.sql(f"CREATE INDEX {table}_a ON {q} (a)")
    target.sql(f"CREATE INDEX {table}_old ON {q} (old)")
    target.sql(f"COMMENT ON TABLE {q} IS 'orders, kept'")
    target.sql(f"COMMENT ON COLUMN {q}.a IS 'it''s a'")
    target.sql(f'GRANT SELECT, UPDATE ON {q} TO "{role}"')
    target.sql(f"ALTER TABLE {q} ENABLE ROW LEVEL SECURITY")
    target.sql(f"CREATE POLICY own_rows ON {q} AS PERMISSIVE FOR SELECT TO \"{role}\" USING (a = current_user)")
    target.sql(f"INSERT INTO {q} VALUES (1, 'x', 'y')")
    target.write(table, NEW_INPUT, **REPLACE)
    assert target.columns(table) == ["id", "a", "c"]
    # The grants come back only with the row-level security that guarded them.
    assert target.sql(f"SELECT relrowsecurity FROM pg_class WHERE oid = '{q}'::regclass") == [(True,)]
    policies = target.sql(f"SELECT policyname, cmd, roles::text[], qual FROM pg_policies WHERE tablename = '{table}'")
    assert policies == [("own_rows", "SELECT", [role], "(a = CURRENT_USER)")]
    assert target.rows(table, ["id", "a", "c"]) == [(5, "new", 1)]
    privileges = target.sql(f"SELECT privilege_type FROM information_schema.role_table_grants WHERE grantee = "
                            f"'{role}' AND table_name = '{table}' ORDER BY 1")
    assert privileges == [("SELECT",), ("UPDATE",)]
    indexes = target.sql(f"SELECT indexname FROM pg_indexes WHERE tablename = '{table}' ORDER BY 1")
    assert (f"{table}_a",) in indexes and (f"{table}_old",) not in indexes  # its column is gone
    assert target.sql(f"SELECT obj_description('{q}'::regclass, 'pg_class')") == [("orders, kept",)]
    assert target.sql(f"SELECT col_description('{q}'::regclass, 2)") == [("it's a",)]
    keys = target.sql(f"SELECT count(*) FROM pg_constraint WHERE conrelid = '{q}'::regclass AND contype = 'p'")
    assert keys == [(1,)]


def test_postgres_replace_refuses_to_drop_dependent_views(pg_target: Target) -> None:
    target, table = pg_target, pg_target.table()
    q = target.q(table)
    target.sql(f"CREATE TABLE {q} (id BIGINT PRIMARY KEY, a TEXT, old TEXT)")
    target.sql(f"INSERT INTO {q} VALUES (1, 'x', 'y')")
    target.sql(f'CREATE VIEW "public"."{table}_v" AS SELECT id, old FROM {q}')
    with pytest.raises(DriverError) as info:
        target.write(table, NEW_INPUT, **REPLACE)
    assert f"views depend on it: {table}_v" in info.value.message
    assert "never drops them" in (info.value.hint or "")
    assert target.rows(table, ["id", "a", "old"]) == [(1, "x", "y")]
    assert target.sql(f'SELECT count(*) FROM "public"."{table}_v"') == [(1,)]


def test_mysql_replace_keeps_secondary_indexes_and_the_table_comment(mysql_target: Target) -> None:
    target, table = mysql_target, mysql_target.table()
    q = target.q(table)
    target.sql(f"CREATE TABLE {q} (id BIGINT PRIMARY KEY, n BIGINT, old BIGINT, a VARCHAR(20), "
               f"KEY {table}_n (n), UNIQUE KEY {table}_old (old), KEY {table}_a (a)) COMMENT 'orders, kept'")
    target.sql(f"INSERT INTO {q} VALUES (1, 2, 3, 'x')")
    data = pa.table({"id": pa.array([5], pa.int64()), "n": pa.array([7], pa.int64()), "a": ["new"]})
    target.write(table, data, **REPLACE)
    assert target.rows(table, ["id", "n", "a"]) == [(5, 7, "new")]
    indexes = {str(r[2]) for r in target.sql(f"SHOW INDEX FROM {q}")}
    # n is kept; old's column is gone; a is LONGTEXT now (indexable only by a prefix the old index lacked)
    assert indexes == {"PRIMARY", f"{table}_n"}
    comment = target.sql(f"SELECT TABLE_COMMENT FROM information_schema.TABLES WHERE TABLE_NAME = '{table}'")
    assert comment == [("orders, kept",)]


def test_postgres_replace_refuses_to_lose_a_policy_on_a_dropped_column(pg_target: Target) -> None:
    """RLS is never silently weakened: a policy that names a column the input lacks fails the write."""
    target, table = pg_target, pg_target.table()
    q = target.q(table)
    target.sql(f"CREATE TABLE {q} (id BIGINT PRIMARY KEY, a TEXT, old TEXT)")
    target.sql(f"ALTER TABLE {q} ENABLE ROW LEVEL SECURITY")
    target.sql(f"CREATE POLICY by_old ON {q} FOR SELECT USING (old = current_user)")
    target.sql(f"INSERT INTO {q} VALUES (1, 'x', 'y')")
    with pytest.raises(DriverError) as info:
        target.write(table, NEW_INPUT, **REPLACE)
    assert "old" in info.value.message and "unchanged" in (info.value.hint or "") + info.value.message
    assert target.rows(table, ["id", "a", "old"]) == [(1, "x", "y")]
    assert target.sql(f"SELECT policyname FROM pg_policies WHERE tablename = '{table}'") == [("by_old",)]


def test_postgres_replace_keeps_sequences_defaults_special_indexes_and_column_grants(pg_target: Target,
                                                                                   role: str) -> None:
    """A rebuild keeps a serial's and an identity's sequence at its value, column defaults, expression and partial
    indexes and column-level grants — each only where its columns remain."""
    target, table = pg_target, pg_target.table()
    q = target.q(table)
    target.sql(f"CREATE TABLE {q} (id BIGSERIAL PRIMARY KEY, n BIGINT GENERATED BY DEFAULT AS IDENTITY "
               f"(START WITH 100), a TEXT DEFAULT 'unnamed', made TIMESTAMPTZ DEFAULT now(), old TEXT, "
               f"ticket SERIAL)")
    target.sql(f"CREATE INDEX {table}_lower_a ON {q} (lower(a))")
    target.sql(f"CREATE INDEX {table}_named ON {q} (id) WHERE a IS NOT NULL")
    target.sql(f"CREATE INDEX {table}_lower_old ON {q} (lower(old))")
    target.sql(f"CREATE INDEX {table}_old_part ON {q} (id) WHERE old IS NULL")
    target.sql(f'GRANT SELECT (a), UPDATE (a) ON {q} TO "{role}"')
    target.sql(f'GRANT SELECT (old) ON {q} TO "{role}"')
    target.sql(f"INSERT INTO {q} (a, old) VALUES ('x', 'y'), ('z', 'w')")  # id 1-2, n 100-101, ticket 1-2
    data = pa.table({"id": pa.array([7], pa.int64()), "n": pa.array([500], pa.int64()), "a": ["new"],
                     "made": pa.array([None], pa.timestamp("us", tz="UTC")), "ticket": ["T-1"]})
    target.write(table, data, **REPLACE)
    assert target.columns(table) == ["id", "n", "a", "made", "ticket"]
    assert target.rows(table, ["id", "n", "a"]) == [(7, 500, "new")]
    # Both sequences continue where they were (as emptying the table in place leaves them).
    added = target.sql(f"INSERT INTO {q} (ticket) VALUES ('T-2') RETURNING id, n, a, made IS NOT NULL")
    assert added == [(3, 102, "unnamed", True)]
    assert target.sql(f"SELECT attidentity FROM pg_attribute WHERE attrelid = '{q}'::regclass AND attname = 'n'") \
        == [("d",)]
    # ticket is text now: its serial's sequence and nextval default are gone, the write still succeeds.
    assert target.sql(f"SELECT column_default FROM information_schema.columns WHERE table_name = '{table}' "
                      "AND column_name = 'ticket'") == [(None,)]
    indexes = {r[0] for r in target.sql(f"SELECT indexname FROM pg_indexes WHERE tablename = '{table}'")}
    assert {f"{table}_lower_a", f"{table}_named"} <= indexes
    assert not {f"{table}_lower_old", f"{table}_old_part"} & indexes
    grants = target.sql("SELECT column_name, privilege_type FROM information_schema.column_privileges WHERE "
                        f"grantee = '{role}' AND table_name = '{table}' ORDER BY 1, 2")
    assert grants == [("a", "SELECT"), ("a", "UPDATE")]


def test_mysql_swap_refuses_to_break_a_view_and_keeps_views_that_still_work(mysql_target: Target) -> None:
    """MySQL views follow the table by name through the swap: one that reads a column the input lacks refuses the
    write (table and view unchanged); one that reads kept columns reads the new rows."""
    target, table = mysql_target, mysql_target.table()
    q = target.q(table)
    target.sql(f"CREATE TABLE {q} (id BIGINT PRIMARY KEY, a VARCHAR(20), old VARCHAR(20))")
    target.sql(f"INSERT INTO {q} VALUES (1, 'x', 'y')")
    reads_old, reads_a = target.q(f"{table}_old_v"), target.q(f"{table}_a_v")
    target.sql(f"CREATE VIEW {reads_old} AS SELECT id, old FROM {q}")
    target.sql(f"CREATE VIEW {reads_a} AS SELECT id, a FROM {q}")
    try:
        with pytest.raises(DriverError) as info:
            target.write(table, NEW_INPUT, **REPLACE)
        assert f"view {target.schema}.{table}_old_v would no longer work" in info.value.message
        assert "old" in info.value.message
        assert target.rows(table, ["id", "a", "old"]) == [(1, "x", "y")]
        assert target.sql(f"SELECT id, old FROM {reads_old}") == [(1, "y")]
        assert not target.sql(f"SHOW TABLES LIKE '{table}%osiris%'")
        target.sql(f"DROP VIEW {reads_old}")
        target.write(table, NEW_INPUT, **REPLACE)
        assert target.sql(f"SELECT id, a FROM {reads_a}") == [(5, "new")]
    finally:
        target.sql(f"DROP VIEW IF EXISTS {reads_old}, {reads_a}")
