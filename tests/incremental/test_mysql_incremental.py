"""Incremental reads with MariaDB on either side: µs cursors, the boundary, NULL cursors, compound cursors,
state in the target database (committed after the rename when the write builds the table)."""

from __future__ import annotations

import json

from tests.incremental.support import (
    Project,
    card,
    failed,
    my_extract,
    my_write,
    pg_extract,
    pg_write,
    succeeded,
)


def _source(proj: Project, table: str, cursor_type: str = "DATETIME(6)") -> None:
    proj.my_exec(f"CREATE TABLE {table} (id INT PRIMARY KEY, v VARCHAR(20), updated_at {cursor_type} NULL)")


def test_mysql_to_mysql_keeps_microseconds_and_loads_boundary_ties(proj: Project) -> None:
    src, dst = f"src_{proj.tag}", f"dst_{proj.tag}"
    _source(proj, src)
    proj.my_exec(f"INSERT INTO {src} VALUES (1, 'a', '2024-01-01 10:00:00.000001'), "
                 f"(2, 'b', '2024-01-01 10:00:00.000002')")
    steps = [my_extract("read", src), my_write("load", "read", dst)]
    first = succeeded(proj.run(steps))  # the target is built as <table>__osiris_new and renamed in
    assert json.loads(card(first, "read").incremental.cursor_after or "") == [  # type: ignore[union-attr]
        ["datetime", "2024-01-01T10:00:00.000002"]]
    proj.my_exec(f"INSERT INTO {src} VALUES (3, 'tie', '2024-01-01 10:00:00.000002'), "
                 f"(4, 'before', '2024-01-01 10:00:00.000001')")
    second = succeeded(proj.run(steps))
    inc = card(second, "read").incremental
    assert inc is not None and inc.rows_read == 2  # row 2 again and the tie; row 4 is behind the cursor
    assert [r[0] for r in proj.my_exec(f"SELECT id FROM {dst} ORDER BY id")] == [1, 2, 3]
    state = proj.my_exec("SELECT pipeline, step, `rows` FROM _osiris_state WHERE target LIKE "
                         f"'%/{dst}'")
    assert state == [("inc", "read", 2)]


def test_mysql_timestamp_cursor_into_postgres(proj: Project) -> None:
    src = f"src_{proj.tag}"
    _source(proj, src, "TIMESTAMP(6)")
    proj.my_exec(f"INSERT INTO {src} VALUES (1, 'a', '2024-06-01 12:00:00.654321')")
    proj.pg_exec(f"CREATE SCHEMA IF NOT EXISTS {proj.schema}")
    steps = [my_extract("read", src), pg_write("load", "read", proj.schema, "dst")]
    succeeded(proj.run(steps))
    proj.my_exec(f"INSERT INTO {src} VALUES (2, 'tie', '2024-06-01 12:00:00.654321'), "
                 f"(3, 'older', '2024-06-01 12:00:00.654320')")
    again = succeeded(proj.run(steps))
    inc = card(again, "read").incremental
    assert inc is not None and inc.rows_read == 2
    assert [r[0] for r in proj.pg_exec(f"SELECT id FROM {proj.schema}.dst ORDER BY id")] == [1, 2]


def test_postgres_to_mysql_with_a_compound_cursor_and_nulls_included(proj: Project) -> None:
    dst = f"dst_{proj.tag}"
    proj.pg_exec(f"CREATE SCHEMA IF NOT EXISTS {proj.schema}",
                 f"CREATE TABLE {proj.schema}.src (id int PRIMARY KEY, v text, day date, seq bigint)",
                 f"INSERT INTO {proj.schema}.src VALUES (1, 'a', '2024-01-01', 1), (2, 'n', NULL, NULL)")
    steps = [pg_extract("read", proj.schema, "src", cursor=["day", "seq"]), my_write("load", "read", dst)]
    succeeded(proj.run(steps))
    proj.my_exec(f"UPDATE {dst} SET v = 'stale' WHERE id = 2")
    proj.pg_exec(f"INSERT INTO {proj.schema}.src VALUES (3, 'c', '2024-01-01', 2), (4, 'old', '2023-12-31', 5)")
    again = succeeded(proj.run(steps))
    inc = card(again, "read").incremental
    assert inc is not None and inc.rows_read == 3  # the tie (1), the new row (3) and the NULL-cursor row (2)
    assert proj.my_exec(f"SELECT id, v FROM {dst} ORDER BY id") == [(1, "a"), (2, "n"), (3, "c")]


def test_mysql_null_cursor_fail_writes_nothing(proj: Project) -> None:
    src, dst = f"src_{proj.tag}", f"dst_{proj.tag}"
    _source(proj, src)
    proj.my_exec(f"INSERT INTO {src} VALUES (1, 'a', NULL)")
    error = failed(proj.run([my_extract("read", src, on_null_cursor="fail"), my_write("load", "read", dst)]))
    assert "cursor column 'updated_at' has NULL values" in error
    assert proj.my_exec(f"SHOW TABLES LIKE '{dst}'") == []


def test_a_quote_and_a_backslash_in_a_text_cursor_are_rendered_as_literals(proj: Project) -> None:
    src, dst = f"src_{proj.tag}", f"dst_{proj.tag}"
    proj.my_exec(f"CREATE TABLE {src} (id INT PRIMARY KEY, v VARCHAR(20), code VARCHAR(20) COLLATE utf8mb4_bin)")
    proj.my_exec(f"INSERT INTO {src} VALUES (1, 'a', 'a'), (2, 'b', 'b\\\\''x')")
    steps = [my_extract("read", src, cursor="code"), my_write("load", "read", dst)]
    succeeded(proj.run(steps))
    again = succeeded(proj.run(steps))
    inc = card(again, "read").incremental
    assert inc is not None and inc.rows_read == 1
    assert json.loads(inc.cursor_after or "") == [["str", "b\\'x"]]


def test_a_state_table_that_cannot_be_read_fails_the_run_not_as_no_state(proj: Project) -> None:
    """The state is read with one SELECT and the table's existence checked only when it failed: a state table that
    exists but cannot be read (here: a column missing) still fails the run; it is not taken for a first run."""
    src, schema = f"src_{proj.tag}", proj.schema
    _source(proj, src)
    proj.my_exec(f"INSERT INTO {src} VALUES (1, 'a', '2024-01-01 10:00:00')")
    proj.pg_exec(f"CREATE SCHEMA {schema}", f"CREATE TABLE {schema}._osiris_state (pipeline TEXT)")
    error = failed(proj.run([my_extract("read", src), pg_write("load", "read", schema, "dst")]))
    assert "incremental state" in error and "cursor" in error, error
    proj.pg_exec(f"DROP TABLE {schema}._osiris_state")
    assert card(succeeded(proj.run([my_extract("read", src), pg_write("load", "read", schema, "dst")])),
                "load").rows_out == 1  # no state table: a first run
