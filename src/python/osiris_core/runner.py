"""The run engine: executes a compiled pipeline step by step in this process, passing Arrow data by name.

`LocalExecutor` is the `Executor` that runs steps here (in a sandbox, the worker runs it too). It reports every
step through the run recorder, retries a step after a transient error as its `retries` policy allows, and leaves
the run's end (skips, `run_complete`, the card) to the recorder.
"""

from __future__ import annotations

import logging
import re
import signal
import threading
import time
import traceback
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from operator import index as operator_index
from typing import Any, SupportsIndex

import pyarrow as pa

from osiris_core.canonical import canonical_json
from osiris_core.checksum import DataChecksum, table_checksum
from osiris_core.driver import MAIN_OUTPUT, ROWS_WRITTEN, ArrowData, Driver, DriverConfig, StepContext, count_rows
from osiris_core.errors import DriverError, OsirisError, RunError
from osiris_core.events import (
    PHASE_PATTERN,
    DriversRegistered,
    ReservedEventError,
    StateCommitted,
    StateLoaded,
    StepComplete,
    StepCounted,
    StepFailed,
    StepProgress,
    StepRetry,
    StepStart,
    Stopwatch,
    component_event,
)
from osiris_core.execution import Executor, check_manifest
from osiris_core.fingerprint import run_fingerprint
from osiris_core.interrupts import cancel_blocking, check_stop, stopping
from osiris_core.manifest import CompiledPipeline, ManifestStep
from osiris_core.recorder import RunRecorder, RunResult
from osiris_core.registry import Component
from osiris_core.state import Cursor, IncrementalRead, StateCommit, cursor_min, encode_cursor
from osiris_core.state_plan import StateTarget, check_writers, load_records, state_targets, stored_cursor
from osiris_core.step_config import typed_config, with_connection

__all__ = ["LocalExecutor", "RunResult", "StepTimeout"]

logger = logging.getLogger("osiris.run")


class _Progress:
    """One step's progress, reported as `step_progress`: at once when its phase changes, else at most every
    `every_s` seconds while rows flow (per batch: two additions, the batch's size and a clock read). Never after
    `close`."""

    def __init__(self, step_id: str, phase: str, recorder: RunRecorder, every_s: float | None) -> None:
        self.step_id = step_id
        self.mode_phase = phase
        self.phase = phase
        self.streamed = False
        """True when rows flow through the step's own batches: then `rows_read`/`bytes_read` are its figures (of
        the streams it reads, or else of its output stream while the engine reads it into a table)."""
        self.reads_streams = False
        """The step reads a stream from the step before it (counted by `_counting`)."""
        self.rows_read = 0
        self.bytes_read = 0
        self._said_rows: int | None = None
        self._reported_rows: int | None = None
        """`rows_read` at the last report (None: not reported yet)."""
        self._recorder = recorder
        self._every = every_s or 0.0
        self._open = every_s is not None
        self._lock = threading.Lock()
        self._start = time.monotonic()
        self._due = self._start + self._every

    def read(self, batch: pa.RecordBatch) -> None:
        """`batch` flowed through the step: read from a stream, or out of it into a table."""
        self.rows_read += batch.num_rows
        self.bytes_read += batch.nbytes
        if self._open and time.monotonic() >= self._due:
            self.report()

    def ended(self) -> None:
        """A stream ended: if the step reported while it flowed, it reports its final figures."""
        if self._reported_rows is not None and self._reported_rows != self.rows_read:
            self.report()

    def say(self, phase: str, rows: int | None) -> None:
        """What the driver says (`StepContext.progress`)."""
        with self._lock:
            changed = phase != self.phase
            self.phase = phase
            if rows is not None or changed:
                self._said_rows = rows
        if changed or (self._open and time.monotonic() >= self._due):
            self.report()

    def restart(self) -> None:
        """A new attempt: back to the step's own phase and no rows (a step with retries reads tables only)."""
        with self._lock:
            self.phase, self._said_rows = self.mode_phase, None
            self.rows_read = self.bytes_read = 0
            self._reported_rows = None

    def report(self) -> None:
        with self._lock:
            if not self._open:
                return
            now = time.monotonic()
            self._due = now + self._every
            self._reported_rows = self.rows_read
            rows = self._said_rows if self._said_rows is not None else self.rows_read if self.streamed else None
            self._recorder.emit(StepProgress(step_id=self.step_id, phase=self.phase, rows=rows,
                                             bytes=self.bytes_read if self.streamed else None,
                                             elapsed_ms=int((now - self._start) * 1000)))

    def close(self) -> None:
        with self._lock:
            self._open = False


def _row_count(rows: object) -> int | None:
    """A driver's row count as an int (numpy integers too); None for None, -1 for anything else."""
    if rows is None:
        return None
    if isinstance(rows, bool) or not isinstance(rows, SupportsIndex):
        return -1
    count = operator_index(rows)
    return count if count >= 0 else -1


@dataclass
class _RowCounter:
    rows: int = 0
    checksum: DataChecksum | None = None
    error: DriverError | None = None
    """Set when reading the stream failed, so the consumer's failure can name the real cause."""
    consumer: _Progress | None = None
    """The progress of the step that reads the stream (set when it starts)."""


def _counting(reader: pa.RecordBatchReader, counter: _RowCounter, producer: str) -> pa.RecordBatchReader:
    """Pass `reader` through, counting (and checksumming) rows; a read failure names the producing step."""

    def batches() -> Iterator[pa.RecordBatch]:
        iterator = iter(reader)
        while True:
            try:
                batch = next(iterator)
            except StopIteration:
                if counter.consumer is not None:
                    counter.consumer.ended()
                return
            except OsirisError as exc:
                if isinstance(exc, DriverError) and exc.step_id == producer:
                    counter.error = exc
                raise
            except Exception as exc:  # raised by the producer's code, whichever step happens to read its stream
                counter.error = DriverError(f"failed while its output streamed to the next step: {exc}",
                                            step_id=producer)
                raise counter.error from exc
            counter.rows += batch.num_rows
            if counter.checksum is not None:
                counter.checksum.update(batch)
            if counter.consumer is not None:
                counter.consumer.read(batch)
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


def _broken_stream(steps: tuple[ManifestStep, ...], states: dict[str, _StepState]) -> ManifestStep | None:
    """The first step whose output stream failed as it was read (the cause of failures downstream), if any."""
    for step in steps:
        output = states[step.id].output
        if output is not None and output.counter is not None and output.counter.error is not None:
            return step
    return None


def _downstream(steps: tuple[ManifestStep, ...], step_id: str) -> set[str]:
    """The steps that read `step_id`'s output, directly or through other steps."""
    found: set[str] = set()
    for step in steps:  # in manifest order: a step comes after the steps it needs
        if step_id in step.needs or found & set(step.needs):
            found.add(step.id)
    return found


def _upstream(steps: tuple[ManifestStep, ...], step_id: str) -> set[str]:
    """The steps whose output `step_id` reads, directly or through other steps."""
    by_id = {step.id: step for step in steps}
    found: set[str] = set()
    pending = list(by_id[step_id].needs)
    while pending:
        need = pending.pop()
        if need not in found:
            found.add(need)
            pending.extend(by_id[need].needs)
    return found


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

    def cancel_native() -> None:
        # SIGALRM's handler runs only when the main thread runs Python: a native call (a DuckDB query, a database
        # statement) is ended through its canceller, then the handler's exception reports the timeout.
        nonlocal fired
        fired = True
        cancel_blocking()

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    watchdog = threading.Timer(seconds + 0.25, cancel_native)
    watchdog.daemon = True
    watchdog.start()
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
        watchdog.cancel()
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@dataclass
class _StepState:
    ran: bool = False
    rows_written: int | None = None
    inputs: list[_Output] = field(default_factory=list)
    output: _Output | None = None
    progress: _Progress | None = None

    def counts(self) -> tuple[int | None, int | None, str | None]:
        """rows_in, rows_out and output checksum as far as they are known now (streams count as they are read)."""
        rows_in = sum(r for r in (o.rows for o in self.inputs) if r is not None)
        if self.output is not None:
            return rows_in, self.output.rows, self.output.checksum
        return rows_in, self.rows_written if self.rows_written is not None else 0, None


@dataclass
class _IncrementalRun:
    """A run's incremental bookkeeping: what each writer commits for its incremental upstreams."""

    compiled: CompiledPipeline
    components: dict[str, Component]
    commits: dict[str, list[StateCommit]] = field(default_factory=dict)


class LocalExecutor(Executor):
    """Runs the steps in this process."""

    mode = "local"
    _incremental: _IncrementalRun

    def execute(self, compiled: CompiledPipeline, recorder: RunRecorder) -> None:
        manifest = compiled.manifest
        registry = self.settings.registry
        used = registry.used_by(s.component for s in manifest.steps)
        fingerprint = run_fingerprint(c.spec.driver for c in used)
        recorder.emit(DriversRegistered(drivers={c.name: c.spec.driver for c in used},
                                        driver_code_sha256=fingerprint))
        check_manifest(compiled, registry, fingerprint)
        components = {s.id: registry.get(s.component) for s in manifest.steps}
        self._incremental = _IncrementalRun(compiled, components)
        self._check_incremental(recorder)
        consumers = {s.id: sum(s.id in other.needs for other in manifest.steps) for s in manifest.steps}
        replayed = {need for s in manifest.steps if s.retries.max for need in s.needs}
        states = {s.id: _StepState() for s in manifest.steps}
        outputs: dict[str, _Output] = {}
        try:
            run_error = self._run_steps(compiled, components, recorder, states, outputs, consumers, replayed)
        finally:
            for state in states.values():
                if state.progress is not None:
                    state.progress.close()
        for step in manifest.steps:
            state = states[step.id]
            if not state.ran:
                continue
            rows_in, rows_out, checksum = state.counts()
            card = recorder.step_card(step.id)
            if (card.rows_in, card.rows_out, card.output_sha256) != (rows_in, rows_out, checksum):
                recorder.emit(StepCounted(step_id=step.id, rows_in=rows_in, rows_out=rows_out, output_sha256=checksum))
        if run_error is not None:
            raise run_error

    def _run_steps(self, compiled: CompiledPipeline, components: dict[str, Component], recorder: RunRecorder,
                   states: dict[str, _StepState], outputs: dict[str, _Output], consumers: dict[str, int],
                   replayed: set[str]) -> OsirisError | None:
        """Run the steps in order until one fails; that step's error."""
        for step in compiled.manifest.steps:
            state = states[step.id]
            check_stop()
            try:
                self._run_step(step, components[step.id], compiled.configs[step.id], recorder, state, outputs,
                               consumers, replayed)
            except BaseException as exc:  # native libraries raise BaseExceptions (e.g. Rust panics) too
                if isinstance(exc, KeyboardInterrupt | SystemExit | GeneratorExit) or stopping():
                    raise  # a stop request: the executor closes the run as interrupted
                if state.progress is not None:
                    state.progress.close()
                broken = None if isinstance(exc, StepTimeout) else _broken_stream(compiled.manifest.steps, states)
                if broken is not None:
                    return self._fail_upstream(compiled.manifest.steps, step, broken, states, recorder)
                self._fail_step(step, exc, recorder)
                return exc if isinstance(exc, OsirisError) else DriverError(str(exc), step_id=step.id)
            finally:
                for need in step.needs:
                    consumers[need] -= 1
                    if consumers[need] == 0:
                        outputs.pop(need, None)
        return None

    def _resolve_config(self, step: ManifestStep, component: Component, raw: Mapping[str, Any],
                        recorder: RunRecorder) -> dict[str, Any]:
        config = {k: v for k, v in raw.items() if k != "connection"}
        spec = component.spec
        if spec.connection is None or step.connection is None:
            return config
        fields = recorder.resolve_connection(self.settings.connections, step.connection,
                                             environ=self.settings.env(), secret_keys=spec.secrets)
        return with_connection(step, component, fields, config)

    def _step_config(self, step: ManifestStep, recorder: RunRecorder) -> DriverConfig:
        """A step's typed config, its connection resolved."""
        component = self._incremental.components[step.id]
        config = self._resolve_config(step, component, self._incremental.compiled.configs[step.id], recorder)
        return typed_config(step, component, config)

    def _check_incremental(self, recorder: RunRecorder) -> None:
        """At run start, before any step reads or writes: refuse a writer that an incremental upstream would make
        wrong (`state_plan.check_writers`). A step whose config does not resolve is left to fail as itself."""
        run = self._incremental
        for step in run.compiled.manifest.steps:
            if step.mode != "read":
                continue
            try:
                typed = self._step_config(step, recorder)
                if run.components[step.id].driver().incremental(typed) is None:
                    continue
                targets = state_targets(run.compiled, run.components, lambda o: self._step_config(o, recorder),
                                        step)
            except OsirisError:
                continue
            check_writers(step.id, targets, full_refresh=self.settings.full_refresh)

    def _load_state(self, step: ManifestStep, driver: Driver[Any], typed: DriverConfig,
                    recorder: RunRecorder) -> IncrementalRead | None:
        """For an incremental extractor: its state loaded from every downstream writer's target (the read starts
        at the smallest cursor), and what each writer is to commit. None for any other step."""
        if driver.incremental(typed) is None:
            return None
        run = self._incremental
        compiled, full_refresh = run.compiled, self.settings.full_refresh
        pipeline = compiled.manifest.pipeline.name

        targets = state_targets(compiled, run.components, lambda other: self._step_config(other, recorder), step)
        check_writers(step.id, targets, full_refresh=full_refresh)
        loaded: list[tuple[StateTarget, Cursor | None, str | None]] = []
        for target in targets:
            store = target.store
            cursor = None if full_refresh else stored_cursor(pipeline, target, load_records(target))
            warning = None
            if cursor is None and not full_refresh and store.target_has_rows():
                warning = (f"no incremental state for step '{step.id}' in {store.target}, but the target already "
                           "holds rows: reading the whole source (the upsert deduplicates by key)")
                logger.warning(warning)
            loaded.append((target, cursor, warning))
        cursors = [cursor for _, cursor, _ in loaded]
        start = None if any(c is None for c in cursors) else cursor_min([c for c in cursors if c is not None])
        read = IncrementalRead(step.id, start, full_refresh=full_refresh)
        for target, cursor, warning in loaded:
            recorder.emit(StateLoaded(step_id=step.id, pipeline=pipeline, writer=target.writer,
                                      target=target.store.target,
                                      cursor=None if cursor is None else encode_cursor(cursor),
                                      start=None if start is None else encode_cursor(start),
                                      full_refresh=full_refresh, warning=warning))
            run.commits.setdefault(target.writer, []).append(
                StateCommit(pipeline, step.id, target.store.target, read, recorder.session.id))
        return read

    def _run_step(self, step: ManifestStep, component: Component, raw_config: Mapping[str, Any],
                  recorder: RunRecorder, state: _StepState, outputs: dict[str, _Output], consumers: dict[str, int],
                  replayed: set[str]) -> None:
        clock = Stopwatch()
        state.ran = True
        recorder.emit(StepStart(step_id=step.id, component=step.component, driver=step.driver))
        artifacts = recorder.session.path / "artifacts" / step.id
        artifacts.mkdir(parents=True, exist_ok=True)
        config = self._resolve_config(step, component, raw_config, recorder)
        (artifacts / "cleaned_config.json").write_text(canonical_json(recorder.masker.mask(config)),
                                                       encoding="utf-8")
        typed = typed_config(step, component, config)
        incremental = self._load_state(step, component.driver(), typed, recorder) if step.mode == "read" else None
        commits = self._incremental.commits.get(step.id, ())
        state.inputs = [outputs[need] for need in step.needs]
        inputs = {name: outputs[need].data for name, need in step.inputs.items()}
        every_s = self.settings.progress_every_s
        progress = state.progress = _Progress(step.id, step.mode, recorder, every_s)
        for streamed in (o.counter for o in state.inputs if o.counter is not None and every_s is not None):
            streamed.consumer = progress
            progress.streamed = progress.reads_streams = True

        def on_metric(name: str, value: float | int, unit: str | None) -> None:
            if name == ROWS_WRITTEN:
                state.rows_written = int(value)
            recorder.metric(step.id, name, value, unit)

        def on_event(name: str, fields: Mapping[str, Any]) -> None:
            try:
                event = component_event(step.id, name, fields)
            except (ReservedEventError, ValueError) as exc:
                raise DriverError(f"emitted an invalid event: {' '.join(str(exc).split())}", step_id=step.id,
                                  hint="see docs/events.md for component events") from None
            recorder.emit(event)

        def on_progress(phase: str, rows: int | None) -> None:
            count = _row_count(rows)
            if not (isinstance(phase, str) and re.fullmatch(PHASE_PATTERN, phase)) or count == -1:
                raise DriverError(f"reported an invalid progress: phase {phase!r:.40}, rows {rows!r:.40}",
                                  step_id=step.id, hint="phase: a lowercase word such as extract, stage, load, "
                                  "swap or commit; rows: a count from 0, or None")
            progress.say(phase, count)

        ctx = StepContext(session_id=recorder.session.id, artifacts_dir=artifacts, logger=logger.getChild(step.id),
                          emit_metric=on_metric, emit_event=on_event, emit_progress=on_progress,
                          incremental=incremental, state_commits=tuple(commits),
                          full_refresh=self.settings.full_refresh and bool(commits))
        attempt = 1
        while True:
            state.rows_written = None
            progress.restart()
            try:
                with _time_limit(self.settings.step_timeout_s, step.id):
                    produced = component.driver().run(step_id=step.id, config=typed, inputs=inputs, ctx=ctx)
                    main = produced.get(MAIN_OUTPUT)
                    if consumers[step.id] and main is None:
                        raise DriverError(f"produced no '{MAIN_OUTPUT}' output but later steps need it",
                                          step_id=step.id, hint="use a component that produces data for those steps")
                    if main is not None:
                        state.output = self._keep(main, consumers[step.id], step.id, replayed, progress)
                break
            except OsirisError as exc:
                if not exc.transient or attempt > step.retries.max:
                    raise
                delay = step.retries.delay_s(attempt)
                recorder.emit(StepRetry(step_id=step.id, attempt=attempt, error=exc.render(),
                                        error_type=type(exc).__name__, delay_s=delay))
                time.sleep(delay)
                attempt += 1
        if state.output is not None and consumers[step.id]:
            outputs[step.id] = state.output
        for commit in commits:
            record = commit.record()
            recorder.emit(StateCommitted(step_id=step.id, source_step=commit.step, target=commit.target,
                                         cursor=None if record is None else record.cursor, rows=commit.read.rows))
        duration_ms = clock.ms()
        recorder.metric(step.id, "duration_ms", duration_ms, "ms")
        rows_in, rows_out, checksum = state.counts()
        streaming = state.output is not None and state.output.counter is not None
        if not streaming:  # a streaming step's inputs are read while its consumer reads its output
            progress.close()
        recorder.emit(StepComplete(step_id=step.id, rows_in=rows_in, rows_out=None if streaming else rows_out,
                                   streaming=streaming, duration_ms=duration_ms,
                                   output_sha256=None if streaming else checksum))

    def _keep(self, data: ArrowData, consumers: int, step_id: str, replayed: set[str],
              progress: _Progress) -> _Output:
        """A stream with one consumer that reads it once stays a stream (counted as it is read).

        Otherwise it is read into a table once: for several consumers, and for a consumer with `retries` (each of
        its attempts reads the same rows again). While it is read, a step that reads no stream itself reports
        those rows as its progress.
        """
        if isinstance(data, pa.RecordBatchReader) and consumers == 1 and step_id not in replayed:
            counter = _RowCounter(checksum=DataChecksum(data.schema) if self.settings.checksums else None)
            return _Output(_counting(data, counter, step_id), counter)
        table = data if isinstance(data, pa.Table) else self._read_all(data, progress)
        return _Output(table, table_checksum=table_checksum(table) if self.settings.checksums else None)

    def _read_all(self, reader: pa.RecordBatchReader, progress: _Progress) -> pa.Table:
        if progress.reads_streams or self.settings.progress_every_s is None:
            return reader.read_all()
        progress.streamed = True
        batches = []
        for batch in reader:
            progress.read(batch)
            batches.append(batch)
        progress.ended()
        return pa.Table.from_batches(batches, schema=reader.schema)

    def _fail_upstream(self, steps: tuple[ManifestStep, ...], step: ManifestStep, producer: ManifestStep,
                       states: dict[str, _StepState], recorder: RunRecorder) -> OsirisError:
        """`producer`'s stream broke while `step` read it: the producer failed (its code raised); the steps between
        them, and `step`, failed because of it. The producer's error."""
        output = states[producer.id].output
        counter = output.counter if output is not None else None
        assert counter is not None and counter.error is not None
        self._fail_step(producer, counter.error, recorder)
        between = _downstream(steps, producer.id) & _upstream(steps, step.id)
        for other in (s for s in steps if s.id in between | {step.id}):
            upstream = DriverError(f"upstream step '{producer.id}' failed", step_id=other.id,
                                   hint=f"see the error of step '{producer.id}'")
            recorder.emit(StepFailed(step_id=other.id, error=upstream.render(), error_type=type(upstream).__name__))
        return counter.error

    @staticmethod
    def _fail_step(step: ManifestStep, exc: BaseException, recorder: RunRecorder) -> None:
        message = exc.render() if isinstance(exc, OsirisError) else f"{type(exc).__name__}: {exc}"
        recorder.emit(StepFailed(step_id=step.id, error=message, error_type=type(exc).__name__,
                                 traceback="".join(traceback.format_exception(exc))))
