"""Step retries: `retries: {max, backoff_s}` is validated at compile with a location, applies to transient errors
only, emits `step_retry` per failed attempt, counts attempts on the run card, and gives every attempt the same
input rows (a stream feeding a step with retries is read into a table once)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import yaml

from osiris_cli.main import main
from osiris_core.compiler import compile_file
from osiris_core.connections import Connections
from osiris_core.driver import MAIN_OUTPUT, Driver, DriverConfig, StepContext, StepInputs, StepOutputs
from osiris_core.errors import CompileError, DriverError
from osiris_core.execution import ExecutionSettings
from osiris_core.manifest import load_compiled
from osiris_core.recorder import RunResult
from osiris_core.registry import Component, ComponentRegistry
from osiris_core.runner import LocalExecutor
from osiris_core.spec import parse_spec
from osiris_drivers.registry import builtin_components

FLAKY_SPEC = """
name: test.flaky
version: 1.0.0
description: Reads all its input, then fails the first `fail_times` attempts (test support).
modes: [transform]
driver: tests.core.test_retries:FlakyDriver
config:
  type: object
  additionalProperties: false
  properties:
    fail_times: {type: integer, minimum: 0}
    transient: {type: boolean}
"""


class FlakyConfig(DriverConfig):
    fail_times: int = 0
    transient: bool = True


class FlakyDriver(Driver[FlakyConfig]):
    """Counts its attempts in its artifacts folder; each attempt reads every input row first."""

    config_model = FlakyConfig

    def run(self, *, step_id: str, config: FlakyConfig, inputs: StepInputs, ctx: StepContext) -> StepOutputs:
        counter = ctx.artifacts_dir / "attempts"
        attempt = int(counter.read_text()) + 1 if counter.exists() else 1
        counter.write_text(str(attempt))
        data = next(iter(inputs.values()))
        table = data.read_all() if isinstance(data, pa.RecordBatchReader) else data
        if attempt <= config.fail_times:
            raise DriverError(f"connection reset on attempt {attempt}", step_id=step_id, transient=config.transient)
        return {MAIN_OUTPUT: pa.table({"rows_seen": [table.num_rows]})}


@pytest.fixture
def flaky_registry() -> ComponentRegistry:
    return ComponentRegistry([*builtin_components(),
                              Component(spec=parse_spec(FLAKY_SPEC, origin="tests/core/test_retries.py"),
                                        driver=FlakyDriver)])


def _pipeline(project: Path, retries: Any, **flaky: Any) -> Path:
    (project / "in.csv").write_text("n\n" + "".join(f"{i}\n" for i in range(1000)))
    step: dict[str, Any] = {"id": "flaky", "component": "test.flaky", "mode": "transform", "needs": ["read"],
                            "config": flaky}
    if retries is not None:
        step["retries"] = retries
    path = project / "p.yaml"
    path.write_text(yaml.safe_dump({"oml_version": "0.1.0", "name": "retries", "steps": [
        {"id": "read", "component": "filesystem.csv_extractor", "mode": "read", "config": {"path": "in.csv"}},
        step,
        {"id": "write", "component": "filesystem.csv_writer", "mode": "write", "needs": ["flaky"],
         "config": {"path": "out.csv"}}]}, sort_keys=False))
    return path


def _run(project: Path, registry: ComponentRegistry, path: Path) -> RunResult:
    compiled = compile_file(path, registry, Connections(None), project / "logs")
    assert compiled.manifest_path is not None
    return LocalExecutor(ExecutionSettings(registry, Connections(None), project / "logs")).run(
        load_compiled(compiled.manifest_path))


def _events(result: RunResult, name: str) -> list[dict[str, Any]]:
    lines = (result.session.path / "events.jsonl").read_text().splitlines()
    return [e for e in map(json.loads, lines) if e["event"] == name]


def test_a_transient_error_is_retried_and_every_attempt_reads_the_same_rows(
        project: Path, flaky_registry: ComponentRegistry) -> None:
    result = _run(project, flaky_registry, _pipeline(project, {"max": 2, "backoff_s": 0.01}, fail_times=2))
    assert result.exit_code == 0, result.card.error
    flaky = result.card.steps[1]
    assert (flaky.status, flaky.attempts, flaky.rows_in, flaky.rows_out) == ("succeeded", 3, 1000, 1)
    assert [s.attempts for s in result.card.steps] == [1, 3, 1]
    # The extractor streams; the third attempt still saw all 1000 rows (the stream was read into a table once).
    assert (project / "out.csv").read_text() == "rows_seen\n1000\n"
    retries = _events(result, "step_retry")
    assert [(e["step_id"], e["attempt"], e["delay_s"], e["error_type"]) for e in retries] == [
        ("flaky", 1, 0.01, "DriverError"), ("flaky", 2, 0.02, "DriverError")]
    assert retries[0]["error"] == "step 'flaky': connection reset on attempt 1"


def test_retries_run_out(project: Path, flaky_registry: ComponentRegistry) -> None:
    result = _run(project, flaky_registry, _pipeline(project, {"max": 1}, fail_times=5))
    assert result.exit_code == 1
    flaky = result.card.steps[1]
    assert (flaky.status, flaky.attempts) == ("failed", 2)
    assert flaky.error == "step 'flaky': connection reset on attempt 2"
    assert [e["attempt"] for e in _events(result, "step_retry")] == [1]
    assert [s.status for s in result.card.steps] == ["succeeded", "failed", "skipped"]


@pytest.mark.parametrize("retries", [None, {"max": 3}])
def test_an_error_that_is_not_transient_is_never_retried(project: Path, flaky_registry: ComponentRegistry,
                                                         retries: Any) -> None:
    result = _run(project, flaky_registry, _pipeline(project, retries, fail_times=1, transient=False))
    assert result.exit_code == 1
    assert (result.card.steps[1].status, result.card.steps[1].attempts) == ("failed", 1)
    assert _events(result, "step_retry") == []


def test_without_retries_a_transient_error_fails_the_step(project: Path, flaky_registry: ComponentRegistry) -> None:
    result = _run(project, flaky_registry, _pipeline(project, None, fail_times=1))
    assert (result.card.steps[1].status, result.card.steps[1].attempts) == ("failed", 1)


def test_verbose_prints_each_retry(project: Path, flaky_registry: ComponentRegistry,
                                   capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    import osiris_cli.app

    monkeypatch.setattr(osiris_cli.app, "default_registry", lambda: flaky_registry)
    assert main(["run", str(_pipeline(project, {"max": 1}, fail_times=1)), "--verbose"]) == 0
    err = capsys.readouterr().err
    assert "step_retry    flaky attempt 1 failed, next in 0s: step 'flaky': connection reset on attempt 1" in err


@pytest.mark.parametrize(("retries", "key", "message"), [
    ({"max": -1}, "max", "steps.1.retries.max: Input should be greater than or equal to 0"),
    ({"max": 11}, "max", "steps.1.retries.max: Input should be less than or equal to 10"),
    ({"max": "2"}, "max", "steps.1.retries.max: Input should be a valid integer"),
    ({"max": True}, "max", "steps.1.retries.max: Input should be a valid integer"),
    ({"max": 1, "backoff_s": -0.5}, "backoff_s", "steps.1.retries.backoff_s: Input should be greater than or equal"),
    ({"max": 1, "tries": 3}, "tries", "unknown key 'tries' at steps.1.retries.tries"),
    (3, "retries", "steps.1.retries: Input should be a valid dictionary"),
])
def test_a_bad_retry_policy_is_a_located_compile_error(project: Path, flaky_registry: ComponentRegistry,
                                                       retries: Any, key: str, message: str) -> None:
    path = _pipeline(project, retries)
    line = next(n for n, text in enumerate(path.read_text().splitlines(), 1) if text.strip().startswith(f"{key}:"))
    with pytest.raises(CompileError) as info:
        compile_file(path, flaky_registry, Connections(None), project / "logs")
    assert info.value.message.startswith(message), info.value.message
    assert info.value.location is not None and info.value.location.line == line
    assert info.value.hint is not None and "retries: {max: N (0-10), backoff_s: seconds (0-3600)}" in info.value.hint
    assert not (project / "logs").exists()


def test_the_policy_is_in_the_manifest(project: Path, flaky_registry: ComponentRegistry) -> None:
    compiled = compile_file(_pipeline(project, {"max": 2, "backoff_s": 1}), flaky_registry, Connections(None),
                            project / "logs")
    assert compiled.manifest_path is not None
    steps = load_compiled(compiled.manifest_path).manifest.steps
    assert [(s.retries.max, s.retries.backoff_s) for s in steps] == [(0, 0.0), (2, 1.0), (0, 0.0)]
