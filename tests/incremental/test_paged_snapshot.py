"""A table read in key pages runs one statement per page: a row of an early page updated while later pages are read
must not be skipped by a cursor committed from a later page. The read is bounded to the cursors that existed when
it started, on PostgreSQL and MariaDB."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import pytest

from osiris_core.driver import MAIN_OUTPUT, StepContext
from osiris_core.registry import ComponentRegistry
from osiris_core.state import IncrementalRead
from osiris_drivers.sql import pages
from tests.incremental.support import Project


def _ignore(*args: Any) -> None:
    """No metric or event is recorded."""


@pytest.mark.parametrize("family", ["postgres", "mysql"])
def test_rows_updated_during_a_paged_read_are_read_by_the_next_run(
        proj: Project, registry: ComponentRegistry, monkeypatch: pytest.MonkeyPatch, family: str) -> None:
    monkeypatch.setattr(pages, "PAGE_ROWS", 1)  # one row per page: 20 statements
    if family == "postgres":
        proj.pg_exec(f"CREATE SCHEMA IF NOT EXISTS {proj.schema}")
        sql, table, where = proj.pg_exec, f"{proj.schema}.src", {"schema": proj.schema, "table": "src"}
        fields = {"host": proj.pg.host, "port": proj.pg.port, "database": proj.pg.database, "user": proj.pg.user,
                  "password": proj.pg.password}
    else:
        sql, table = proj.my_exec, f"src_{proj.tag}"
        where, fields = {"table": table}, dict(proj.mysql.fields)
    sql(f"CREATE TABLE {table} (id int PRIMARY KEY, v varchar(20), updated_at int)",
        f"INSERT INTO {table} VALUES " + ", ".join(f"({i}, 'v', {i})" for i in range(1, 21)))
    component = registry.get(f"{family}.extractor")
    config = component.driver.config_model.model_validate(
        {**fields, **where, "incremental": {"cursor": "updated_at"}})
    read = IncrementalRead("read", None)
    ctx = StepContext(session_id="test", artifacts_dir=Path(os.devnull), logger=logging.getLogger("test"),
                      emit_metric=_ignore, emit_event=_ignore, incremental=read)
    reader = component.driver().run(step_id="read", config=config, inputs={}, ctx=ctx)[MAIN_OUTPUT]
    batches = iter(reader)
    seen = next(batches).column("id").to_pylist()
    assert seen == [1]
    # while the later pages are still to be read: row 1 (already read) and row 20 (not yet) change
    sql(f"UPDATE {table} SET v = 'new', updated_at = 21 WHERE id = 1",
        f"UPDATE {table} SET v = 'new', updated_at = 22 WHERE id = 20")
    for batch in batches:
        seen += batch.column("id").to_pylist()
    # row 20's new cursor (22) is past the snapshot's largest (20): the run reads up to 20, so the next run,
    # starting at the committed cursor, reads both changed rows
    assert read.cursor == (19,) and sorted(seen) == list(range(1, 20))
