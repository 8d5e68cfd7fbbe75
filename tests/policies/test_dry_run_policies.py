"""`osiris run --dry-run` (TableWriter.dry_run) says what the new modes and policies would do; nothing changes."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa

from osiris_drivers.duckdb.writer.driver import DuckDBTableWriter, DuckDBWriterConfig
from osiris_drivers.sql.writer import planned_input
from tests.policies.conftest import Target
from tests.support.runs import Recorder


def plan_detail(path: Path, columns: list[str], **config: object) -> tuple[str | None, str]:
    model = DuckDBWriterConfig.model_validate({"path": str(path), "table": "dim", **config})
    writer = DuckDBTableWriter("plan", model, planned_input(columns), Recorder().context(path.parent))
    plan = writer.dry_run("duckdb://dim", input_known=True)
    return plan.action, plan.detail


def test_dry_run_describes_scd2_schema_changes_and_deletions(duckdb_target: Target) -> None:
    path = Path(duckdb_target.base["path"])
    duckdb_target.write("dim", pa.table({"id": [1], "v": ["a"]}), write_mode="scd2", primary_key=["id"])
    action, detail = plan_detail(path, ["id", "v", "extra"], write_mode="scd2", primary_key=["id"],
                                 delete_missing="soft", hard_delete_column="gone")
    assert action == "scd2"
    assert "changed rows close their current version and get a new one (by ['id'])" in detail
    assert "on_schema_change append_new_columns adds extra" in detail
    assert "delete_missing soft closes their current version" in detail
    assert "input rows with gone true: their keys closed" in detail
    with duckdb.connect(str(path)) as con:  # nothing was added
        assert "extra" not in [r[0] for r in con.execute("DESCRIBE dim").fetchall()]
    action, detail = plan_detail(path.parent / "other.duckdb", ["id"], write_mode="upsert", primary_key=["id"],
                                 delete_missing="hard")
    assert action == "create" and "keys missing from the input: delete_missing hard deletes them" in detail
