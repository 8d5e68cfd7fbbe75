"""Test support: run pipelines the way `osiris run` does, build steps, and read what a run reported."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from osiris_core.compiler import compile_file
from osiris_core.connections import Connections
from osiris_core.driver import ROWS_WRITTEN, StepContext
from osiris_core.execution import ExecutionSettings
from osiris_core.manifest import load_compiled
from osiris_core.registry import ComponentRegistry
from osiris_core.run_card import StepCard
from osiris_core.runner import LocalExecutor, RunResult


def run_file(registry: ComponentRegistry, project: Path, pipeline_path: Path, *,
             connections: Connections | None = None, environ: Mapping[str, str] | None = None) -> RunResult:
    """Compile `pipeline_path` into `project/logs` and run the compiled manifest."""
    connections = connections or Connections(None)
    result = compile_file(pipeline_path, registry, connections, project / "logs")
    assert result.manifest_path is not None
    settings = ExecutionSettings(registry, connections, project / "logs", environ=environ)
    return LocalExecutor(settings).run(load_compiled(result.manifest_path))


def run_pipeline(registry: ComponentRegistry, project: Path, steps: list[dict[str, Any]], name: str = "test", *,
                 connections: Connections | None = None, environ: Mapping[str, str] | None = None) -> RunResult:
    """Write an OML file (JSON is YAML) with `steps`, then compile and run it."""
    pipeline_path = project / f"{name}.yaml"
    pipeline = {"oml_version": "0.1.0", "name": name, "steps": steps}
    pipeline_path.write_text(json.dumps(pipeline, indent=2, ensure_ascii=False), encoding="utf-8")
    return run_file(registry, project, pipeline_path, connections=connections, environ=environ)


def extract_csv(step_id: str, path: str, **config: Any) -> dict[str, Any]:
    return {"id": step_id, "component": "filesystem.csv_extractor", "mode": "read",
            "config": {"path": path, **config}}


def write_csv(step_id: str, need: str, path: str, **config: Any) -> dict[str, Any]:
    return {"id": step_id, "component": "filesystem.csv_writer", "mode": "write", "needs": [need],
            "config": {"path": path, **config}}


def step(run: RunResult, step_id: str) -> StepCard:
    return next(card for card in run.card.steps if card.step_id == step_id)


def assert_succeeded(run: RunResult) -> None:
    errors = {card.step_id: card.error for card in run.card.steps if card.error}
    assert run.card.status == "succeeded", errors
    assert all(card.status == "succeeded" for card in run.card.steps)


def failed_error(run: RunResult, step_id: str) -> str:
    """The failed step's error, checked to be a one-line DriverError without a traceback."""
    card = step(run, step_id)
    assert run.card.status == "failed"
    assert card.status == "failed"
    assert card.error_type == "DriverError"
    assert card.error is not None
    assert "Traceback" not in card.error
    assert "\n" not in card.error
    return card.error


def metrics(run: RunResult) -> list[dict[str, Any]]:
    lines = (run.session.path / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


def events(run: RunResult) -> list[dict[str, Any]]:
    lines = (run.session.path / "events.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


def rows_written_metrics(run: RunResult, step_id: str) -> list[int]:
    return [m["value"] for m in metrics(run) if m["step_id"] == step_id and m["metric"] == ROWS_WRITTEN]


@dataclass
class Recorder:
    """Real callables the engine would pass in a StepContext, collecting what a driver reports."""

    metrics: list[tuple[str, float | int, str | None]] = field(default_factory=list)
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def _metric(self, name: str, value: float | int, unit: str | None) -> None:
        self.metrics.append((name, value, unit))

    def _event(self, name: str, fields: Mapping[str, Any]) -> None:
        self.events.append((name, dict(fields)))

    def context(self, artifacts: Path) -> StepContext:
        return StepContext(session_id="test-session", artifacts_dir=artifacts, logger=logging.getLogger("test"),
                           emit_metric=self._metric, emit_event=self._event)
