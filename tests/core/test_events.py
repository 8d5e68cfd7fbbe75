"""Typed events and the run recorder: one vocabulary, one fold, and no way for a component or a foreign stream
to write what only the engine writes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import yaml

from osiris_core.compiler import compile_file
from osiris_core.connections import Connections
from osiris_core.driver import MAIN_OUTPUT, Driver, DriverConfig, StepContext, StepInputs, StepOutputs
from osiris_core.errors import InputError, RunError
from osiris_core.events import (
    ComponentEvent,
    Logged,
    Metric,
    OutputWritten,
    StepComplete,
    StepStart,
    parse_record,
)
from osiris_core.execution import ExecutionSettings
from osiris_core.manifest import CompiledPipeline, load_compiled
from osiris_core.masking import Masker
from osiris_core.recorder import EventOrderError, RunRecorder
from osiris_core.registry import Component, ComponentRegistry
from osiris_core.runner import LocalExecutor
from osiris_core.spec import parse_spec
from osiris_drivers.registry import builtin_components

EMITTER_SPEC = """
name: test.emitter
version: 1.0.0
description: Emits the event it is told to (test support).
modes: [read]
driver: tests.core.test_events:EmitterDriver
config:
  type: object
  additionalProperties: false
  properties:
    event: {type: string}
    fields: {type: object}
"""


class EmitterConfig(DriverConfig):
    event: str
    fields: dict[str, Any] = {}


class EmitterDriver(Driver[EmitterConfig]):
    config_model = EmitterConfig

    def run(self, *, step_id: str, config: EmitterConfig, inputs: StepInputs, ctx: StepContext) -> StepOutputs:
        ctx.event(config.event, **config.fields)
        ctx.output_written("file:///tmp/x.csv", rows=2)
        return {MAIN_OUTPUT: pa.table({"a": [1, 2]})}


@pytest.fixture
def emitter_registry() -> ComponentRegistry:
    component = Component(spec=parse_spec(EMITTER_SPEC, origin="tests/core/test_events.py"), driver=EmitterDriver)
    return ComponentRegistry([*builtin_components(), component])


def _compiled(project: Path, registry: ComponentRegistry, event: str, fields: dict[str, Any]) -> CompiledPipeline:
    path = project / "p.yaml"
    path.write_text(yaml.safe_dump({"oml_version": "0.1.0", "name": "events", "steps": [
        {"id": "emit", "component": "test.emitter", "mode": "read", "config": {"event": event, "fields": fields}},
        {"id": "write", "component": "filesystem.csv_writer", "mode": "write", "needs": ["emit"],
         "config": {"path": "out.csv"}}]}))
    compiled = compile_file(path, registry, Connections(None), project / "logs")
    assert compiled.manifest_path is not None
    return load_compiled(compiled.manifest_path)


def test_listeners_get_typed_events_and_every_written_line_parses_back(
        project: Path, emitter_registry: ComponentRegistry) -> None:
    seen: list[Logged] = []
    settings = ExecutionSettings(emitter_registry, Connections(None), project / "logs", listeners=(seen.append,))
    result = LocalExecutor(settings).run(_compiled(project, emitter_registry, "probed", {"depth": 3}))
    assert result.exit_code == 0, result.card.error
    starts = [x.item for x in seen if isinstance(x.item, StepStart)]
    assert [s.step_id for s in starts] == ["emit", "write"]
    assert any(isinstance(x.item, OutputWritten) and x.item.rows == 2 for x in seen)
    custom = next(x.item for x in seen if isinstance(x.item, ComponentEvent))
    assert (custom.event, custom.step_id, custom.data) == ("probed", "emit", {"depth": 3})
    assert all(x.session == result.session.id for x in seen)
    for name in ("events.jsonl", "metrics.jsonl"):
        records = [json.loads(line) for line in (result.session.path / name).read_text().splitlines()]
        assert [parse_record(r) for r in records] == [x.item for x in seen if x.record in records]


@pytest.mark.parametrize(("event", "fields", "message"), [
    ("step_complete", {}, "'step_complete' is an engine event; a component cannot emit it"),
    ("run_complete", {}, "'run_complete' is an engine event"),
    ("probed", {"step_id": "write"}, "has field(s) ['step_id'], which every record owns"),
    ("probed", {"event": "x"}, "has field(s) ['event']"),
])
def test_a_component_cannot_write_what_only_the_engine_writes(project: Path, emitter_registry: ComponentRegistry,
                                                              event: str, fields: dict[str, Any], message: str) -> None:
    result = LocalExecutor(ExecutionSettings(emitter_registry, Connections(None), project / "logs")).run(
        _compiled(project, emitter_registry, event, fields))
    assert result.exit_code == 1
    step = result.card.steps[0]
    assert step.status == "failed" and step.error_type == "DriverError"
    assert step.error is not None and message in step.error and "\n" not in step.error
    names = [json.loads(x)["event"] for x in (result.session.path / "events.jsonl").read_text().splitlines()]
    assert names.count("step_complete") == 0 and names.count("run_complete") == 1


@pytest.fixture
def recorder(project: Path, emitter_registry: ComponentRegistry) -> Iterator[RunRecorder]:
    compiled = _compiled(project, emitter_registry, "probed", {})
    with RunRecorder.open(project / "logs", Masker(), compiled, driver_code_sha256="0" * 64,
                          execution={"mode": "local"}) as opened:
        yield opened


def _record(event: str, **fields: Any) -> dict[str, Any]:
    return {"ts": "2026-01-01T00:00:00Z", "session": "elsewhere", "event": event, **fields}


@pytest.mark.parametrize(("record", "error", "message"), [
    (_record("step_complete", step_id="emit", rows_in=0, rows_out=1, streaming=False, duration_ms=1),
     EventOrderError, "'step_complete' of step 'emit' while it is pending"),
    (_record("step_start", step_id="nope", component="x.y", driver="m:C"), EventOrderError, "unknown step 'nope'"),
    (_record("step_start", step_id="emit", component="x.y"), ValueError, "driver"),
    (_record("step_counted", step_id="emit", rows_in="many", rows_out=1), ValueError, "rows_in"),
    (_record("run_start", pipeline="p", manifest_dir="d", steps=["other"]), EventOrderError, "not this manifest's"),
    ({"ts": "t", "session": "s", "kind": "nothing"}, ValueError, "without an 'event' or 'metric'"),
    ({"ts": "t", "session": "s", "step_id": "nope", "metric": "m", "value": 1}, EventOrderError, "unknown step"),
])
def test_the_recorder_refuses_a_foreign_record_the_engine_would_not_write(
        recorder: RunRecorder, record: dict[str, Any], error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        recorder.ingest(record)


def test_a_foreign_stream_is_folded_by_the_same_code_and_its_run_complete_is_not_copied(
        recorder: RunRecorder) -> None:
    recorder.ingest(_record("run_start", pipeline="events", manifest_dir="d", steps=["emit", "write"]))
    recorder.ingest(_record("step_start", step_id="emit", component="test.emitter", driver="m:C"))
    recorder.ingest(_record("step_complete", step_id="emit", rows_in=0, rows_out=2, streaming=False, duration_ms=3))
    recorder.ingest({"ts": "t", "session": "s", "step_id": "emit", "metric": "duration_ms", "value": 3})
    recorder.ingest(_record("step_start", step_id="write", component="c.w", driver="m:W"))
    recorder.ingest(_record("step_failed", step_id="write", error="disk full", error_type="DriverError"))
    recorder.ingest(_record("run_complete", status="failed", exit_code=1, duration_ms=5,
                            steps={"succeeded": 1, "failed": 1, "skipped": 0}, error="step 'write': disk full"))
    with pytest.raises(EventOrderError, match="after the run completed"):
        recorder.ingest(_record("step_skipped", step_id="write", reason="late"))
    result = recorder.finish(None)
    assert (result.card.status, result.card.exit_code, result.card.error) == ("failed", 1, "step 'write': disk full")
    assert [(s.status, s.rows_out, s.attempts) for s in result.card.steps] == [("succeeded", 2, 1), ("failed", None, 1)]
    events = [json.loads(x) for x in (result.session.path / "events.jsonl").read_text().splitlines()]
    assert [e["event"] for e in events] == [
        "run_start", "step_start", "step_complete", "step_start", "step_failed", "run_complete"]
    assert {e["session"] for e in events} == {result.session.id}
    assert [e["ts"] for e in events[1:-1]] == ["2026-01-01T00:00:00Z"] * 4, "a foreign record keeps its time"


def test_finish_fails_what_runs_skips_the_rest_and_takes_the_exit_code_from_the_error(
        recorder: RunRecorder) -> None:
    recorder.emit(StepStart(step_id="emit", component="test.emitter", driver="m:C"))
    result = recorder.finish(InputError("bad input", hint="fix it"))
    assert (result.card.status, result.card.exit_code) == ("failed", 2)
    assert [(s.status, s.error_type) for s in result.card.steps] == [("failed", "InputError"), ("skipped", None)]
    with pytest.raises(RuntimeError, match="already finished"):
        recorder.finish(None)


def test_the_recorder_alone_completes_a_run(recorder: RunRecorder) -> None:
    from osiris_core.events import RunComplete

    with pytest.raises(EventOrderError, match="only the run recorder completes a run"):
        recorder.emit(RunComplete(status="succeeded", exit_code=0, duration_ms=1, steps={}))
    with pytest.raises(EventOrderError):
        recorder.emit(StepComplete(step_id="emit", rows_in=0, rows_out=0, streaming=False, duration_ms=0))
    assert recorder.finish(RunError("stopped")).exit_code == 1


def test_metrics_are_typed_too() -> None:
    assert parse_record({"ts": "t", "session": "s", "step_id": "a", "metric": "rows_written", "value": 3}) == \
        Metric(step_id="a", metric="rows_written", value=3)
