"""Progress: `step_progress` is counted where batches flow between steps, said by drivers through
`StepContext.progress`, throttled by time, and accepted by the run recorder only while a step runs or streams."""

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
from osiris_core.driver import MAIN_OUTPUT, Driver, DriverConfig, StepContext, StepInputs, StepOutputs, single_input
from osiris_core.events import ReservedEventError, component_event
from osiris_core.execution import ExecutionSettings
from osiris_core.manifest import CompiledPipeline, load_compiled
from osiris_core.masking import Masker
from osiris_core.recorder import EventOrderError, RunRecorder
from osiris_core.registry import Component, ComponentRegistry
from osiris_core.runner import LocalExecutor, RunResult
from osiris_core.spec import parse_spec
from osiris_drivers.registry import builtin_components

BATCHES_SPEC = """
name: test.batches
version: 1.0.0
description: Streams `batches` record batches of `rows` rows (test support).
modes: [read]
driver: tests.core.test_progress:BatchesDriver
config:
  type: object
  additionalProperties: false
  properties:
    batches: {type: integer}
    rows: {type: integer}
"""

PASSTHROUGH_SPEC = """
name: test.passthrough
version: 1.0.0
description: Returns its input as a lazy stream, read only as its own consumer reads it (test support).
modes: [transform]
driver: tests.core.test_progress:Passthrough
config:
  type: object
  additionalProperties: false
  properties: {}
"""

PHASED_SPEC = """
name: test.phased_writer
version: 1.0.0
description: Reads its input, saying `stage` per batch, then `swap` and `commit` (test support).
modes: [write]
driver: tests.core.test_progress:PhasedWriter
config:
  type: object
  additionalProperties: false
  properties:
    say: {type: array}
"""


class BatchesConfig(DriverConfig):
    batches: int
    rows: int


class BatchesDriver(Driver[BatchesConfig]):
    config_model = BatchesConfig

    def run(self, *, step_id: str, config: BatchesConfig, inputs: StepInputs, ctx: StepContext) -> StepOutputs:
        schema = pa.schema([("i", pa.int64()), ("s", pa.string())])

        def batches() -> Iterator[pa.RecordBatch]:
            for n in range(config.batches):
                start = n * config.rows
                yield pa.record_batch([pa.array(range(start, start + config.rows), pa.int64()),
                                       pa.array([f"row {i}" for i in range(start, start + config.rows)])],
                                      schema=schema)

        return {MAIN_OUTPUT: pa.RecordBatchReader.from_batches(schema, batches())}


class Passthrough(Driver[DriverConfig]):
    config_model = DriverConfig

    def run(self, *, step_id: str, config: DriverConfig, inputs: StepInputs, ctx: StepContext) -> StepOutputs:
        data = single_input(step_id, inputs)
        assert isinstance(data, pa.RecordBatchReader)
        return {MAIN_OUTPUT: pa.RecordBatchReader.from_batches(data.schema, (batch for batch in data))}


class PhasedConfig(DriverConfig):
    say: list[Any] | None = None
    """Say only this (phase, rows) instead of the phases."""


class PhasedWriter(Driver[PhasedConfig]):
    config_model = PhasedConfig

    def run(self, *, step_id: str, config: PhasedConfig, inputs: StepInputs, ctx: StepContext) -> StepOutputs:
        if config.say is not None:
            ctx.progress(*config.say)
            return {}
        data = single_input(step_id, inputs)
        assert isinstance(data, pa.RecordBatchReader)
        staged = 0
        for batch in data:
            staged += batch.num_rows
            ctx.progress("stage", rows=staged)
        ctx.progress("swap")
        ctx.progress("commit")
        return {}


@pytest.fixture
def progress_registry() -> ComponentRegistry:
    origin = "tests/core/test_progress.py"
    return ComponentRegistry([*builtin_components(),
                              Component(spec=parse_spec(BATCHES_SPEC, origin=origin), driver=BatchesDriver),
                              Component(spec=parse_spec(PASSTHROUGH_SPEC, origin=origin), driver=Passthrough),
                              Component(spec=parse_spec(PHASED_SPEC, origin=origin), driver=PhasedWriter)])


def _compiled(project: Path, registry: ComponentRegistry, steps: list[dict[str, Any]]) -> CompiledPipeline:
    path = project / "p.yaml"
    path.write_text(yaml.safe_dump({"oml_version": "0.1.0", "name": "progress", "steps": steps}))
    compiled = compile_file(path, registry, Connections(None), project / "logs")
    assert compiled.manifest_path is not None
    return load_compiled(compiled.manifest_path)


def _source(batches: int = 50, rows: int = 1000) -> dict[str, Any]:
    return {"id": "source", "component": "test.batches", "mode": "read", "config": {"batches": batches, "rows": rows}}


def _run(project: Path, registry: ComponentRegistry, steps: list[dict[str, Any]],
         every_s: float | None) -> tuple[RunResult, list[dict[str, Any]]]:
    settings = ExecutionSettings(registry, Connections(None), project / "logs", progress_every_s=every_s)
    result = LocalExecutor(settings).run(_compiled(project, registry, steps))
    events = [json.loads(x) for x in (result.session.path / "events.jsonl").read_text().splitlines()]
    return result, events


def _progress(events: list[dict[str, Any]], step_id: str) -> list[dict[str, Any]]:
    return [e for e in events if e["event"] == "step_progress" and e["step_id"] == step_id]


def test_rows_are_counted_per_batch_where_a_stream_flows_into_its_consumer(
        project: Path, progress_registry: ComponentRegistry) -> None:
    steps = [_source(), {"id": "load", "component": "filesystem.csv_writer", "mode": "write", "needs": ["source"],
                         "config": {"path": "out.csv"}}]
    result, events = _run(project, progress_registry, steps, every_s=0.0)  # 0: report at every batch
    assert result.exit_code == 0, result.card.error
    progress = _progress(events, "load")
    assert [e["rows"] for e in progress] == [1000 * n for n in range(1, 51)]
    assert {e["phase"] for e in progress} == {"write"}, "without a phase from the driver, the step's mode"
    sizes = [e["bytes"] for e in progress]
    assert sizes == sorted(sizes) and sizes[0] > 0 and len(set(sizes)) == 50
    elapsed = [e["elapsed_ms"] for e in progress]
    assert elapsed == sorted(elapsed)
    names = [(e["event"], e.get("step_id")) for e in events]
    assert names.index(("step_complete", "load")) > names.index(("step_progress", "load")) + 49
    assert not _progress(events, "source"), "the producer's rows are its consumer's progress"
    assert result.card.steps[0].rows_out == 50_000


def test_a_driver_says_its_phases_a_new_phase_at_once_the_same_phase_on_the_clock(
        project: Path, progress_registry: ComponentRegistry) -> None:
    steps = [_source(), {"id": "load", "component": "test.phased_writer", "mode": "write", "needs": ["source"],
                         "config": {}}]
    result, events = _run(project, progress_registry, steps, every_s=3600.0)
    assert result.exit_code == 0, result.card.error
    said = [(e["phase"], e["rows"]) for e in _progress(events, "load")]
    # 50 `stage` calls: the first (a new phase) at once, the rest throttled; the input's end reports the totals.
    assert said == [("stage", 1000), ("stage", 50_000), ("swap", 50_000), ("commit", 50_000)]


def test_progress_off_reports_nothing(project: Path, progress_registry: ComponentRegistry) -> None:
    steps = [_source(), {"id": "load", "component": "test.phased_writer", "mode": "write", "needs": ["source"],
                         "config": {}}]
    result, events = _run(project, progress_registry, steps, every_s=None)
    assert result.exit_code == 0, result.card.error
    assert not [e for e in events if e["event"] == "step_progress"]


@pytest.mark.parametrize("say", [["Bad Phase", None], ["x" * 33, None], ["load\x1b[2J", None], ["load", -1],
                                 ["load", True], ["load", 1.5], [5, None]])
def test_an_invalid_progress_fails_the_step_in_one_line(project: Path, progress_registry: ComponentRegistry,
                                                        say: list[Any]) -> None:
    steps = [{"id": "load", "component": "test.phased_writer", "mode": "write", "config": {"say": say}}]
    result, events = _run(project, progress_registry, steps, every_s=1.0)
    step = result.card.steps[0]
    assert (result.exit_code, step.status, step.error_type) == (1, "failed", "DriverError")
    assert step.error is not None and "reported an invalid progress" in step.error and "\n" not in step.error
    assert "\x1b" not in step.error
    assert not [e for e in events if e["event"] == "step_progress"]


def test_a_streaming_transform_reports_while_its_output_is_read(
        project: Path, progress_registry: ComponentRegistry) -> None:
    """`shape` succeeds at once with a stream; its input flows while `load` reads its output: the recorder
    takes that step's progress after its `step_complete`, until its final counts."""
    steps = [_source(),
             {"id": "shape", "component": "test.passthrough", "mode": "transform", "needs": ["source"],
              "config": {}},
             {"id": "load", "component": "filesystem.csv_writer", "mode": "write", "needs": ["shape"],
              "config": {"path": "out.csv"}}]
    result, events = _run(project, progress_registry, steps, every_s=0.0)
    assert result.exit_code == 0, result.card.error
    names = [(e["event"], e.get("step_id")) for e in events]
    shape_done = names.index(("step_complete", "shape"))
    shape = [i for i, name in enumerate(names) if name == ("step_progress", "shape")]
    assert len(shape) == 50 and min(shape) > shape_done, "the transform's input flowed after its step_complete"
    assert max(shape) < names.index(("step_counted", "shape"))
    assert _progress(events, "shape")[-1]["rows"] == 50_000
    assert {e["phase"] for e in _progress(events, "shape")} == {"transform"}
    assert _progress(events, "load")[-1]["rows"] == 50_000


@pytest.fixture
def recorder(project: Path, progress_registry: ComponentRegistry) -> Iterator[RunRecorder]:
    steps = [_source(), {"id": "load", "component": "filesystem.csv_writer", "mode": "write", "needs": ["source"],
                         "config": {"path": "out.csv"}}]
    with RunRecorder.open(project / "logs", Masker(), _compiled(project, progress_registry, steps),
                          driver_code_sha256="0" * 64, execution={"mode": "sandbox"}) as opened:
        yield opened


def _record(event: str, **fields: Any) -> dict[str, Any]:
    return {"ts": "2026-01-01T00:00:00Z", "session": "elsewhere", "event": event, **fields}


def _progress_record(step_id: str, rows: int | None = 10) -> dict[str, Any]:
    return _record("step_progress", step_id=step_id, phase="load", rows=rows, bytes=100, elapsed_ms=1000)


def test_the_recorder_takes_progress_of_a_running_or_streaming_step_only(recorder: RunRecorder) -> None:
    with pytest.raises(EventOrderError, match="'step_progress' of step 'source' while it is pending"):
        recorder.ingest(_progress_record("source"))
    recorder.ingest(_record("step_start", step_id="source", component="test.batches", driver="m:C"))
    recorder.ingest(_progress_record("source"))
    recorder.ingest(_record("step_complete", step_id="source", rows_in=0, rows_out=None, streaming=True,
                            duration_ms=3))
    recorder.ingest(_progress_record("source", rows=20))  # its output still streams
    recorder.ingest(_record("step_start", step_id="load", component="filesystem.csv_writer", driver="m:W"))
    recorder.ingest(_progress_record("load"))
    recorder.ingest(_record("step_complete", step_id="load", rows_in=30, rows_out=30, streaming=False,
                            duration_ms=5))
    with pytest.raises(EventOrderError, match="'step_progress' of step 'load' after it completed"):
        recorder.ingest(_progress_record("load"))
    recorder.ingest(_record("step_counted", step_id="source", rows_in=0, rows_out=30))
    with pytest.raises(EventOrderError, match="'step_progress' of step 'source' after it completed"):
        recorder.ingest(_progress_record("source"))
    result = recorder.finish(None)
    assert result.card.status == "succeeded"
    assert [s.rows_out for s in result.card.steps] == [30, 30], "progress never changes the card"


@pytest.mark.parametrize(("fields", "message"), [
    ({"phase": "Load"}, "phase"), ({"phase": "a" * 33}, "phase"), ({"rows": -1}, "rows"),
    ({"bytes": -5}, "bytes"), ({"elapsed_ms": None}, "elapsed_ms"), ({"extra": 1}, "extra"),
])
def test_a_malformed_progress_record_is_refused(recorder: RunRecorder, fields: dict[str, Any],
                                                message: str) -> None:
    recorder.ingest(_record("step_start", step_id="source", component="test.batches", driver="m:C"))
    with pytest.raises(ValueError, match=message):
        recorder.ingest({**_progress_record("source"), **fields})


def test_a_component_cannot_emit_progress_by_name() -> None:
    with pytest.raises(ReservedEventError, match="'step_progress' is an engine event"):
        component_event("load", "step_progress", {"phase": "load", "rows": 1})


def test_a_stream_read_into_a_table_for_several_consumers_is_its_producers_progress(
        project: Path, progress_registry: ComponentRegistry) -> None:
    steps = [_source(), *({"id": f"load{n}", "component": "filesystem.csv_writer", "mode": "write",
                           "needs": ["source"], "config": {"path": f"out{n}.csv"}} for n in (1, 2))]
    result, events = _run(project, progress_registry, steps, every_s=0.0)
    assert result.exit_code == 0, result.card.error
    progress = _progress(events, "source")
    assert [(e["phase"], e["rows"]) for e in progress] == [("read", 1000 * n) for n in range(1, 51)]
    names = [(e["event"], e.get("step_id")) for e in events]
    assert names.index(("step_progress", "source")) < names.index(("step_complete", "source"))
    assert not _progress(events, "load1"), "a table flows at once"
