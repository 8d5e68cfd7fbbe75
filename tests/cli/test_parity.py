"""`osiris parity` (here and in the local sandbox, through the real e2b SDK): any Arrow type is checksummed, a
pipeline whose writers would change their targets twice is refused unless `--allow-real-targets`, and a failure
in either half leaves a run card in each session."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from osiris_cli.main import main

BLOB_QUERY = ("SELECT id, '\\xFF\\x00'::BLOB AS payload, [id, id + 1] AS pair, {'b': '\\x80'::BLOB} AS nested, "
              "CAST(id AS DECIMAL(38, 4)) AS amount FROM input_df ORDER BY id")


def _pipeline(project: Path, *writers: dict[str, Any], query: str = BLOB_QUERY) -> None:
    (project / "in.csv").write_text("id\n1\n2\n3\n")
    steps = [{"id": "read", "component": "filesystem.csv_extractor", "mode": "read", "config": {"path": "in.csv"}},
             {"id": "shape", "component": "duckdb.processor", "mode": "transform", "needs": ["read"],
              "config": {"query": query, "allow_external_access": True}},
             *({"mode": "write", "needs": ["shape"], **w} for w in writers)]
    (project / "p.yaml").write_text(yaml.safe_dump({"oml_version": "0.1.0", "name": "parity", "steps": steps}))


def _cards(project: Path) -> list[dict[str, Any]]:
    """Every run session's card (each must have one)."""
    sessions = sorted((project / "logs").glob("run_*"))
    return [json.loads((session / "run_card.json").read_text()) for session in sessions]


def _duckdb_rows(path: Path, table: str) -> int:
    import duckdb

    with duckdb.connect(str(path)) as con:
        row = con.execute(f"SELECT count(*) FROM {table}").fetchone()
    assert row is not None
    return int(row[0])


def test_binary_nested_and_decimal_columns_are_checksummed(project: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    """Before: `Invalid UTF8 payload` failed both runs after the writers had run, and parity said 'identical'."""
    _pipeline(project, {"id": "db", "component": "duckdb.writer",
                        "config": {"path": "out.duckdb", "table": "t", "write_mode": "replace"}},
              {"id": "csv", "component": "filesystem.csv_writer", "config": {"path": "out.csv"}})
    assert main(["--json", "parity", "p.yaml"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["identical"] is True and result["differences"] == []
    for card in (result["local"], result["sandbox"]):
        assert card["status"] == "succeeded", card["error"]
        shape = next(s for s in card["steps"] if s["step_id"] == "shape")
        assert shape["rows_out"] == 3 and len(shape["output_sha256"]) == 64
    assert [c["status"] for c in _cards(project)] == ["succeeded", "succeeded"]
    assert _duckdb_rows(project / "out.duckdb", "t") == 3


@pytest.mark.parametrize("writer", [
    {"id": "append-db", "component": "duckdb.writer", "config": {"path": "out.duckdb", "table": "t"}},
    {"id": "append-db", "component": "duckdb.writer",
     "config": {"path": "out.duckdb", "table": "t", "write_mode": "append"}},
], ids=["default-append", "explicit-append"])
def test_a_writer_that_is_not_idempotent_is_refused_before_anything_runs(
        project: Path, capsys: pytest.CaptureFixture[str], writer: dict[str, Any]) -> None:
    """Before: parity ran an append pipeline twice and the table held every row twice."""
    _pipeline(project, writer, {"id": "csv", "component": "filesystem.csv_writer", "config": {"path": "out.csv"}})
    assert main(["parity", "p.yaml"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: parity runs the pipeline twice (here, then in the sandbox) and step "
                            "'append-db' (duckdb.writer, write_mode append) would write to the same target twice")
    assert "--allow-real-targets" in error and error.count("\n") == 1
    assert not (project / "out.duckdb").exists() and not (project / "out.csv").exists()
    assert not list((project / "logs").glob("run_*"))


def test_allow_real_targets_runs_it_twice(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _pipeline(project, {"id": "append-db", "component": "duckdb.writer",
                        "config": {"path": "out.duckdb", "table": "t", "write_mode": "append"}},
              query="SELECT id FROM input_df")
    assert main(["parity", "p.yaml", "--allow-real-targets"]) == 0
    assert "Parity: identical" in capsys.readouterr().out
    assert _duckdb_rows(project / "out.duckdb", "t") == 6  # what the flag allows: both runs appended


def test_a_failure_in_one_half_leaves_a_card_in_each_session(project: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    """`side.csv` exists here but is no declared input, so it is missing in the sandbox: only that half fails."""
    (project / "side.csv").write_text("x\n1\n")
    _pipeline(project, {"id": "csv", "component": "filesystem.csv_writer", "config": {"path": "out.csv"}},
              query="SELECT i.id, s.x FROM input_df AS i, read_csv('side.csv') AS s")
    assert main(["--json", "parity", "p.yaml"]) == 1
    result = json.loads(capsys.readouterr().out)
    assert result["identical"] is False
    assert "status: local 'succeeded' != sandbox 'failed'" in result["differences"]
    local, sandbox = _cards(project)
    assert (local["status"], sandbox["status"]) == ("succeeded", "failed")
    assert [s["status"] for s in sandbox["steps"]] == ["succeeded", "failed", "skipped"]
