"""filesystem.csv_extractor with `incremental`: every file is parsed, the cursor filter runs on the Arrow batches
with the same rules as the SQL filter (inclusive boundary, compound cursors, NULLs, lookback)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.incremental.support import Project, card, pg_write, succeeded


def _steps(proj: Project, path: Path, **incremental: Any) -> list[dict[str, Any]]:
    proj.pg_exec(f"CREATE SCHEMA IF NOT EXISTS {proj.schema}")
    read = {"id": "read", "component": "filesystem.csv_extractor", "mode": "read",
            "config": {"path": str(path), "column_types": {"id": "int64", "at": "timestamp"},
                       "incremental": {"cursor": "at", **incremental}}}
    return [read, pg_write("load", "read", proj.schema, "dst")]


def _ids(proj: Project) -> list[int]:
    return [r[0] for r in proj.pg_exec(f"SELECT id FROM {proj.schema}.dst ORDER BY id")]


def test_csv_rows_from_the_last_cursor_on_are_passed_on(proj: Project) -> None:
    path = proj.path / "rows.csv"
    path.write_text("id,v,at\n1,a,2024-01-01 00:00:00.000001\n2,b,2024-01-01 00:00:00.000002\n3,n,\n",
                    encoding="utf-8")
    steps = _steps(proj, path)
    first = succeeded(proj.run(steps))
    assert json.loads(card(first, "read").incremental.cursor_after or "") == [  # type: ignore[union-attr]
        ["datetime", "2024-01-01T00:00:00.000002"]]
    with path.open("a", encoding="utf-8") as handle:
        handle.write("4,tie,2024-01-01 00:00:00.000002\n5,old,2023-12-31 00:00:00\n6,new,2024-01-02 00:00:00\n")
    again = succeeded(proj.run(steps))
    inc = card(again, "read").incremental
    assert inc is not None and inc.rows_read == 4  # 2 and 4 (the boundary), 6 (new), 3 (NULL: included)
    assert _ids(proj) == [1, 2, 3, 4, 6]


def test_csv_lookback_and_excluded_nulls(proj: Project) -> None:
    path = proj.path / "rows.csv"
    path.write_text("id,v,at\n1,a,2024-01-01 10:00:00\n2,n,\n", encoding="utf-8")
    steps = _steps(proj, path, lookback=3600, on_null_cursor="exclude")
    succeeded(proj.run(steps))
    with path.open("a", encoding="utf-8") as handle:
        handle.write("3,late,2024-01-01 09:30:00\n4,too late,2024-01-01 08:00:00\n")
    again = succeeded(proj.run(steps))
    assert card(again, "read").incremental.rows_read == 2  # type: ignore[union-attr]
    assert _ids(proj) == [1, 3]
