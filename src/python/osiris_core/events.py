"""Typed events and metrics: each event and its fields are defined once here, with one JSON shape.

On disk (`events.jsonl`) an event is one JSON object: `ts`, `session`, `event` (its name) and its fields, as
documented in docs/events.md; a metric (`metrics.jsonl`) is `ts`, `session`, `step_id`, `metric`, `value` and
an optional `unit`. `EventLog` writes them masked; `parse_record` turns such a JSON object back into the typed
event or metric (how a sandbox's stream is taken in). Engine events (`ENGINE_EVENTS`) are emitted by the run
engine and the run recorder only; components add their own through `StepContext` (`ComponentEvent`, or the
typed `SourceOpened`/`OutputWritten`), always tagged with their step and never under an engine event's name.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar, Final, Literal, TextIO

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from osiris_core.masking import Masker

RECORD_KEYS: Final = frozenset({"ts", "session", "event"})
"""Keys every event record has besides its fields (component events may not use them as field names)."""


class Event(BaseModel):
    """Base of every event: immutable, no unknown fields."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: ClassVar[str]

    @property
    def event_name(self) -> str:
        return self.name

    def fields(self) -> dict[str, Any]:
        """The JSON fields of the record, besides `ts`, `session` and `event`."""
        return self.model_dump(mode="json")


class StepEvent(Event):
    step_id: str


class RunStart(Event):
    name = "run_start"
    pipeline: str
    manifest_dir: str
    steps: tuple[str, ...]


class DriversRegistered(Event):
    name = "drivers_registered"
    drivers: dict[str, str]
    """component → `module:Class` of the components the manifest uses."""
    driver_code_sha256: str


class StepStart(StepEvent):
    name = "step_start"
    component: str
    driver: str


class StepRetry(StepEvent):
    name = "step_retry"
    attempt: int = Field(ge=1)
    """The attempt that failed (1 for the first)."""
    error: str
    error_type: str
    delay_s: float = Field(ge=0)
    """How long the engine waits before the next attempt."""


class StepComplete(StepEvent):
    name = "step_complete"
    rows_in: int | None
    rows_out: int | None
    """Null while the step's output is still streaming (see `StepCounted`)."""
    streaming: bool
    duration_ms: int
    output_sha256: str | None = None


class StepFailed(StepEvent):
    name = "step_failed"
    error: str
    error_type: str
    traceback: str | None = None


class StepSkipped(StepEvent):
    name = "step_skipped"
    reason: str


PHASE_PATTERN: Final = r"^[a-z][a-z0-9_]{0,31}$"
"""What a step's phase may be called (`StepContext.progress`): a short lowercase word, safe to print anywhere."""


class StepProgress(StepEvent):
    """Work in progress in a step that runs (or whose output still streams), about once a second while rows flow.

    `rows` and `bytes` are so far: the rows the driver says it handled in this phase (`StepContext.progress`),
    else the rows (and in-memory Arrow bytes) the step has read from the streams it consumes; null when neither
    is known. `elapsed_ms` counts from the step's start.
    """

    name = "step_progress"
    phase: str = Field(pattern=PHASE_PATTERN)
    rows: int | None = Field(ge=0)
    bytes: int | None = Field(ge=0)
    elapsed_ms: int = Field(ge=0)


class StepCounted(StepEvent):
    """A step's final counts, when they differ from what `step_complete` or `step_failed` could say: a stream is
    counted as its consumer reads it."""

    name = "step_counted"
    rows_in: int | None
    rows_out: int | None
    output_sha256: str | None = None


class StateLoaded(StepEvent):
    """An incremental extractor's state, loaded from one downstream writer's target before it reads."""

    name = "state_loaded"
    pipeline: str
    writer: str
    """The writer step whose target holds the state."""
    target: str
    cursor: str | None
    """The stored cursor (typed JSON text, `osiris_core.state`); null: none (first run, or --full-refresh)."""
    start: str | None
    """The cursor the read starts from: the minimum over the targets (null: the whole source)."""
    full_refresh: bool = False
    warning: str | None = None
    """E.g. no state but the target already holds rows."""


class StateCommitted(StepEvent):
    """A writer committed an incremental upstream's new cursor in the same transaction as its rows."""

    name = "state_committed"
    source_step: str
    target: str
    cursor: str | None
    """The committed cursor; null: nothing new was read, the stored state stays."""
    rows: int
    """Rows the extractor read."""


class RunComplete(Event):
    name = "run_complete"
    status: Literal["succeeded", "failed", "interrupted"]
    exit_code: int
    duration_ms: int
    steps: dict[str, int]
    """Step counts by status."""
    error: str | None = None


class SourceOpened(StepEvent):
    """A component event: an extractor opened its source (`target` is a credential-free URI)."""

    name = "source_opened"
    target: str
    columns: tuple[str, ...]


class OutputWritten(StepEvent):
    """A component event: a writer committed `rows` rows to `target` (a credential-free URI)."""

    name = "output_written"
    target: str
    rows: int


class ComponentEvent(StepEvent):
    """Any other event a component emits: its name and free-form fields."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name = "component"
    event: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    data: dict[str, Any] = Field(default_factory=dict)

    @property
    def event_name(self) -> str:
        return self.event

    def fields(self) -> dict[str, Any]:
        return {"step_id": self.step_id, **self.data}


ENGINE_EVENTS: Final[dict[str, type[Event]]] = {cls.name: cls for cls in (
    RunStart, DriversRegistered, StepStart, StepRetry, StepComplete, StepFailed, StepSkipped, StepProgress,
    StepCounted, StateLoaded, StateCommitted, RunComplete)}
"""The engine's vocabulary: only the engine and the run recorder emit these."""
TYPED_COMPONENT_EVENTS: Final[dict[str, type[StepEvent]]] = {cls.name: cls for cls in (SourceOpened, OutputWritten)}
EVENT_NAMES: Final = frozenset(ENGINE_EVENTS)


class Metric(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    step_id: str | None
    metric: str
    value: float | int
    unit: str | None = None

    def fields(self) -> dict[str, Any]:
        fields: dict[str, Any] = {"step_id": self.step_id, "metric": self.metric, "value": self.value}
        if self.unit:
            fields["unit"] = self.unit
        return fields


class ReservedEventError(ValueError):
    """A component tried to emit an engine event, a field every record owns, or a typed event in another shape."""


def component_event(step_id: str, name: str, fields: Mapping[str, Any]) -> StepEvent:
    """The typed form of an event a component emits through `StepContext`."""
    if name in ENGINE_EVENTS:
        raise ReservedEventError(f"'{name}' is an engine event; a component cannot emit it")
    reserved = sorted((set(fields) & RECORD_KEYS) | ({"step_id"} & set(fields)))
    if reserved:
        raise ReservedEventError(f"event '{name}' has field(s) {reserved}, which every record owns")
    typed = TYPED_COMPONENT_EVENTS.get(name)
    if typed is not None:
        try:
            return typed.model_validate({"step_id": step_id, **fields})
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise ReservedEventError(f"event '{name}': field '{where}': {first['msg']} (emit it through "
                                     f"StepContext.{name}())") from None
    return ComponentEvent(step_id=step_id, event=name, data=dict(fields))


def parse_record(record: Mapping[str, Any]) -> Event | Metric:
    """The typed event or metric of a record as `EventLog` writes it; raises `ValueError` for anything else."""
    if "metric" in record:
        return Metric.model_validate({k: v for k, v in record.items() if k not in ("ts", "session")})
    name = record.get("event")
    if not isinstance(name, str):
        raise ValueError("a record without an 'event' or 'metric' name")
    fields = {k: v for k, v in record.items() if k not in RECORD_KEYS}
    engine = ENGINE_EVENTS.get(name)
    if engine is not None:
        return engine.model_validate(fields)
    step_id = fields.pop("step_id", None)
    if not isinstance(step_id, str):
        raise ValueError(f"component event '{name}' without a step_id")
    return component_event(step_id, name, fields)


@dataclass(frozen=True)
class Logged:
    """What listeners receive: a written (masked) event or metric, typed, with its record as written."""

    ts: str
    session: str
    item: Event | Metric
    record: dict[str, Any]


EventListener = Callable[[Logged], None]
"""Called with every event and metric as written (masked)."""


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


class EventLog:
    """Appends masked event and metric records to `events.jsonl` / `metrics.jsonl`."""

    def __init__(self, session_dir: Path, session_id: str, masker: Masker) -> None:
        self.session_id = session_id
        self._masker = masker
        self._lock = threading.Lock()
        self._events: TextIO = (session_dir / "events.jsonl").open("a", encoding="utf-8")
        self._metrics: TextIO = (session_dir / "metrics.jsonl").open("a", encoding="utf-8")

    def write(self, item: Event | Metric, *, ts: str | None = None) -> dict[str, Any]:
        """Write one event or metric, masked, stamped `ts` (default: now); returns the record as written."""
        stamp = ts or _now()
        if isinstance(item, Metric):
            record = {"ts": stamp, "session": self.session_id, **item.fields()}
            stream = self._metrics
        else:
            record = {"ts": stamp, "session": self.session_id, "event": item.event_name, **item.fields()}
            stream = self._events
        safe: dict[str, Any] = self._masker.mask(record)
        line = json.dumps(safe, ensure_ascii=False, default=str)
        with self._lock:
            stream.write(line + "\n")
            stream.flush()
        return safe

    def close(self) -> None:
        self._events.close()
        self._metrics.close()


class Stopwatch:
    def __init__(self) -> None:
        self._start = time.perf_counter()

    def ms(self) -> int:
        return int((time.perf_counter() - self._start) * 1000)
