"""The run recorder: the one owner of a run's session, event log, step states, run card and exit code.

Every executor runs through one. The local engine emits its events through it; the sandbox executor feeds it
the worker's events (`ingest`). Either way the recorder folds the typed event stream into step states, and
`finish` closes the run with the same code: steps still running fail with the run's error, steps never started
are skipped, `run_complete` is written, then the card. So a sandbox run whose worker died gets a card of the
same structure, from the same code, as a local run that failed. `run_start` and `run_complete` are written by
the recorder alone: those a sandbox's own recorder wrote are checked and folded in, never copied.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from osiris_core.connections import Connections, parse_reference
from osiris_core.errors import Interrupted, OsirisError, RunError
from osiris_core.events import (
    DriversRegistered,
    Event,
    EventListener,
    EventLog,
    Logged,
    Metric,
    RunComplete,
    RunStart,
    StateCommitted,
    StateLoaded,
    StepComplete,
    StepCounted,
    StepEvent,
    StepFailed,
    StepProgress,
    StepRetry,
    StepSkipped,
    StepStart,
    Stopwatch,
    parse_record,
)
from osiris_core.manifest import CompiledPipeline
from osiris_core.masking import Masker
from osiris_core.run_card import IncrementalCard, RunCard, RunStatus, StepCard
from osiris_core.run_session import write_card
from osiris_core.session import Session, new_session

Phase = Literal["pending", "running", "succeeded", "failed", "skipped"]

_PROGRESS_PHASES: frozenset[Phase] = frozenset({"running", "succeeded"})
"""`step_progress` comes from a running step, or from one that succeeded while its output still streams."""
_NEXT: dict[type[Event], tuple[frozenset[Phase], Phase | None]] = {
    StepStart: (frozenset({"pending"}), "running"),
    StepRetry: (frozenset({"running"}), None),
    StepComplete: (frozenset({"running"}), "succeeded"),
    StepFailed: (frozenset({"running", "succeeded"}), "failed"),
    StepSkipped: (frozenset({"pending"}), "skipped"),
    StepCounted: (frozenset({"succeeded", "failed"}), None),
    StepProgress: (_PROGRESS_PHASES, None),
}
"""Step event → the phases it may follow and the phase it leads to (None: unchanged)."""
_COMPONENT_PHASES: frozenset[Phase] = frozenset({"running", "succeeded", "failed"})
"""Component events come from a step that started (a stream's producer may report while its consumer reads)."""


class EventOrderError(RunError):
    """An event the run's state does not allow: a bug in an engine, or a sandbox that does not follow the engine."""


@dataclass
class RunResult:
    session: Session
    card: RunCard

    @property
    def exit_code(self) -> int:
        return self.card.exit_code


class RunRecorder:
    """Records one run; open it with `RunRecorder.open`, end it with `finish`."""

    def __init__(self, session: Session, log: EventLog, masker: Masker, compiled: CompiledPipeline, *,
                 listeners: tuple[EventListener, ...], execution: dict[str, Any], driver_code_sha256: str) -> None:
        self.session = session
        self.masker = masker
        self.execution = execution
        """Where the steps ran (`RunCard.execution`); executors add to it while they run."""
        self.driver_code_sha256 = driver_code_sha256
        """The code that ran: the host's until a `drivers_registered` event says otherwise."""
        self._log = log
        self._listeners = listeners
        self._manifest = compiled.manifest
        self._step_ids = tuple(step.id for step in self._manifest.steps)
        self._cards = {step.id: StepCard(step_id=step.id, component=step.component, driver=step.driver,
                                         status="skipped") for step in self._manifest.steps}
        self._phases: dict[str, Phase] = dict.fromkeys(self._step_ids, "pending")
        self._streaming: set[str] = set()
        """Steps that succeeded with their output streaming, until their final counts (`step_counted`) arrive."""
        self._started = False
        self._outcome: RunComplete | None = None
        self._finished = False
        self._lock = threading.RLock()
        self._clock = Stopwatch()

    @classmethod
    @contextmanager
    def open(cls, logs_dir: Path, masker: Masker, compiled: CompiledPipeline, *, driver_code_sha256: str,
             execution: dict[str, Any], listeners: tuple[EventListener, ...] = ()) -> Iterator[RunRecorder]:
        """A new `run_<ts>` session under `logs_dir` with `run_start` written; the log is closed on exit."""
        session = new_session(logs_dir, "run")
        log = EventLog(session.path, session.id, masker)
        try:
            recorder = cls(session, log, masker, compiled, listeners=listeners, execution=execution,
                           driver_code_sha256=driver_code_sha256)
            recorder.emit(RunStart(pipeline=compiled.manifest.pipeline.name, manifest_dir=compiled.directory,
                                   steps=recorder._step_ids))
            yield recorder
        finally:
            log.close()

    # --- what executors report ---------------------------------------------------------------------------------

    def emit(self, event: Event, *, ts: str | None = None) -> None:
        """Write `event` (masked; stamped `ts`, default now), fold it into the run's state, notify the listeners."""
        with self._lock:
            self._check(event)
            record = self._log.write(event, ts=ts)
            masked = parse_record(record)
            assert isinstance(masked, Event)
            self._fold(masked)
        self._notify(masked, record)

    def metric(self, step_id: str | None, name: str, value: float | int, unit: str | None = None) -> None:
        self._write_metric(Metric(step_id=step_id, metric=name, value=value, unit=unit))

    def ingest(self, record: Mapping[str, Any]) -> None:
        """Take in a record another engine's recorder wrote (a sandbox worker's), as if emitted here.

        Raises `ValueError` for a record that is no event or metric of the vocabulary, `EventOrderError` for one
        the run's state does not allow. Its `run_start` must name this run's steps; its `run_complete` becomes the
        run's outcome when `finish` is given no error of its own. Records keep their time stamp, and take this
        run's session id.
        """
        item = parse_record(record)
        ts = record.get("ts") if isinstance(record.get("ts"), str) else None
        if isinstance(item, Metric):
            if item.step_id is not None and item.step_id not in self._phases:
                raise EventOrderError(f"a metric of unknown step '{item.step_id}'")
            self._write_metric(item, ts=ts)
        elif isinstance(item, RunStart):
            if item.steps != self._step_ids:
                raise EventOrderError(f"the run started with steps {list(item.steps)}, not this manifest's")
        elif isinstance(item, RunComplete):
            with self._lock:
                if self._outcome is not None:
                    raise EventOrderError("the run completed twice")
                self._outcome = item
        else:
            self.emit(item, ts=ts)

    def resolve_connection(self, connections: Connections, reference: str, *, environ: Mapping[str, str],
                           secret_keys: Iterable[str]) -> dict[str, Any]:
        """A connection's fields (secrets included: use, never log); its secret values are masked from now on."""
        fields = connections.resolve(parse_reference(reference), environ=environ)
        self.masker.add_connection_fields(fields, tuple(secret_keys))
        return fields

    # --- what the run's state says -----------------------------------------------------------------------------

    def step_card(self, step_id: str) -> StepCard:
        """A copy of the step's card as recorded so far."""
        with self._lock:
            return self._cards[step_id].model_copy()

    def succeeded_steps(self) -> set[str]:
        with self._lock:
            return {step_id for step_id, phase in self._phases.items() if phase == "succeeded"}

    # --- the end -----------------------------------------------------------------------------------------------

    def finish(self, error: BaseException | None) -> RunResult:
        """Close the run: fail what still runs, skip what never ran, write `run_complete`, the card and status.

        `error` is why the run failed (None: it did not, unless an ingested `run_complete` says so). The exit code
        is `error.exit_code` for an `OsirisError`, 1 for anything else.
        """
        with self._lock:
            if self._finished:
                raise RuntimeError("the run was already finished")
            self._finished = True
            if isinstance(error, Interrupted):
                error = self._interruption(error)
            exit_code, text, reason, error_type = self._outcome_of(error)
            for step_id in self._step_ids:
                if self._phases[step_id] == "running":
                    self.emit(StepFailed(step_id=step_id, error=text or reason, error_type=error_type))
            any_failed = "failed" in self._phases.values()
            for step_id in self._step_ids:
                if self._phases[step_id] == "pending":
                    self.emit(StepSkipped(step_id=step_id, reason="an earlier step failed" if any_failed else reason))
            status: RunStatus = "succeeded" if text is None else "failed"
            if isinstance(error, Interrupted) or (error is None and self._outcome is not None
                                                  and self._outcome.status == "interrupted"):
                status = "interrupted"
            card = RunCard(
                session_id=self.session.id, pipeline=self._manifest.pipeline.name, status=status,
                exit_code=exit_code, duration_ms=self._clock.ms(), driver_code_sha256=self.driver_code_sha256,
                manifest_driver_code_sha256=self._manifest.fingerprints.driver_code_sha256,
                error=None if text is None else self.masker.mask(text),
                steps=[self._cards[step_id].model_copy() for step_id in self._step_ids],
                execution=dict(self.execution),
            )
            self.emit(RunComplete(status=card.status, exit_code=card.exit_code, duration_ms=card.duration_ms,
                                  steps=card.summary(), error=card.error))
            write_card(self.session, card, self.masker)
            return RunResult(session=self.session, card=card)

    def _interruption(self, error: Interrupted) -> Interrupted:
        """`error`, saying which writing steps had already committed (their rows stay; the rest rolled back)."""
        committed = [s.id for s in self._manifest.steps if s.mode == "write" and self._phases[s.id] == "succeeded"]
        if not committed or "committed" in error.message:
            return error
        return Interrupted(f"{error.message}; step(s) {committed} had already committed their writes",
                           hint="those targets have the new rows; every write still in progress was rolled back")

    def _outcome_of(self, error: BaseException | None) -> tuple[int, str | None, str, str]:
        """Exit code, the run's error text, the reason to give skipped steps, and the error's type name."""
        if error is None and self._outcome is not None and self._outcome.status != "succeeded":
            text = self._outcome.error or "the run failed"
            return self._outcome.exit_code or RunError.exit_code, text, text, RunError.__name__
        if error is None and set(self._phases.values()) - {"succeeded"}:
            unfinished = [step_id for step_id, phase in self._phases.items() if phase != "succeeded"]
            error = RunError(f"the run ended before step(s) {unfinished} succeeded", hint="see events.jsonl")
        if error is None:
            return 0, None, "", ""
        if isinstance(error, OsirisError):
            return error.exit_code, str(error), error.message, type(error).__name__
        return 1, str(error), str(error), type(error).__name__

    # --- the fold ----------------------------------------------------------------------------------------------

    def _check(self, event: Event) -> None:
        if isinstance(event, RunStart):
            if self._started:
                raise EventOrderError("the run started twice")
            self._started = True
            return
        if isinstance(event, RunComplete):
            if not self._finished:
                raise EventOrderError("only the run recorder completes a run")
            return
        if self._outcome is not None and not self._finished:
            raise EventOrderError(f"'{event.event_name}' after the run completed")
        if not isinstance(event, StepEvent):
            return
        phase = self._phases.get(event.step_id)
        if phase is None:
            raise EventOrderError(f"'{event.event_name}' of unknown step '{event.step_id}'")
        allowed, _ = _NEXT.get(type(event), (_COMPONENT_PHASES, None))
        if (isinstance(event, StepProgress | StepFailed) and phase == "succeeded"
                and event.step_id not in self._streaming):
            raise EventOrderError(f"'{event.event_name}' of step '{event.step_id}' after it completed")
        if phase not in allowed:
            raise EventOrderError(f"'{event.event_name}' of step '{event.step_id}' while it is {phase}")

    def _fold(self, event: Event) -> None:
        if isinstance(event, DriversRegistered):
            self.driver_code_sha256 = event.driver_code_sha256
        if isinstance(event, StateLoaded | StateCommitted):
            self._fold_state(event)
        if not isinstance(event, StepEvent) or type(event) not in _NEXT:
            return
        card = self._cards[event.step_id]
        _, phase = _NEXT[type(event)]
        if phase is not None:
            self._phases[event.step_id] = phase
        if isinstance(event, StepStart):
            card.attempts = 1
        elif isinstance(event, StepRetry):
            card.attempts = event.attempt + 1
        elif isinstance(event, StepComplete):
            if event.streaming:
                self._streaming.add(event.step_id)
            card.status = "succeeded"
            card.rows_in, card.rows_out = event.rows_in, event.rows_out
            card.duration_ms, card.output_sha256 = event.duration_ms, event.output_sha256
        elif isinstance(event, StepFailed):
            # A step that succeeded with its output streaming fails when that stream breaks as it is read.
            self._streaming.discard(event.step_id)
            card.status, card.error, card.error_type = "failed", event.error, event.error_type
        elif isinstance(event, StepCounted):
            self._streaming.discard(event.step_id)
            card.rows_in, card.rows_out, card.output_sha256 = event.rows_in, event.rows_out, event.output_sha256

    def _fold_state(self, event: StateLoaded | StateCommitted) -> None:
        if isinstance(event, StateLoaded):
            card = self._cards[event.step_id]
            card.incremental = IncrementalCard(cursor_before=event.start, full_refresh=event.full_refresh)
        elif event.source_step in self._cards:
            card = self._cards[event.source_step]
            incremental = card.incremental or IncrementalCard()
            after = event.cursor if event.cursor is not None else incremental.cursor_after
            card.incremental = incremental.model_copy(update={"cursor_after": after, "rows_read": event.rows})

    def _write_metric(self, metric: Metric, *, ts: str | None = None) -> None:
        record = self._log.write(metric, ts=ts)
        self._notify(Metric.model_validate({k: v for k, v in record.items() if k not in ("ts", "session")}), record)

    def _notify(self, item: Event | Metric, record: dict[str, Any]) -> None:
        logged = Logged(ts=str(record["ts"]), session=str(record["session"]), item=item, record=record)
        for listener in self._listeners:
            listener(logged)
