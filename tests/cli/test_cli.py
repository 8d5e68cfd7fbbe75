"""The `osiris` command: exit codes, one-line errors, --json, and every subcommand."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from osiris_cli.main import main
from tests.conftest import REPO_ROOT


@pytest.fixture
def demo(project: Path) -> Path:
    shutil.copytree(REPO_ROOT / "examples", project / "examples")
    return project / "examples/movies_local.yaml"


def test_demo_runs_and_reports_outputs(demo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", str(demo)]) == 0
    out = capsys.readouterr().out
    assert "Status: succeeded (5 succeeded)" in out
    output = Path.cwd() / "output"  # targets are credential-free URIs (osiris_core.targets)
    assert f"Output: write-director-stats-csv wrote 10 rows → {(output / 'director_stats.csv').as_uri()}" in out
    assert (f"Output: write-director-stats-duckdb wrote 10 rows → duckdb://{output / 'osiris.duckdb'}"
            "#main.director_stats") in out
    assert (demo.parent.parent / "output/director_stats.csv").is_file()


def test_compile_then_run_last_compile_with_json(demo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--json", "compile", str(demo)]) == 0
    compiled = json.loads(capsys.readouterr().out)
    assert compiled["steps"][0] == "extract-movies" and compiled["manifest"].endswith("manifest.yaml")
    assert main(["run", "--last-compile", "--json", "--verbose"]) == 0
    captured = capsys.readouterr()
    card = json.loads(captured.out)
    assert card["status"] == "succeeded" and len(card["steps"]) == 5
    assert captured.err.count("step_complete") == 5
    assert main(["run", compiled["manifest"]]) == 0


def test_bad_pipeline_is_one_line_exit_2(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "p.yaml").write_text('oml_version: "0.1.0"\nname: x\nsteps:\n  - id: a\n    component: nope.x\n'
                                    "    mode: read\n")
    assert main(["compile", "p.yaml"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: p.yaml:5:16: unknown component 'nope.x'")
    assert err.count("\n") == 1 and "Traceback" not in err


def test_missing_file_and_nothing_to_run(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "missing.yaml"]) == 2
    assert "missing.yaml: file not found" in capsys.readouterr().err
    assert main(["run"]) == 2
    assert "nothing to run" in capsys.readouterr().err
    assert main(["run", "--last-compile"]) == 2
    assert "no compile recorded" in capsys.readouterr().err


def test_unknown_flag_is_rejected(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["run", "--e2b-cpus", "4"])
    assert info.value.code == 2
    assert "unrecognized arguments: --e2b-cpus" in capsys.readouterr().err


def test_failed_run_exits_1(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "p.yaml").write_text(
        'oml_version: "0.1.0"\nname: x\nsteps:\n'
        "  - {id: a, component: filesystem.csv_extractor, mode: read, config: {path: absent.csv}}\n"
        "  - {id: b, component: filesystem.csv_writer, mode: write, needs: [a], config: {path: o.csv}}\n")
    assert main(["run", "p.yaml"]) == 1
    out = capsys.readouterr().out
    assert "failed" in out and "skipped" in out and "CSV file not found: absent.csv" in out


def test_validate_writes_nothing(demo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(demo)]) == 0
    assert "is valid (5 steps)" in capsys.readouterr().out
    assert not (demo.parent.parent / "logs").exists()


def test_components_list_and_show(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["components", "list", "--json"]) == 0
    names = [c["name"] for c in json.loads(capsys.readouterr().out)]
    assert {"filesystem.csv_extractor", "filesystem.csv_writer", "duckdb.processor", "duckdb.writer"} <= set(names)
    assert main(["components", "show", "duckdb.writer"]) == 0
    assert "write_mode" in capsys.readouterr().out
    assert main(["components", "show", "duckdb.writr"]) == 2
    assert "did you mean 'duckdb.writer'" in capsys.readouterr().err


def test_connections_list_is_masked(project: Path, monkeypatch: pytest.MonkeyPatch,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    (project / "osiris_connections.yaml").write_text(
        "connections:\n  mysql:\n    main:\n      host: h\n      password: hunter2-pw\n      default: true\n"
        "  postgres:\n    x:\n      dsn: postgresql://u:pg-pw-9@h/db\n")
    assert main(["connections", "list"]) == 0
    out = capsys.readouterr().out
    assert "@mysql.main" in out and "hunter2-pw" not in out and "pg-pw-9" not in out
    assert main(["connections", "list", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["connections"]["mysql"]["main"]["password"] == "***"


def test_logs_list_and_show(demo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", str(demo)]) == 0
    capsys.readouterr()
    assert main(["logs", "list", "--json"]) == 0
    sessions = json.loads(capsys.readouterr().out)
    assert [s["kind"] for s in sessions] == ["run", "compile"]
    assert sessions[0]["status"] == "succeeded"
    assert main(["logs", "show", sessions[0]["session"], "--events"]) == 0
    out = capsys.readouterr().out
    assert "Run card" in out and '"event": "run_complete"' in out
    assert main(["logs", "show", sessions[1]["session"]]) == 0
    assert "Compile session" in capsys.readouterr().out
    assert main(["logs", "show", "run_nope"]) == 2


def test_sandbox_flags_are_honoured_or_rejected(demo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for flags, message in [
        (["--e2b-cpu", "4", "--e2b"], "--e2b-cpu is not supported: E2B sizes a sandbox by its template"),
        (["--e2b-mem", "2048", "--sandbox", "local"], "--e2b-mem is not supported"),
        (["--step-timeout", "5"], "--step-timeout applies only to sandbox runs"),
        (["--e2b", "--sandbox", "local"], "--e2b contradicts --sandbox local"),
        (["--sandbox", "local", "--e2b-env", "NOEQUALS"], "--e2b-env 'NOEQUALS' is not K=V"),
        (["--sandbox", "local", "--e2b-timeout", "0"], "--e2b-timeout must be positive"),
    ]:
        assert main(["run", str(demo), *flags]) == 2, flags
        assert message in capsys.readouterr().err, flags
    assert main(["parity", str(demo), "--e2b-cpu", "2"]) == 2
    assert "--e2b-cpu is not supported" in capsys.readouterr().err


def test_unusable_paths_and_values_are_bad_input(demo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", str(demo), "--sandbox", "local", "--step-timeout", "-1"]) == 2
    assert "--step-timeout -1.0 is not a positive number of seconds" in capsys.readouterr().err
    assert main(["run", str(demo), "--logs-dir", "/proc/osiris-nope"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err
    with pytest.raises(SystemExit) as info:
        main(["sandbox", "serve", "--port", "99999"])
    assert info.value.code == 2
    assert "99999 is not a TCP port" in capsys.readouterr().err


def test_a_reader_that_stops_early_is_no_error_and_no_message(project: Path) -> None:
    """`osiris components list | grep -q x` under `set -o pipefail` must not print a misleading path error."""
    import os
    import subprocess
    import sys

    import osiris_cli.main  # Pants: the subprocess runs this module

    code_roots = [str(Path(osiris_cli.main.__file__).resolve().parents[1]), str(REPO_ROOT)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(code_roots + [p for p in sys.path if os.path.isabs(p)])}
    child = subprocess.Popen([sys.executable, "-c", "from osiris_cli.main import run; run()", "components", "list"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    assert child.stdout is not None and child.stderr is not None
    child.stdout.close()  # the reader is gone before the first line is written
    stderr = child.stderr.read().decode()
    assert (child.wait(timeout=60), stderr) == (141, "")
