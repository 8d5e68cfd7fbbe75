"""Incremental reads from PostgreSQL into PostgreSQL: the boundary, precision, NULL cursors, compound cursors,
lookback, and state committed with the rows."""

from __future__ import annotations

import json
from typing import Any

from tests.incremental.support import Project, card, failed, pg_extract, pg_write, succeeded


def _source(proj: Project, table: str = "src", cursor_type: str = "timestamptz") -> None:
    proj.pg_exec(f"CREATE SCHEMA IF NOT EXISTS {proj.schema}",
                 f"CREATE TABLE {proj.schema}.{table} (id int PRIMARY KEY, v text, updated_at {cursor_type})")


def _target(proj: Project, table: str = "dst") -> list[tuple[object, ...]]:
    return proj.pg_exec(f"SELECT id, v, updated_at FROM {proj.schema}.{table} ORDER BY id")


def _pipeline(proj: Project, **incremental: Any) -> list[dict[str, Any]]:
    return [pg_extract("read", proj.schema, "src", **incremental), pg_write("load", "read", proj.schema, "dst")]


def test_rows_tied_with_the_last_cursor_inserted_after_a_run_are_loaded(proj: Project) -> None:
    _source(proj)
    proj.pg_exec(f"INSERT INTO {proj.schema}.src VALUES (1, 'a', '2024-01-01 10:00:00.000001+00'), "
                 f"(2, 'b', '2024-01-01 10:00:00.000002+00')")
    first = succeeded(proj.run(_pipeline(proj)))
    assert card(first, "read").incremental is not None
    # A row with exactly the last cursor value arrives after the run (Sling-style `>` would miss it).
    proj.pg_exec(f"INSERT INTO {proj.schema}.src VALUES (3, 'tie', '2024-01-01 10:00:00.000002+00')")
    second = succeeded(proj.run(_pipeline(proj)))
    assert [r[:2] for r in _target(proj)] == [(1, "a"), (2, "b"), (3, "tie")]
    inc = card(second, "read").incremental
    assert inc is not None and inc.rows_read == 2  # only the boundary rows: 2 (again) and 3
    assert json.loads(inc.cursor_before or "")[0][1].endswith("10:00:00.000002+00:00")


def test_state_lives_in_the_target_schema_keyed_by_pipeline_step_and_target(proj: Project) -> None:
    _source(proj)
    proj.pg_exec(f"INSERT INTO {proj.schema}.src VALUES (1, 'a', '2024-01-01 10:00:00.123456+00')")
    succeeded(proj.run(_pipeline(proj), name="orders"))
    rows = proj.pg_exec(f'SELECT pipeline, step, target, "cursor", "rows" FROM {proj.schema}._osiris_state')
    assert len(rows) == 1
    pipeline, step, target, cursor, count = rows[0]
    assert (pipeline, step, count) == ("orders", "read", 1)
    assert target.endswith(f"/{proj.schema}.dst") and "@" not in target
    assert json.loads(cursor) == [["datetime", "2024-01-01T10:00:00.123456+00:00"]]


def test_a_second_run_without_changes_reads_only_the_boundary_and_keeps_the_target(proj: Project) -> None:
    _source(proj, cursor_type="bigint")
    proj.pg_exec(f"INSERT INTO {proj.schema}.src SELECT g, 'v' || g, 9007199254740993 + g "
                 "FROM generate_series(1, 50) g")
    succeeded(proj.run(_pipeline(proj)))
    again = succeeded(proj.run(_pipeline(proj)))
    inc = card(again, "read").incremental
    assert inc is not None and inc.rows_read == 1
    assert json.loads(inc.cursor_after or "") == [["int", str(9007199254740993 + 50)]]  # beyond float precision
    assert len(_target(proj)) == 50


def test_updated_rows_are_upserted(proj: Project) -> None:
    _source(proj, cursor_type="numeric(20,6)")
    proj.pg_exec(f"INSERT INTO {proj.schema}.src VALUES (1, 'a', 1.000001), (2, 'b', 1.000002)")
    succeeded(proj.run(_pipeline(proj)))
    proj.pg_exec(f"UPDATE {proj.schema}.src SET v = 'a2', updated_at = 1.000003 WHERE id = 1")
    again = succeeded(proj.run(_pipeline(proj)))
    assert [r[:2] for r in _target(proj)] == [(1, "a2"), (2, "b")]
    inc = card(again, "read").incremental
    assert inc is not None and inc.rows_read == 2
    assert json.loads(inc.cursor_after or "") == [["decimal", "1.000003"]]


def test_null_cursors_included_by_default_are_read_every_run(proj: Project) -> None:
    _source(proj, cursor_type="int")
    proj.pg_exec(f"INSERT INTO {proj.schema}.src VALUES (1, 'a', 5), (2, 'null', NULL)")
    succeeded(proj.run(_pipeline(proj)))
    proj.pg_exec(f"UPDATE {proj.schema}.src SET v = 'null2' WHERE id = 2")
    again = succeeded(proj.run(_pipeline(proj)))
    assert [r[:2] for r in _target(proj)] == [(1, "a"), (2, "null2")]
    inc = card(again, "read").incremental
    assert inc is not None and inc.rows_read == 2 and json.loads(inc.cursor_after or "") == [["int", "5"]]


def test_null_cursors_excluded_are_never_read(proj: Project) -> None:
    _source(proj, cursor_type="int")
    proj.pg_exec(f"INSERT INTO {proj.schema}.src VALUES (1, 'a', 5), (2, 'null', NULL)")
    succeeded(proj.run(_pipeline(proj, on_null_cursor="exclude")))
    assert [r[0] for r in _target(proj)] == [1]


def test_null_cursors_under_fail_stop_the_step_naming_the_column_and_write_nothing(proj: Project) -> None:
    _source(proj, cursor_type="int")
    proj.pg_exec(f"INSERT INTO {proj.schema}.src VALUES (1, 'a', 5), (2, 'null', NULL)")
    error = failed(proj.run(_pipeline(proj, on_null_cursor="fail")))
    assert "cursor column 'updated_at' has NULL values" in error and "\n" not in error
    assert proj.pg_exec(f"SELECT to_regclass('{proj.schema}.dst') IS NULL") == [(True,)]


def test_a_compound_cursor_compares_as_a_row_value(proj: Project) -> None:
    proj.pg_exec(f"CREATE SCHEMA IF NOT EXISTS {proj.schema}",
                 f"CREATE TABLE {proj.schema}.src (id int PRIMARY KEY, v text, day date, seq int)",
                 f"INSERT INTO {proj.schema}.src VALUES (1, 'a', '2024-01-01', 9), (2, 'b', '2024-01-02', 1)")
    steps = [pg_extract("read", proj.schema, "src", cursor=["day", "seq"]),
             pg_write("load", "read", proj.schema, "dst")]
    succeeded(proj.run(steps))
    # (2024-01-01, 10) is below the last cursor (2024-01-02, 1) as a row value: not read;
    # (2024-01-02, 1) ties and (2024-01-02, 2) follows: read.
    proj.pg_exec(f"INSERT INTO {proj.schema}.src VALUES (3, 'old', '2024-01-01', 10), "
                 f"(4, 'tie', '2024-01-02', 1), (5, 'new', '2024-01-02', 2)")
    again = succeeded(proj.run(steps))
    inc = card(again, "read").incremental
    assert inc is not None and inc.rows_read == 3
    assert json.loads(inc.cursor_after or "") == [["date", "2024-01-02"], ["int", "2"]]
    assert [r[0] for r in proj.pg_exec(f"SELECT id FROM {proj.schema}.dst ORDER BY id")] == [1, 2, 4, 5]


def test_lookback_re_reads_a_window_for_late_rows(proj: Project) -> None:
    _source(proj)
    proj.pg_exec(f"INSERT INTO {proj.schema}.src VALUES (1, 'a', '2024-01-01 10:00:00+00')")
    succeeded(proj.run(_pipeline(proj, lookback=3600)))
    # A late row, committed in the source after the run with a cursor 30 minutes behind the last one.
    proj.pg_exec(f"INSERT INTO {proj.schema}.src VALUES (2, 'late', '2024-01-01 09:30:00+00'), "
                 f"(3, 'too late', '2024-01-01 08:00:00+00')")
    succeeded(proj.run(_pipeline(proj, lookback=3600)))
    assert [r[0] for r in _target(proj)] == [1, 2]


def test_initial_value_bounds_the_first_run(proj: Project) -> None:
    _source(proj)
    proj.pg_exec(f"INSERT INTO {proj.schema}.src VALUES (1, 'old', '2023-12-31 23:59:59.999999+00'), "
                 f"(2, 'new', '2024-01-01 00:00:00+00')")
    succeeded(proj.run(_pipeline(proj, initial_value="2024-01-01 00:00:00+00")))
    assert [r[0] for r in _target(proj)] == [2]


def test_a_query_is_filtered_as_a_subquery(proj: Project) -> None:
    proj.pg_exec(f"CREATE SCHEMA IF NOT EXISTS {proj.schema}",
                 f"CREATE TABLE {proj.schema}.src (id text PRIMARY KEY, v text, updated_at timestamp)",
                 f"INSERT INTO {proj.schema}.src VALUES ('a', 'x', '2024-01-01'), ('b', 'y', '2024-01-02')")
    read = {"id": "read", "component": "postgres.extractor", "mode": "read",
            "config": {"connection": "@postgres.db",
                       "query": f"SELECT id, upper(v) AS v, updated_at FROM {proj.schema}.src",
                       "incremental": {"cursor": "updated_at"}}}
    steps = [read, pg_write("load", "read", proj.schema, "dst")]
    succeeded(proj.run(steps))
    proj.pg_exec(f"INSERT INTO {proj.schema}.src VALUES ('c', 'z', '2024-01-03')")
    again = succeeded(proj.run(steps))
    inc = card(again, "read").incremental
    assert inc is not None and inc.rows_read == 2
    assert proj.pg_exec(f"SELECT id, v FROM {proj.schema}.dst ORDER BY id") == [("a", "X"), ("b", "Y"), ("c", "Z")]


def test_a_cursor_of_no_orderable_type_is_refused_before_anything_is_written(proj: Project) -> None:
    proj.pg_exec(f"CREATE SCHEMA IF NOT EXISTS {proj.schema}",
                 f"CREATE TABLE {proj.schema}.src (id int PRIMARY KEY, v text, updated_at boolean)",
                 f"INSERT INTO {proj.schema}.src VALUES (1, 'a', true)")
    error = failed(proj.run(_pipeline(proj)))
    assert "cursor column 'updated_at' reads as Arrow bool" in error
    assert proj.pg_exec(f"SELECT to_regclass('{proj.schema}.dst') IS NULL") == [(True,)]


def test_a_cursor_column_that_is_not_read_is_refused(proj: Project) -> None:
    _source(proj)
    steps = _pipeline(proj)
    steps[0]["config"]["columns"] = ["id", "v"]
    assert "cursor columns ['updated_at'] are not among the columns read" in failed(proj.run(steps))
