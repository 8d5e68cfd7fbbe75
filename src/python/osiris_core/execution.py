"""Executors: one interface to run a compiled pipeline, here or in a sandbox, through one run recorder.

`osiris_core.runner.LocalExecutor` runs the steps in this process; `osiris_remote.proxy.SandboxExecutor` runs them
in a sandbox. `Executor.run` opens the `RunRecorder` (session, `run_start`), lets the executor do its part
(`execute`) and finishes the run with whatever error stopped it, so both write the same events and the same card.
The CLI picks an executor by name (`osiris_cli.executors`).
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from osiris_core.connections import Connections
from osiris_core.errors import InputError, Interrupted, OsirisError, RunError
from osiris_core.events import EventListener
from osiris_core.fingerprint import run_fingerprint
from osiris_core.interrupts import interruptible, stop_reason, stopping
from osiris_core.manifest import CompiledPipeline
from osiris_core.masking import masked_logging
from osiris_core.recorder import RunRecorder, RunResult
from osiris_core.registry import ComponentRegistry
from osiris_core.run_session import registry_masker


@dataclass(frozen=True)
class ExecutionSettings:
    """What every executor needs, wherever it runs the steps."""

    registry: ComponentRegistry
    connections: Connections
    logs_dir: Path
    """Where the run's session (`run_<ts>/`) is written."""
    environ: Mapping[str, str] | None = None
    """Where `${VAR}` references of connections are looked up (default: this process's environment)."""
    listeners: tuple[EventListener, ...] = ()
    checksums: bool = False
    """Checksum every step's output rows (`StepCard.output_sha256`), as `osiris parity` does."""
    step_timeout_s: float | None = None
    """Fail a step attempt that runs longer than this."""
    progress_every_s: float | None = 1.0
    """How often a step reports `step_progress` while rows flow through it, in seconds (None: never)."""
    full_refresh: bool = False
    """`osiris run --full-refresh`: incremental extractors ignore their state and read everything; the writers
    downstream of them replace their targets (and commit the new state)."""

    def env(self) -> dict[str, str]:
        return dict(os.environ if self.environ is None else self.environ)


class Executor(ABC):
    """Runs compiled pipelines; `mode` is what the run card's `execution.mode` says."""

    mode: ClassVar[str]

    def __init__(self, settings: ExecutionSettings) -> None:
        self.settings = settings

    def run(self, compiled: CompiledPipeline) -> RunResult:
        """Run `compiled` in a new session; the result's card says how it went (it never raises for a failed run)."""
        registry = self.settings.registry
        used = registry.used_by(step.component for step in compiled.manifest.steps)
        fingerprint = run_fingerprint(component.spec.driver for component in used)
        masker = registry_masker(used)  # a run's configs hold only its components' keys
        with masked_logging(masker), RunRecorder.open(
                self.settings.logs_dir, masker, compiled, driver_code_sha256=fingerprint,
                execution={"mode": self.mode}, listeners=self.settings.listeners) as recorder:
            error: BaseException | None = None
            try:
                with interruptible():
                    self.execute(compiled, recorder)
            except BaseException as exc:
                error = exc
            # A stop request explains whatever error the step it cut short reported (a cancelled statement).
            if stopping() or isinstance(error, KeyboardInterrupt | Interrupted):
                return recorder.finish(error if isinstance(error, Interrupted) else Interrupted(
                    stop_reason(), hint="the run was stopped; writes in progress were rolled back"))
            if error is None or isinstance(error, OsirisError):
                return recorder.finish(error)
            if isinstance(error, Exception):  # whatever else failed, the session still gets its card
                return recorder.finish(RunError(
                    f"the run failed: {type(error).__name__}: {' '.join(str(error).split())}", hint="see events.jsonl"))
            raise error

    @abstractmethod
    def execute(self, compiled: CompiledPipeline, recorder: RunRecorder) -> None:
        """Run the steps, reporting through `recorder`; raise the error that stopped the run."""


def check_manifest(compiled: CompiledPipeline, registry: ComponentRegistry, fingerprint: str) -> None:
    """Refuse (`InputError`) a manifest compiled against other components or other code than `fingerprint`."""
    recompile = "recompile the pipeline with `osiris compile` (or run the .yaml directly)"
    manifest = compiled.manifest
    for step in manifest.steps:
        if step.component not in registry:
            raise InputError(f"component '{step.component}' of step '{step.id}' is not installed",
                             hint=registry.suggest(step.component))
        spec = registry.get(step.component).spec
        if manifest.fingerprints.specs.get(spec.name) != spec.fingerprint():
            raise InputError(f"the spec of '{spec.name}' changed since the manifest was compiled", hint=recompile)
    if manifest.fingerprints.driver_code_sha256 != fingerprint:
        raise InputError(f"driver code fingerprint {fingerprint[:12]} differs from the manifest's "
                         f"{manifest.fingerprints.driver_code_sha256[:12]}", hint=recompile)
