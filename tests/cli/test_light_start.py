"""`osiris --help` and `--version` start without the heavy libraries: no pyarrow, DuckDB, pydantic or client.

A behaviour test (which modules a fresh interpreter loaded), not a timing test: speed lives in `bench/`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import osiris_cli.main  # Pants: the subprocess runs this module

REPO_ROOT = Path(__file__).resolve().parents[2]

HEAVY = ("pyarrow", "duckdb", "pydantic", "pydantic_core", "psycopg2", "pymysql", "connectorx", "jsonschema",
         "numpy", "pandas", "rich", "mcp", "e2b", "httpx", "supabase", "postgrest", "osiris_drivers")
"""Top-level packages `--help` / `--version` must not import (drivers, clients, Arrow, validation)."""

PROBE = """
import json, sys
from osiris_cli.main import main
try:
    main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
else:
    code = None
print(json.dumps({"code": code, "modules": sorted({name.split(".")[0] for name in sys.modules})}), file=sys.stderr)
"""


def _loaded_by(*argv: str, cwd: Path | None = None) -> tuple[int | None, set[str]]:
    code_roots = [str(Path(osiris_cli.main.__file__).resolve().parents[1]), str(REPO_ROOT)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(code_roots + [p for p in sys.path if os.path.isabs(p)])}
    done = subprocess.run([sys.executable, "-c", PROBE, *argv], capture_output=True, text=True, env=env,
                          timeout=120, check=False, cwd=cwd)
    report = json.loads(done.stderr.strip().splitlines()[-1])
    return report["code"], set(report["modules"])


@pytest.mark.parametrize("argv", [["--help"], ["--version"], ["run", "--help"], ["logs", "list", "--help"]])
def test_help_and_version_import_no_heavy_library(argv: list[str]) -> None:
    code, modules = _loaded_by(*argv)
    assert code == 0
    assert "osiris_cli" in modules  # the probe saw the CLI's own imports
    assert sorted(modules.intersection(HEAVY)) == []


def test_a_command_that_needs_the_drivers_still_loads_them() -> None:
    """The probe can see a heavy import: `components list` needs the registry and its drivers."""
    code, modules = _loaded_by("components", "list")
    assert code is None  # main returned normally (exit 0 via the caller)
    assert {"osiris_drivers", "pydantic"} <= modules


RUN_PROBE = """
import json, sys
from osiris_cli.main import main
code = main(sys.argv[1:])
print(json.dumps({"code": code, "modules": sorted({name.split(".")[0] for name in sys.modules}),
                  "drivers": sorted(name for name in sys.modules if name.endswith(".driver")
                                    and name.startswith("osiris_drivers."))}), file=sys.stderr)
"""


def test_the_embedded_demo_imports_only_the_drivers_it_uses(tmp_path: Path) -> None:
    """`osiris run examples/movies_local.yaml` (CSV + DuckDB) loads no database client and no other driver."""
    import shutil

    shutil.copytree(REPO_ROOT / "examples", tmp_path / "examples")
    code_roots = [str(Path(osiris_cli.main.__file__).resolve().parents[1]), str(REPO_ROOT)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(code_roots + [p for p in sys.path if os.path.isabs(p)])}
    done = subprocess.run([sys.executable, "-c", RUN_PROBE, "run", "examples/movies_local.yaml", "--progress", "none"],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300, check=False)
    report = json.loads(done.stderr.strip().splitlines()[-1])
    assert report["code"] == 0, done.stderr
    assert report["drivers"] == ["osiris_drivers.duckdb.processor.driver", "osiris_drivers.duckdb.writer.driver",
                                 "osiris_drivers.filesystem.csv_extractor.driver",
                                 "osiris_drivers.filesystem.csv_writer.driver"]
    assert sorted(set(report["modules"]) & {"psycopg2", "psycopg", "pymysql", "connectorx", "supabase", "postgrest",
                                            "e2b", "mcp"}) == []


def test_compiling_a_duckdb_pipeline_imports_no_duckdb(tmp_path: Path) -> None:
    """Compiling (as a sandbox run's host does before it uploads) needs the components' configs, not DuckDB."""
    pipeline = tmp_path / "p.yaml"
    pipeline.write_text((REPO_ROOT / "examples" / "movies_local.yaml").read_text())
    for name in ("movies.csv", "directors.csv"):
        (tmp_path / "examples" / "data").mkdir(parents=True, exist_ok=True)
        (tmp_path / "examples" / "data" / name).write_text((REPO_ROOT / "examples" / "data" / name).read_text())
    code, modules = _loaded_by("compile", str(pipeline), cwd=tmp_path)
    assert code is None
    assert {"osiris_drivers", "pydantic"} <= modules  # the probe saw the drivers' configs load
    assert "duckdb" not in modules
