"""The policies through the real compiler and runner: a CSV full extract into duckdb.writer with scd2 and
delete_missing, twice; the run card's rows_out and the policy metrics in metrics.jsonl."""

from __future__ import annotations

from pathlib import Path

import duckdb

from osiris_core.registry import ComponentRegistry
from tests.support.runs import assert_succeeded, extract_csv, metrics, run_pipeline, step


def load(registry: ComponentRegistry, project: Path, csv_text: str) -> dict[str, int]:
    (project / "dim.csv").write_text(csv_text, encoding="utf-8")
    run = run_pipeline(registry, project, [
        extract_csv("read", "dim.csv"),
        {"id": "write", "component": "duckdb.writer", "mode": "write", "needs": ["read"],
         "config": {"path": "wh.duckdb", "table": "dim", "write_mode": "scd2", "primary_key": ["id"],
                    "delete_missing": "hard"}},
    ])
    assert_succeeded(run)
    found = {m["metric"]: m["value"] for m in metrics(run) if m["step_id"] == "write" and m["metric"] != "duration_ms"}
    assert step(run, "write").rows_out == found["rows_written"]
    return found


def test_scd2_run_reports_versions_written_and_closed(registry: ComponentRegistry, project: Path) -> None:
    assert load(registry, project, "id,name\n1,a\n2,b\n") == {"rows_written": 2, "rows_closed": 0}
    assert load(registry, project, "id,name\n1,a2\n3,c\n") == {"rows_written": 2, "rows_closed": 2}
    with duckdb.connect(str(project / "wh.duckdb"), read_only=True) as con:
        current = con.execute("SELECT id, name FROM dim WHERE _osiris_valid_to IS NULL ORDER BY id").fetchall()
        assert current == [(1, "a2"), (3, "c")]
        assert con.execute("SELECT count(*) FROM dim").fetchone() == (4,)
