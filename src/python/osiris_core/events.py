"""Events and metrics: one JSON line each, masked, in the vocabulary documented in docs/events.md."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, TextIO

from osiris_core.masking import Masker

EVENT_NAMES: Final = frozenset({
    "run_start",
    "fingerprint_verified",
    "drivers_registered",
    "step_start",
    "step_complete",
    "step_failed",
    "step_skipped",
    "run_complete",
})
"""The documented vocabulary; drivers may add their own events through `StepContext.event`."""

EventListener = Callable[[dict[str, Any]], None]
"""Called with every masked record written: events carry an `event` key, metrics a `metric` key."""


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


class EventLog:
    """Appends masked event and metric records to `events.jsonl` / `metrics.jsonl` and notifies listeners."""

    def __init__(self, session_dir: Path, session_id: str, masker: Masker) -> None:
        self.session_id = session_id
        self._masker = masker
        self._lock = threading.Lock()
        self._events: TextIO = (session_dir / "events.jsonl").open("a", encoding="utf-8")
        self._metrics: TextIO = (session_dir / "metrics.jsonl").open("a", encoding="utf-8")
        self._listeners: list[EventListener] = []

    def subscribe(self, listener: EventListener) -> None:
        self._listeners.append(listener)

    def event(self, name: str, fields: Mapping[str, Any] | None = None) -> dict[str, Any]:
        record = {"ts": _now(), "session": self.session_id, "event": name, **(fields or {})}
        return self._write(self._events, record, notify=True)

    def metric(self, step_id: str | None, name: str, value: float | int, unit: str | None = None) -> None:
        record: dict[str, Any] = {"ts": _now(), "session": self.session_id, "step_id": step_id,
                                  "metric": name, "value": value}
        if unit:
            record["unit"] = unit
        self._write(self._metrics, record, notify=True)

    def ingest(self, record: dict[str, Any]) -> dict[str, Any]:
        """Append an event or metric produced elsewhere (a sandbox), re-tagged with this session's id."""
        record = {**record, "session": self.session_id}
        return self._write(self._metrics if "metric" in record else self._events, record, notify=True)

    def _write(self, stream: TextIO, record: dict[str, Any], *, notify: bool) -> dict[str, Any]:
        safe: dict[str, Any] = self._masker.mask(record)
        line = json.dumps(safe, ensure_ascii=False, default=str)
        with self._lock:
            stream.write(line + "\n")
            stream.flush()
        if notify:
            for listener in self._listeners:
                listener(safe)
        return safe

    def close(self) -> None:
        self._events.close()
        self._metrics.close()


class Stopwatch:
    def __init__(self) -> None:
        self._start = time.perf_counter()

    def ms(self) -> int:
        return int((time.perf_counter() - self._start) * 1000)
