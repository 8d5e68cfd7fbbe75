"""A query the database fails while its rows stream (ConnectorX panics in its writer thread) is reported with the
database's own message, not as a value without an Arrow form, and without a Rust backtrace on the terminal (even
with RUST_BACKTRACE=1 in the environment). Real CLI runs in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT
from tests.endstates.test_extract_interrupts import write_connections
from tests.support.databases import MySQLDatabase, PostgresDatabase

FAILING = {
    # 70,000 rows stream before the subquery returns two rows for one of them.
    "mysql": ("SELECT s.seq AS id, (SELECT t.seq FROM seq_1_to_3 t WHERE t.seq > 1 AND s.seq > 70000) AS x "
              "FROM seq_1_to_100000 s", "ERROR 1242 (21000): Subquery returns more than 1 row"),
    "postgres": ("SELECT i AS id, 1 / (i - 70000) AS x FROM generate_series(1, 100000) i",
                 "division by zero (SQLSTATE 22012)"),
}


@pytest.mark.parametrize("family", sorted(FAILING))
def test_a_query_failing_mid_stream_names_the_database_error(project: Path, mysql_db: MySQLDatabase,
                                                             pg_db: PostgresDatabase, family: str) -> None:
    write_connections(project, mysql_db, pg_db)
    query, said = FAILING[family]
    steps = [{"id": "ext", "component": f"{family}.extractor", "mode": "read",
              "config": {"connection": f"@{family}.test", "query": query}},
             {"id": "out", "component": "filesystem.csv_writer", "mode": "write", "needs": ["ext"],
              "config": {"path": "out.csv"}}]
    (project / "p.yaml").write_text(json.dumps({"oml_version": "0.1.0", "name": "fails", "steps": steps}))
    env = {**os.environ, "PYTHONPATH": f"{REPO_ROOT / 'src/python'}{os.pathsep}{REPO_ROOT}", "RUST_BACKTRACE": "1"}
    run = subprocess.run([sys.executable, "-m", "osiris_cli.main", "run", "p.yaml"], cwd=project, env=env,
                         capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 1, run.stdout + run.stderr
    session = sorted((project / "logs").glob("run_*"))[-1]
    error = json.loads((session / "run_card.json").read_text(encoding="utf-8"))["error"]
    assert "failed the query while its rows streamed" in error and said in error, error
    assert "Arrow form" not in error and "TIME must lie" not in error
    assert "stack backtrace" not in run.stderr and "rust_begin_unwind" not in run.stderr, run.stderr
    assert "panicked" not in run.stderr and "RUST_BACKTRACE" not in run.stderr, run.stderr
    assert "Error: step 'ext'" in run.stdout + run.stderr
    assert "Traceback" not in run.stderr
