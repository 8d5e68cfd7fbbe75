"""Duplicate keys in upsert input fail before anything is written, naming one key, in every SQL writer, unless the
step opts into `dedupe: keep_last`, which keeps the last row of each key in input order; `rows_written` is what
the target received (issue 9, finding 2)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from osiris_core.registry import ComponentRegistry
from osiris_core.runner import RunResult
from tests.endstates.sql_targets import WRITERS, Target
from tests.support.databases import MySQLDatabase, PostgresDatabase
from tests.support.runs import rows_written_metrics, run_pipeline, step

DUPLICATED = "SELECT * FROM (VALUES (1, 'a'), (2, 'b'), (1, 'c'), (3, 'd')) t(id, v)"
"""Key 1 twice: its last row says 'c'."""
MANY = "SELECT i % 1000 AS id, CAST(i AS VARCHAR) AS v, i AS n FROM range(300000) t(i)"
"""Every key 300 times across many batches; the last row of key k has n = 299000 + k."""


@pytest.fixture(params=WRITERS)
def target(request: pytest.FixtureRequest, project: Path, mysql_db: MySQLDatabase, pg_db: PostgresDatabase) -> Target:
    return Target.make(str(request.param), project, mysql_db, pg_db)


def upsert(registry: ComponentRegistry, target: Target, query: str, **config: Any) -> RunResult:
    steps = [{"id": "gen", "component": "duckdb.processor", "mode": "transform", "config": {"query": query}},
             target.step("write", "gen", write_mode="upsert", primary_key=["id"], **config)]
    return run_pipeline(registry, target.project, steps, connections=target.connections())


def test_duplicate_keys_fail_the_upsert_before_anything_is_written(registry: ComponentRegistry,
                                                                   target: Target) -> None:
    target.create("id INTEGER PRIMARY KEY, v VARCHAR(10)", "(1, 'old'), (9, 'kept')")
    run = upsert(registry, target, DUPLICATED)
    card = step(run, "write")
    assert run.card.status == "failed" and card.status == "failed"
    assert card.error is not None and "more than one input row has the key id = 1" in card.error
    assert "dedupe: keep_last" in card.error
    assert "ON CONFLICT" not in card.error and "\n" not in card.error
    assert target.rows() == [(1, "old"), (9, "kept")]
    assert rows_written_metrics(run, "write") == []


def test_duplicate_keys_into_a_missing_table_create_nothing(registry: ComponentRegistry, target: Target) -> None:
    run = upsert(registry, target, DUPLICATED)
    assert step(run, "write").status == "failed"
    assert not target.exists()


def test_keep_last_keeps_the_last_row_of_each_key_and_counts_what_the_table_received(
        registry: ComponentRegistry, target: Target) -> None:
    target.create("id INTEGER PRIMARY KEY, v VARCHAR(10)", "(1, 'old'), (9, 'kept')")
    run = upsert(registry, target, DUPLICATED, dedupe="keep_last")
    assert run.card.status == "succeeded", step(run, "write").error
    assert target.rows() == [(1, "c"), (2, "b"), (3, "d"), (9, "kept")]
    assert rows_written_metrics(run, "write") == [3]


def test_keep_last_follows_input_order_across_a_streamed_input(registry: ComponentRegistry, target: Target) -> None:
    run = upsert(registry, target, MANY, dedupe="keep_last")
    assert run.card.status == "succeeded", step(run, "write").error
    rows = target.rows()
    assert len(rows) == 1000
    assert all(n == 299000 + key and v == str(n) for key, v, n in rows)
    assert rows_written_metrics(run, "write") == [1000]


def test_dedupe_with_another_write_mode_is_refused_at_compile_time(registry: ComponentRegistry,
                                                                   target: Target) -> None:
    from osiris_core.errors import CompileError

    steps = [{"id": "gen", "component": "duckdb.processor", "mode": "transform", "config": {"query": DUPLICATED}},
             target.step("write", "gen", dedupe="keep_last")]
    with pytest.raises(CompileError, match="dedupe is not allowed when write_mode"):
        run_pipeline(registry, target.project, steps, connections=target.connections())


def test_duplicate_keys_with_delete_missing_leave_the_table_as_it_was(registry: ComponentRegistry,
                                                                      target: Target) -> None:
    """PostgreSQL finds the duplicate in the merge, after delete_missing ran: both are undone."""
    target.create("id INTEGER PRIMARY KEY, v VARCHAR(10)", "(1, 'old'), (9, 'kept')")
    run = upsert(registry, target, DUPLICATED, delete_missing="hard")
    card = step(run, "write")
    assert card.status == "failed" and card.error is not None
    assert "more than one input row has the key id = 1" in card.error
    assert target.rows() == [(1, "old"), (9, "kept")]


@pytest.mark.parametrize("query", ["SELECT * FROM (VALUES (1), (2), (1)) t(id)",
                                   "SELECT * FROM (VALUES (1, 'a', false), (1, 'b', true)) t(id, v, gone)"],
                         ids=["key columns only", "hard_delete_column"])
def test_duplicate_keys_are_refused_where_the_merge_would_not_notice(registry: ComponentRegistry, target: Target,
                                                                     query: str) -> None:
    """An upsert that updates no column (DO NOTHING), or whose flagged rows never reach the merge, still refuses a
    key twice."""
    flag = {"hard_delete_column": "gone"} if "gone" in query else {}
    run = upsert(registry, target, query, **flag)
    card = step(run, "write")
    assert card.status == "failed" and card.error is not None
    assert "more than one input row has the key id = 1" in card.error
    assert not target.exists()
