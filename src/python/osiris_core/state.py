"""Incremental state: what an incremental extractor read up to, committed by its writers with the rows.

A state record is keyed by pipeline (the OML name), extractor step id and target (the writer's credential-free
URI). Its cursor is typed JSON text that keeps full precision (`encode_cursor`/`decode_cursor`): a list of
`[kind, text]` pairs, one per cursor column, kinds `int`, `decimal`, `float`, `str`, `date`, `datetime`.

The engine and the drivers meet here (core imports no driver):

- an extractor `Driver.incremental(config)` says the step reads incrementally;
- a writer `Driver.state_store(step_id=, config=)` returns a `StateStore` over its target (the state lives in
  the target, so it commits in the rows' transaction);
- the engine hands the extractor an `IncrementalRead` (where to start; the extractor records the max cursor of the
  batches it yields) and each downstream writer its `StateCommit`s through `StepContext`.
"""

from __future__ import annotations

import json
import threading
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, TypeAlias

CursorValue: TypeAlias = int | Decimal | float | str | date | datetime
"""One cursor column's value (a `datetime` is also a `date`: check it first)."""
Cursor: TypeAlias = tuple[CursorValue, ...]
"""A cursor: one value per cursor column, compared lexicographically."""


class CursorError(ValueError):
    """A stored cursor that is no cursor (hand-edited, or written by another tool)."""


def _kind(value: CursorValue) -> str:
    if isinstance(value, bool):
        raise CursorError("a boolean is no cursor value")
    if isinstance(value, datetime):
        return "datetime"
    if isinstance(value, date):
        return "date"
    if isinstance(value, int):
        return "int"
    if isinstance(value, Decimal):
        return "decimal"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    raise CursorError(f"a {type(value).__name__} is no cursor value")


def _text(value: CursorValue) -> str:
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float):
        return repr(value)
    return str(value)


def encode_cursor(cursor: Cursor) -> str:
    """The cursor as typed JSON text (full precision: µs timestamps, decimals, big integers)."""
    return json.dumps([[_kind(v), _text(v)] for v in cursor], separators=(",", ":"))


_DECODERS: dict[str, Any] = {"int": int, "decimal": Decimal, "float": float, "str": str,
                             "date": date.fromisoformat, "datetime": datetime.fromisoformat}


def decode_cursor(text: str) -> Cursor:
    """The cursor `encode_cursor` wrote; `CursorError` for anything else."""
    try:
        pairs = json.loads(text)
        if not isinstance(pairs, list) or not pairs:
            raise ValueError("not a non-empty list")
        return tuple(_DECODERS[kind](value) for kind, value in pairs)
    except (ValueError, TypeError, KeyError, ArithmeticError) as exc:
        raise CursorError(f"not an Osiris cursor ({' '.join(str(exc).split())[:80]}): {text[:80]!r}") from None


def cursor_min(cursors: Sequence[Cursor]) -> Cursor:
    """The smallest cursor (lexicographic); cursors of different types compare by their text."""
    try:
        return min(cursors)
    except TypeError:
        return min(cursors, key=lambda c: tuple(_text(v) for v in c))


@dataclass(frozen=True)
class StateRecord:
    """One row of a target's state table."""

    pipeline: str
    step: str
    target: str
    cursor: str
    """`encode_cursor` text."""
    rows: int
    """Rows the extractor read in the run that committed it."""
    updated_at: str
    """ISO 8601, UTC."""
    session_id: str

    def as_json(self) -> dict[str, Any]:
        return {"pipeline": self.pipeline, "step": self.step, "target": self.target, "cursor": self.cursor,
                "rows": self.rows, "updated_at": self.updated_at, "session": self.session_id}


class StateStore(ABC):
    """The state table in one writer's target, as the engine and `osiris state` use it."""

    target: str
    """The writer's credential-free target URI (part of every record's key)."""
    deduplicates: bool
    """The write deduplicates rows by key (upsert with primary_key), so a boundary row read twice lands once."""
    write_mode: str
    full_extract_only: str | None = None
    """What makes the write correct only over a full extract (e.g. `delete_missing: hard`: every key the input
    lacks is deleted); None: nothing. An incremental upstream is refused, unless `--full-refresh` reads it all."""

    @abstractmethod
    def records(self, pipeline: str | None = None) -> list[StateRecord]:
        """The state records of this target (of `pipeline`, or of every pipeline); none when there is no table."""

    @abstractmethod
    def target_has_rows(self) -> bool:
        """The target exists and holds at least one row."""

    @abstractmethod
    def reset(self, pipeline: str, step: str | None) -> int:
        """Delete `pipeline`'s records of this target (of `step` only when given); how many went."""


@dataclass
class IncrementalRead:
    """The engine's handle on one incremental extractor's read: where it starts, what it has read so far."""

    step_id: str
    start: Cursor | None
    """Read rows with cursor >= this (minus the lookback); None: from `initial_value`, or everything."""
    full_refresh: bool = False
    cursor: Cursor | None = None
    """The max cursor over the batches the extractor yielded so far (None: no row with a cursor yet)."""
    rows: int = 0
    complete: bool = False
    """The extractor's stream ended (only then may the cursor be committed)."""
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def advance(self, cursor: Cursor | None, rows: int) -> None:
        """A batch of `rows` rows whose max cursor is `cursor` was yielded."""
        with self._lock:
            self.rows += rows
            if cursor is not None and (self.cursor is None or cursor_min([self.cursor, cursor]) == self.cursor):
                self.cursor = cursor

    def end(self) -> None:
        self.complete = True


def now_utc() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


@dataclass(frozen=True)
class StateCommit:
    """What a writer commits in its transaction for one incremental upstream."""

    pipeline: str
    step: str
    """The incremental extractor's step id."""
    target: str
    read: IncrementalRead
    session_id: str

    def record(self) -> StateRecord | None:
        """The record to commit now; None when there is nothing new (no cursor read, or the stream did not end:
        re-reading is always safe, skipping never is)."""
        read = self.read
        if not read.complete or read.cursor is None:
            return None
        return StateRecord(self.pipeline, self.step, self.target, encode_cursor(read.cursor), read.rows, now_utc(),
                           self.session_id)
