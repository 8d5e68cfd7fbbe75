"""The run engine: executes a compiled pipeline step by step, passing Arrow data by name."""

from __future__ import annotations

import logging
import os
import signal
import threading
import traceback
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
from pydantic import ValidationError

from osiris_core.canonical import canonical_json
from osiris_core.checksum import DataChecksum, table_checksum
from osiris_core.compiler import code_packages
from osiris_core.connections import Connections, parse_reference
from osiris_core.driver import MAIN_OUTPUT, ROWS_WRITTEN, ArrowData, DriverConfig, StepContext, count_rows
from osiris_core.errors import DriverError, InputError, OsirisError, RunError
from osiris_core.events import EventListener, EventLog, Stopwatch
from osiris_core.fingerprint import code_fingerprint
from osiris_core.manifest import CompiledPipeline, ManifestStep
from osiris_core.masking import masked_logging
from osiris_core.registry import Component, ComponentRegistry
from osiris_core.run_card import RunCard, StepCard
from osiris_core.run_session import registry_masker, run_session, write_card
from osiris_core.session import Session

logger = logging.getLogger("osiris.run")


@dataclass
class _RowCounter:
    rows: int = 0
    checksum: DataChecksum | None = None
    error: DriverError | None = None
    """Set when reading the stream failed, so the consumer's failure can name the real cause."""


def _counting(reader: pa.RecordBatchReader, counter: _RowCounter, producer: str) -> pa.RecordBatchReader:
    """Pass `reader` through, counting (and checksumming) rows; a read failure names the producing step."""

    def batches() -> Iterator[pa.RecordBatch]:
        iterator = iter(reader)
        while True:
            try:
                batch = next(iterator)
            except StopIteration:
                return
            except OsirisError as exc:
                if isinstance(exc, DriverError) and exc.step_id == producer:
                    counter.error = exc
                raise
            except Exception as exc:
                counter.error = DriverError(f"reading the output of step '{producer}' failed: {exc}",
                                            step_id=producer)
                raise counter.error from exc
            counter.rows += batch.num_rows
            if counter.checksum is not None:
                counter.checksum.update(batch)
            yield batch

    return pa.RecordBatchReader.from_batches(reader.schema, batches())


@dataclass
class _Output:
    """A step's main output: a table, or a stream whose rows are counted as its consumer reads it."""

    data: ArrowData
    counter: _RowCounter | None = None
    table_checksum: str | None = None

    @property
    def rows(self) -> int | None:
        return self.counter.rows if self.counter is not None else count_rows(self.data)

    @property
    def checksum(self) -> str | None:
        if self.counter is not None and self.counter.checksum is not None:
            return self.counter.checksum.hexdigest()
        return self.table_checksum


class StepTimeout(RunError):
    """A step ran longer than the run's per-step timeout."""


@contextmanager
def _time_limit(seconds: float | None, step_id: str) -> Iterator[None]:
    """Raise StepTimeout in the step after `seconds` (main thread only; elsewhere no limit applies)."""
    if not seconds or threading.current_thread() is not threading.main_thread():
        yield
        return

    def timeout() -> StepTimeout:
        return StepTimeout(f"step '{step_id}' exceeded the per-step timeout of {seconds:g} s",
                           hint="raise --step-timeout or make the step faster")

    fired = False

    def expire(signum: int, frame: object) -> None:
        nonlocal fired
        fired = True
        raise timeout()

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    except StepTimeout:
        raise
    except BaseException as exc:
        # Native code (DuckDB, drivers) may turn the interruption into its own error: report the timeout.
        if fired:
            raise timeout() from exc
        raise
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@dataclass
class RunResult:
    session: Session
    card: RunCard

    @property
    def exit_code(self) -> int:
        return self.card.exit_code


@dataclass
class _StepState:
    card: StepCard
    rows_written: int | None = None
    inputs: list[_Output] = field(default_factory=list)
    output: _Output | None = None


class Runner:
    """Runs one compiled pipeline in a new `run_<ts>` session under `logs_dir`."""

    def __init__(
        self,
        registry: ComponentRegistry,
        connections: Connections,
        logs_dir: Path,
        *,
        environ: Mapping[str, str] | None = None,
        listeners: tuple[EventListener, ...] = (),
        checksums: bool = False,
        step_timeout_s: float | None = None,
    ) -> None:
        self.registry = registry
        self.connections = connections
        self.logs_dir = logs_dir
        self.environ = dict(os.environ if environ is None else environ)
        self.listeners = listeners
        self.checksums = checksums
        self.step_timeout_s = step_timeout_s
        self.masker = registry_masker(registry)

    def run(self, compiled: CompiledPipeline) -> RunResult:
        with masked_logging(self.masker), run_session(self.logs_dir, self.masker, self.listeners) as (session, log):
            return self._run(compiled, session, log)

    def _run(self, compiled: CompiledPipeline, session: Session, log: EventLog) -> RunResult:
        manifest = compiled.manifest
        clock = Stopwatch()
        log.event("run_start", {"pipeline": manifest.pipeline.name, "manifest_dir": compiled.directory,
                                "steps": [s.id for s in manifest.steps]})
        fingerprint = code_fingerprint(code_packages(self.registry))
        components = {s.id: self.registry.get(s.component) for s in manifest.steps if s.component in self.registry}
        log.event("drivers_registered", {
            "drivers": dict(sorted({c.name: c.spec.driver for c in components.values()}.items())),
            "driver_code_sha256": fingerprint,
        })
        states = {s.id: _StepState(StepCard(step_id=s.id, component=s.component, driver=s.driver, status="skipped"))
                  for s in manifest.steps}
        run_error = self._preflight(compiled, components, fingerprint)
        consumers = {s.id: sum(s.id in other.needs for other in manifest.steps) for s in manifest.steps}
        outputs: dict[str, _Output] = {}
        for step in manifest.steps:
            state = states[step.id]
            if run_error is not None:
                reason = "an earlier step failed" if any(st.card.status == "failed" for st in states.values()) \
                    else run_error.message
                log.event("step_skipped", {"step_id": step.id, "reason": reason})
                continue
            try:
                self._run_step(step, components[step.id], compiled.configs[step.id], session, log, state, outputs,
                               consumers)
            except BaseException as exc:  # native libraries raise BaseExceptions (e.g. Rust panics) too
                if isinstance(exc, KeyboardInterrupt | SystemExit | GeneratorExit):
                    raise
                # A stream that broke while this step read it is the producing step's failure: report that.
                if not isinstance(exc, StepTimeout):
                    exc = next((o.counter.error for o in state.inputs if o.counter and o.counter.error), exc)
                run_error = exc if isinstance(exc, OsirisError) else DriverError(str(exc), step_id=step.id)
                self._fail_step(step, state, exc, log)
            finally:
                for need in step.needs:
                    consumers[need] -= 1
                    if consumers[need] == 0:
                        outputs.pop(need, None)
        for state in states.values():
            self._settle_counts(state)
        exit_code = 0 if run_error is None else (2 if isinstance(run_error, InputError) else 1)
        card = RunCard(
            session_id=session.id, pipeline=manifest.pipeline.name,
            status="succeeded" if run_error is None else "failed", exit_code=exit_code, duration_ms=clock.ms(),
            driver_code_sha256=fingerprint, manifest_driver_code_sha256=manifest.fingerprints.driver_code_sha256,
            error=None if run_error is None else self.masker.mask(str(run_error)),
            steps=[states[s.id].card for s in manifest.steps],
        )
        log.event("run_complete", {"status": card.status, "exit_code": exit_code, "duration_ms": card.duration_ms,
                                   "steps": card.summary()})
        write_card(session, card, self.masker)
        return RunResult(session=session, card=card)

    def _preflight(self, compiled: CompiledPipeline, components: Mapping[str, Component],
                   fingerprint: str) -> OsirisError | None:
        """Refuse to run a manifest compiled against other components or other driver code."""
        recompile = "recompile the pipeline with `osiris compile` (or run the .yaml directly)"
        manifest = compiled.manifest
        for step in manifest.steps:
            if step.id not in components:
                return InputError(f"component '{step.component}' of step '{step.id}' is not installed",
                                  hint=self.registry.suggest(step.component))
            spec = components[step.id].spec
            if manifest.fingerprints.specs.get(spec.name) != spec.fingerprint():
                return InputError(f"the spec of '{spec.name}' changed since the manifest was compiled",
                                  hint=recompile)
        if manifest.fingerprints.driver_code_sha256 != fingerprint:
            return InputError(
                f"driver code fingerprint {fingerprint[:12]} differs from the manifest's "
                f"{manifest.fingerprints.driver_code_sha256[:12]}", hint=recompile)
        return None

    def _resolve_config(self, step: ManifestStep, component: Component, raw: Mapping[str, Any]) -> dict[str, Any]:
        config = {k: v for k, v in raw.items() if k != "connection"}
        spec = component.spec
        if spec.connection is None or step.connection is None:
            return config
        fields = self.connections.resolve(parse_reference(step.connection), environ=self.environ)
        self.masker.add_connection_fields(fields, spec.secrets)
        unknown = sorted(set(fields) - set(spec.connection.fields))
        if unknown:
            raise InputError(f"connection {step.connection} has fields {unknown} that '{spec.name}' does not use",
                             hint=f"allowed fields: {list(spec.connection.fields)}")
        return {**fields, **config}

    def _run_step(self, step: ManifestStep, component: Component, raw_config: Mapping[str, Any], session: Session,
                  log: EventLog, state: _StepState, outputs: dict[str, _Output], consumers: dict[str, int]) -> None:
        clock = Stopwatch()
        log.event("step_start", {"step_id": step.id, "component": step.component, "driver": step.driver})
        artifacts = session.path / "artifacts" / step.id
        artifacts.mkdir(parents=True, exist_ok=True)
        config = self._resolve_config(step, component, raw_config)
        (artifacts / "cleaned_config.json").write_text(canonical_json(self.masker.mask(config)), encoding="utf-8")
        try:
            typed: DriverConfig = component.driver.config_model.model_validate(config)
        except ValidationError as exc:
            first = exc.errors()[0]
            key = ".".join(str(p) for p in first["loc"])
            raise InputError(f"step '{step.id}': config '{key}': {first['msg']}",
                             hint=f"see `osiris components show {step.component}`") from None
        state.inputs = [outputs[need] for need in step.needs]
        inputs = {name: outputs[need].data for name, need in step.inputs.items()}

        def on_metric(name: str, value: float | int, unit: str | None) -> None:
            if name == ROWS_WRITTEN:
                state.rows_written = int(value)
            log.metric(step.id, name, value, unit)

        def on_event(name: str, fields: Mapping[str, Any]) -> None:
            log.event(name, {"step_id": step.id, **fields})

        ctx = StepContext(session_id=session.id, artifacts_dir=artifacts, logger=logger.getChild(step.id),
                          emit_metric=on_metric, emit_event=on_event)
        driver = component.driver()
        with _time_limit(self.step_timeout_s, step.id):
            produced = driver.run(step_id=step.id, config=typed, inputs=inputs, ctx=ctx)
        main = produced.get(MAIN_OUTPUT)
        if consumers[step.id] and main is None:
            raise DriverError(f"produced no '{MAIN_OUTPUT}' output but later steps need it", step_id=step.id,
                              hint="use a component that produces data for those steps")
        if main is not None:
            state.output = self._keep(main, consumers[step.id], step.id)
            if consumers[step.id]:
                outputs[step.id] = state.output
        state.card.status = "succeeded"
        state.card.duration_ms = clock.ms()
        self._settle_counts(state)
        log.metric(step.id, "duration_ms", state.card.duration_ms, "ms")
        streaming = state.output is not None and state.output.counter is not None
        log.event("step_complete", {"step_id": step.id, "rows_in": state.card.rows_in,
                                    "rows_out": None if streaming else state.card.rows_out,
                                    "streaming": streaming, "duration_ms": state.card.duration_ms})

    def _keep(self, data: ArrowData, consumers: int, step_id: str) -> _Output:
        """Streams with one consumer stay streams (counted); otherwise they are read into a table once."""
        if isinstance(data, pa.RecordBatchReader) and consumers == 1:
            counter = _RowCounter(checksum=DataChecksum(data.schema) if self.checksums else None)
            return _Output(_counting(data, counter, step_id), counter)
        table = data.read_all() if isinstance(data, pa.RecordBatchReader) else data
        return _Output(table, table_checksum=table_checksum(table) if self.checksums else None)

    @staticmethod
    def _settle_counts(state: _StepState) -> None:
        rows_in = [o.rows for o in state.inputs]
        state.card.rows_in = sum(r for r in rows_in if r is not None) if state.inputs else 0
        if state.card.status == "skipped":
            state.card.rows_in = None
        elif state.output is not None:
            state.card.rows_out = state.output.rows
            state.card.output_sha256 = state.output.checksum
        else:
            state.card.rows_out = state.rows_written if state.rows_written is not None else 0

    def _fail_step(self, step: ManifestStep, state: _StepState, exc: BaseException, log: EventLog) -> None:
        state.card.status = "failed"
        message = exc.render() if isinstance(exc, OsirisError) else f"{type(exc).__name__}: {exc}"
        state.card.error = self.masker.mask(message)
        state.card.error_type = type(exc).__name__
        log.event("step_failed", {
            "step_id": step.id, "error": message, "error_type": type(exc).__name__,
            "traceback": "".join(traceback.format_exception(exc)),
        })
