"""Compiler and run engine end to end: determinism, secrets, events, failures and fingerprints."""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path

import pytest
import yaml

from osiris_core.compiler import compile_file
from osiris_core.connections import Connections
from osiris_core.errors import CompileError, SpecError
from osiris_core.events import EVENT_NAMES
from osiris_core.execution import ExecutionSettings
from osiris_core.fingerprint import run_fingerprint
from osiris_core.manifest import load_compiled
from osiris_core.registry import Component, ComponentRegistry
from osiris_core.runner import LocalExecutor, RunResult
from osiris_core.spec import parse_spec
from osiris_drivers.registry import builtin_components
from tests.conftest import REPO_ROOT
from tests.support.components import PROBE_SPEC, ProbeDriver, probe_component

SECRET = "sup3r-s3cret-pw"


@pytest.fixture
def probe_registry() -> ComponentRegistry:
    return ComponentRegistry([*builtin_components(), probe_component()])


@pytest.fixture
def connections(project: Path, monkeypatch: pytest.MonkeyPatch) -> Connections:
    monkeypatch.setenv("TESTDB_PASSWORD", SECRET)
    path = project / "osiris_connections.yaml"
    path.write_text(textwrap.dedent("""\
        connections:
          testdb:
            main:
              host: db.example
              user: alice
              password: ${TESTDB_PASSWORD}
              default: true
        """), encoding="utf-8")
    return Connections.load(path)


def probe_pipeline(project: Path, *, fail_with: str | None = None) -> Path:
    probe_config: dict[str, object] = {"connection": "@testdb", "rows": 3}
    if fail_with is not None:
        probe_config["fail_with"] = fail_with
    pipeline = {
        "oml_version": "0.1.0",
        "name": "probe",
        "steps": [
            # Deliberately out of order: execution follows `needs`, not file order.
            {"id": "write", "component": "filesystem.csv_writer", "mode": "write", "needs": ["count"],
             "config": {"path": "out/probe.csv"}},
            {"id": "count", "component": "duckdb.processor", "mode": "transform", "needs": ["probe"],
             "config": {"query": "select host, count(*) as n from input_df group by host"}},
            {"id": "probe", "component": "test.probe", "mode": "read", "config": probe_config},
        ],
    }
    path = project / "probe.yaml"
    path.write_text(yaml.safe_dump(pipeline, sort_keys=False), encoding="utf-8")
    return path


def run(path: Path, registry: ComponentRegistry, connections: Connections, logs: Path) -> RunResult:
    result = compile_file(path, registry, connections, logs)
    assert result.manifest_path is not None
    return LocalExecutor(ExecutionSettings(registry, connections, logs)).run(load_compiled(result.manifest_path))


def read_jsonl(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def all_text_under(root: Path) -> str:
    return "\n".join(p.read_text(encoding="utf-8", errors="replace") for p in root.rglob("*") if p.is_file())


def test_compiling_twice_gives_identical_bytes(project: Path, registry: ComponentRegistry) -> None:
    shutil.copytree(REPO_ROOT / "examples", project / "examples")
    first = compile_file(project / "examples/movies_local.yaml", registry, Connections(None), project / "logs")
    second = compile_file(project / "examples/movies_local.yaml", registry, Connections(None), project / "logs")
    assert first.session_dir != second.session_dir
    assert first.session_dir is not None and second.session_dir is not None
    files = sorted(p.relative_to(first.session_dir) for p in (first.session_dir / "compiled").rglob("*")
                   if p.is_file() and p.name != "meta.json")
    assert len(files) == 1 + 5  # manifest + one cfg per step
    for relative in files:
        assert (first.session_dir / relative).read_bytes() == (second.session_dir / relative).read_bytes()
    manifest = load_compiled(first.session_dir / "compiled/manifest.yaml").manifest
    assert manifest.fingerprints.driver_code_sha256 == run_fingerprint(s.driver for s in manifest.steps)
    assert set(manifest.fingerprints.specs) == {s.component for s in manifest.steps}
    assert (project / "logs/last_compile").read_text().strip().endswith("compiled/manifest.yaml")


def test_steps_run_in_dependency_order_with_counts(project: Path, probe_registry: ComponentRegistry,
                                                   connections: Connections) -> None:
    result = run(probe_pipeline(project), probe_registry, connections, project / "logs")
    assert result.exit_code == 0, result.card.error
    assert [s.step_id for s in result.card.steps] == ["probe", "count", "write"]
    rows = {s.step_id: (s.status, s.rows_in, s.rows_out) for s in result.card.steps}
    assert rows == {"probe": ("succeeded", 0, 3), "count": ("succeeded", 3, 1), "write": ("succeeded", 1, 1)}
    assert (project / "out/probe.csv").read_text() == "host,n\ndb.example,3\n"


def test_no_secret_reaches_any_file(project: Path, probe_registry: ComponentRegistry,
                                    connections: Connections) -> None:
    result = run(probe_pipeline(project), probe_registry, connections, project / "logs")
    assert result.exit_code == 0
    assert SECRET not in all_text_under(project / "logs")
    cleaned = json.loads((result.session.path / "artifacts/probe/cleaned_config.json").read_text())
    assert cleaned == {"host": "db.example", "user": "alice", "password": "***", "rows": 3}
    events = read_jsonl(result.session.path / "events.jsonl")
    probe_event = next(e for e in events if e["event"] == "probe_connected")
    assert probe_event["dsn"] == "testdb://alice:***@db.example/x"


def test_failure_stops_the_run_and_masks_the_error(project: Path, probe_registry: ComponentRegistry,
                                                   connections: Connections) -> None:
    path = probe_pipeline(project, fail_with="login refused for password {password}")
    result = run(path, probe_registry, connections, project / "logs")
    assert result.exit_code == 1
    assert result.card.status == "failed"
    assert [s.status for s in result.card.steps] == ["failed", "skipped", "skipped"]
    assert result.card.steps[0].error == "step 'probe': login refused for password ***"
    assert result.card.steps[0].error_type == "DriverError"
    events = read_jsonl(result.session.path / "events.jsonl")
    failed = next(e for e in events if e["event"] == "step_failed")
    assert "Traceback" in str(failed["traceback"]) and failed["error_type"] == "DriverError"
    assert [e["step_id"] for e in events if e["event"] == "step_skipped"] == ["count", "write"]
    assert SECRET not in all_text_under(project / "logs")
    assert not (project / "out/probe.csv").exists()
    status = json.loads((result.session.path / "status.json").read_text())
    assert status["status"] == "failed" and status["exit_code"] == 1


def test_event_vocabulary_and_metrics(project: Path, probe_registry: ComponentRegistry,
                                      connections: Connections) -> None:
    result = run(probe_pipeline(project), probe_registry, connections, project / "logs")
    events = read_jsonl(result.session.path / "events.jsonl")
    names = [e["event"] for e in events]
    assert names[0] == "run_start" and names[1] == "drivers_registered" and names[-1] == "run_complete"
    assert names.count("step_start") == 3 and names.count("step_complete") == 3
    assert {n for n in names if n in EVENT_NAMES} == {
        "run_start", "drivers_registered", "step_start", "step_complete", "step_counted", "run_complete"}
    # `count` streams its output: step_complete cannot know its rows, step_counted brings them once they were read.
    complete = next(e for e in events if e["event"] == "step_complete" and e["step_id"] == "count")
    assert complete["streaming"] is True and complete["rows_out"] is None
    counted = [e for e in events if e["event"] == "step_counted"]
    assert [(e["step_id"], e["rows_in"], e["rows_out"]) for e in counted] == [("count", 3, 1)]
    assert names.index("step_counted") > len(names) - 3
    registered = events[1]
    assert registered["driver_code_sha256"] == run_fingerprint(
        probe_registry.get(name).spec.driver for name in ("test.probe", "duckdb.processor", "filesystem.csv_writer"))
    assert registered["drivers"] == {
        "duckdb.processor": "osiris_drivers.duckdb.processor.driver:DuckDBProcessor",
        "filesystem.csv_writer": "osiris_drivers.filesystem.csv_writer.driver:CsvWriter",
        "test.probe": "tests.support.components:ProbeDriver",
    }
    assert all(e["session"] == result.session.id for e in events)
    metrics = read_jsonl(result.session.path / "metrics.jsonl")
    assert metrics and all(m["step_id"] in {"probe", "count", "write"} for m in metrics)
    assert {"metric": "rows_written", "value": 1} in [{"metric": m["metric"], "value": m["value"]}
                                                      for m in metrics if m["step_id"] == "write"]
    card = json.loads((result.session.path / "run_card.json").read_text())
    assert card["steps"][2] == {"step_id": "write", "component": "filesystem.csv_writer",
                                "driver": "osiris_drivers.filesystem.csv_writer.driver:CsvWriter",
                                "status": "succeeded", "rows_in": 1, "rows_out": 1,
                                "duration_ms": card["steps"][2]["duration_ms"], "error": None, "error_type": None,
                                "output_sha256": None, "attempts": 1, "incremental": None}


def test_manifest_from_other_driver_code_is_refused(project: Path, probe_registry: ComponentRegistry,
                                                    connections: Connections) -> None:
    compiled = compile_file(probe_pipeline(project), probe_registry, connections, project / "logs")
    assert compiled.manifest_path is not None
    text = compiled.manifest_path.read_text()
    real = compiled.manifest.fingerprints.driver_code_sha256
    compiled.manifest_path.write_text(text.replace(real, "f" * 64))
    result = LocalExecutor(ExecutionSettings(probe_registry, connections, project / "logs")).run(
        load_compiled(compiled.manifest_path))
    assert result.exit_code == 2
    assert all(s.status == "skipped" for s in result.card.steps)
    assert result.card.error is not None and "driver code fingerprint" in result.card.error
    assert "recompile" in result.card.error


def test_missing_connections_file_is_a_located_compile_error(project: Path,
                                                             probe_registry: ComponentRegistry) -> None:
    with pytest.raises(CompileError) as info:
        compile_file(probe_pipeline(project), probe_registry, Connections(None), project / "logs")
    assert "no osiris_connections.yaml was found" in info.value.message
    assert info.value.location is not None and info.value.location.line is not None


def test_wrong_connection_family(project: Path, probe_registry: ComponentRegistry,
                                 connections: Connections) -> None:
    path = probe_pipeline(project)
    path.write_text(path.read_text().replace("'@testdb'", "'@mysql.main'"))
    with pytest.raises(CompileError, match="needs a 'testdb' connection"):
        compile_file(path, probe_registry, connections, project / "logs")


def test_spec_and_driver_must_agree(project: Path, connections: Connections) -> None:
    extra_key = PROBE_SPEC.replace("    rows: {type: integer, minimum: 0, default: 1}",
                                   "    rows: {type: integer}\n    colour: {type: string}")
    component = Component(spec=parse_spec(extra_key, origin="probe.yaml"), driver=ProbeDriver)
    with pytest.raises(SpecError, match=r"spec declares \['colour'\] that the driver does not accept"):
        component.check_agreement()
    registry = ComponentRegistry([*builtin_components(), component])
    with pytest.raises(CompileError) as info:
        compile_file(probe_pipeline(project), registry, connections, project / "logs")
    assert info.value.location is not None and info.value.location.line is not None


def test_entry_point_components_are_discovered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An installed distribution (a .dist-info on sys.path) declaring the entry point adds its components."""
    dist_info = tmp_path / "osiris_probe_plugin-1.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: osiris-probe-plugin\nVersion: 1.0\n")
    (dist_info / "entry_points.txt").write_text(
        "[osiris.components]\nprobe = tests.support.components:probe_components\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = ComponentRegistry(builtin_components())
    assert "test.probe" not in registry
    registry.load_entry_points()
    assert "test.probe" in registry
    assert registry.get("test.probe").driver is ProbeDriver


def _run_steps(project: Path, registry: ComponentRegistry, steps: list[dict[str, object]], *,
               checksums: bool = False) -> RunResult:
    path = project / "p.yaml"
    path.write_text(yaml.safe_dump({"oml_version": "0.1.0", "name": "p", "steps": steps}))
    compiled = compile_file(path, registry, Connections(None), project / "logs")
    assert compiled.manifest_path is not None
    settings = ExecutionSettings(registry, Connections(None), project / "logs", checksums=checksums)
    return LocalExecutor(settings).run(load_compiled(compiled.manifest_path))


def test_checksums_cover_nested_columns(project: Path, registry: ComponentRegistry) -> None:
    steps: list[dict[str, object]] = [
        {"id": "lists", "component": "duckdb.processor", "mode": "transform",
         "config": {"query": "SELECT i % 2 AS k, list(i ORDER BY i) AS xs, {'a': max(i)} AS s "
                             "FROM range(10) t(i) GROUP BY k ORDER BY k"}},
        {"id": "out", "component": "duckdb.writer", "mode": "write", "needs": ["lists"],
         "config": {"path": "o.duckdb", "table": "t"}}]
    first = _run_steps(project, registry, steps, checksums=True)
    second = _run_steps(project, registry, steps, checksums=True)
    assert first.exit_code == 0, first.card.error
    assert first.card.steps[0].output_sha256 is not None
    assert first.card.steps[0].output_sha256 == second.card.steps[0].output_sha256


def test_a_stream_that_breaks_is_blamed_on_the_step_that_produced_it(project: Path,
                                                                      registry: ComponentRegistry) -> None:
    with (project / "big.csv").open("w") as handle:
        handle.write("n,label\n")
        handle.writelines(f"{i},row {i}\n" for i in range(700_000))  # past the extractor's 8 MiB first block
        handle.write("oops,bad\n")
    result = _run_steps(project, registry, [
        {"id": "ext", "component": "filesystem.csv_extractor", "mode": "read", "config": {"path": "big.csv"}},
        {"id": "sum", "component": "duckdb.processor", "mode": "transform", "needs": ["ext"],
         "config": {"query": "SELECT sum(n) AS total FROM input_df"}}])
    assert result.exit_code == 1
    assert [s.status for s in result.card.steps] == ["failed", "failed"]
    assert result.card.steps[1].error == "step 'sum': upstream step 'ext' failed — see the error of step 'ext'"
    error = result.card.steps[0].error or ""
    assert error.startswith("step 'ext': cannot parse big.csv: In CSV column #0: CSV conversion error to int64: "
                            "invalid value 'oops'")
    assert "Traceback" not in error
