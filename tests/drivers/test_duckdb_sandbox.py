"""`duckdb.processor` SQL reaches only the step's inputs unless the pipeline opts in, visibly."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from osiris_core.compiler import compile_file
from osiris_core.connections import Connections
from osiris_core.registry import ComponentRegistry
from tests.support.runs import assert_succeeded, extract_csv, failed_error, run_pipeline, write_csv

SECRET = "db_password=hunter2-from-a-host-file"


@pytest.fixture
def host_file(tmp_path: Path) -> Path:
    """A host file the pipeline author should not be able to read through SQL (think ~/.aws/credentials)."""
    path = tmp_path / "host" / "credentials.csv"
    path.parent.mkdir()
    path.write_text(f"line\n{SECRET}\n", encoding="utf-8")
    return path


def process(query: str, needs: list[str] | None = None, **config: Any) -> dict[str, Any]:
    return {"id": "sql", "component": "duckdb.processor", "mode": "transform", "needs": needs or [],
            "config": {"query": query, **config}}


@pytest.fixture
def rows(project: Path) -> dict[str, Any]:
    (project / "rows.csv").write_text("id\n1\n2\n", encoding="utf-8")
    return extract_csv("rows", str(project / "rows.csv"))


def attacks(host_file: Path, project: Path) -> dict[str, str]:
    return {
        "read_text /etc/passwd": "SELECT content FROM read_text('/etc/passwd')",
        "read_csv /etc/passwd": "SELECT * FROM read_csv('/etc/passwd', header = false)",
        "read_csv host file": f"SELECT * FROM read_csv('{host_file}')",
        "read_blob": f"SELECT content::VARCHAR AS c FROM read_blob('{host_file}')",
        "glob": "SELECT file FROM glob('/etc/*')",
        "url": "SELECT * FROM read_csv('http://127.0.0.1:9/x.csv')",
        "copy to": f"COPY (SELECT 'exfiltrated' AS x) TO '{project / 'leak.csv'}'",
        "attach": f"ATTACH '{project / 'other.duckdb'}' AS other",
        "install": "INSTALL httpfs",
        "load": "LOAD httpfs",
        "set": "SET enable_external_access = true; SELECT content FROM read_text('/etc/passwd')",
        "reset": "RESET enable_external_access; SELECT content FROM read_text('/etc/passwd')",
        "unlock": "SET lock_configuration = false; SELECT 1 AS x",
        "memory": "SET memory_limit = '64GB'; SELECT 1 AS x",
    }


@pytest.mark.parametrize("attack", ["read_text /etc/passwd", "read_csv /etc/passwd", "read_csv host file",
                                    "read_blob", "glob", "url", "copy to", "attach", "install", "load", "set",
                                    "reset", "unlock", "memory"])
def test_sql_cannot_reach_outside_its_inputs_by_default(registry: ComponentRegistry, project: Path,
                                                        host_file: Path, attack: str) -> None:
    run = run_pipeline(registry, project, [process(attacks(host_file, project)[attack])])
    error = failed_error(run, "sql")
    assert "SQL failed" in error and "allow_external_access: true" in error
    assert not (project / "leak.csv").exists() and not (project / "other.duckdb").exists()
    logs = "\n".join(p.read_text(errors="replace") for p in (project / "logs").rglob("*") if p.is_file())
    assert "hunter2" not in logs and "root:x:0:0" not in logs


@pytest.mark.parametrize("query", ["SELECT i.id, t.content FROM input_df i, read_text('/etc/passwd') t",
                                   "SELECT * FROM rows UNION ALL SELECT 1 FROM '/etc/passwd'"])
def test_sql_over_inputs_cannot_join_host_files(registry: ComponentRegistry, project: Path, rows: dict[str, Any],
                                                query: str) -> None:
    run = run_pipeline(registry, project, [rows, process(query, ["rows"]), write_csv("out", "sql", "out.csv")])
    assert "SQL failed" in failed_error(run, "sql")
    assert not (project / "out.csv").exists()


def test_an_explicit_opt_in_allows_it_and_shows_in_the_compiled_config(
        registry: ComponentRegistry, project: Path, host_file: Path) -> None:
    steps = [process(f"SELECT line FROM read_csv('{host_file}')", allow_external_access=True),
             write_csv("out", "sql", "out.csv"),
             {**process(f"COPY (SELECT 42 AS x) TO '{project / 'copied.csv'}'", allow_external_access=True),
              "id": "copy"}]
    run = run_pipeline(registry, project, steps)
    assert_succeeded(run)
    assert (project / "out.csv").read_text(encoding="utf-8").splitlines() == ["line", SECRET]
    assert (project / "copied.csv").read_text(encoding="utf-8").splitlines() == ["x", "42"]
    compiled = compile_file(project / "test.yaml", registry, Connections(None), project / "logs")
    assert compiled.manifest_path is not None
    config = json.loads((compiled.manifest_path.parent / "cfg" / "sql.json").read_text(encoding="utf-8"))
    assert config["allow_external_access"] is True


def test_inputs_streams_and_spilling_still_work_when_confined(registry: ComponentRegistry, project: Path,
                                                              rows: dict[str, Any]) -> None:
    """Registered Arrow inputs (a stream read twice is staged in a temp table) and a sort that must spill past
    memory_limit into the step's temporary folder."""
    query = ("SELECT (SELECT count(*) FROM input_df) AS n, (SELECT sum(id) FROM rows) AS s, "
             "(SELECT count(*) FROM (SELECT range AS x, md5(range::VARCHAR) AS h FROM range(3000000) ORDER BY h)) "
             "AS sorted")
    run = run_pipeline(registry, project, [rows, process(query, ["rows"], memory_limit="64MB"),
                                           write_csv("out", "sql", "out.csv")])
    assert_succeeded(run)
    assert (project / "out.csv").read_text(encoding="utf-8").splitlines() == ["n,s,sorted", "2,3,3000000"]
