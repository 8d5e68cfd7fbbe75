"""Live progress of a run on standard error (`--progress auto|tty|plain|none` of `run` and `parity`).

Both views fold the run's events (`step_start`, `step_progress`, `step_complete`, …) into one `Board`, so a
sandbox run, whose events the host takes in as the worker writes them, shows the same lines as a local one.
`tty` is a live view through `rich` (one line per step: phase, rows so far, rows/s, MB, elapsed); `plain` is one
heartbeat line at most every `HEARTBEAT_S` seconds. Both print the session's path when the run starts and a
summary at its end. Nothing is written to standard output, so `--json` stays one document.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Final, Literal, TextIO

from osiris_core.events import (
    EventListener,
    Logged,
    RunComplete,
    RunStart,
    StepComplete,
    StepCounted,
    StepFailed,
    StepProgress,
    StepSkipped,
    StepStart,
)

if TYPE_CHECKING:
    from rich.text import Text

HEARTBEAT_S: Final = 10.0
"""The plain view prints at most one line this often."""
FLOWING_S: Final = 3.0
"""A streamed step whose rows moved this recently counts as active."""

View = Literal["tty", "plain", "none"]
Status = Literal["running", "streamed", "succeeded", "failed", "skipped"]


def resolve_mode(mode: str, stream: TextIO) -> View:
    """The view `mode` means for `stream`."""
    if mode == "auto":
        terminal = stream.isatty() and os.environ.get("TERM") != "dumb"
        return "tty" if terminal else "plain"
    views: dict[str, View] = {"tty": "tty", "plain": "plain", "none": "none"}
    if mode not in views:
        raise ValueError(f"unknown progress mode {mode!r}")
    return views[mode]


@dataclass
class StepLine:
    """What the display knows of one step."""

    step_id: str
    status: Status
    started: float
    """Local clock at `step_start` (a sandbox step's too: its events arrive as they happen)."""
    ended: float | None = None
    phase: str | None = None
    rows: int | None = None
    bytes: int | None = None
    elapsed_ms: int | None = None
    """The engine's: at the last `step_progress`, or the step's duration once it is done."""
    moved: float | None = None
    """Local clock at the last `step_progress`."""

    def rate(self) -> float | None:
        """Rows per second over the step so far; none for a streamed producer (its consumer did its work)."""
        if self.rows is None or not self.elapsed_ms or (self.status == "streamed" and self.moved is None):
            return None
        return self.rows * 1000 / self.elapsed_ms

    def active(self, now: float) -> bool:
        flowing = self.status == "streamed" and self.moved is not None and now - self.moved < FLOWING_S
        return self.status == "running" or flowing

    def seconds(self, now: float) -> float:
        if self.status == "running":
            return now - self.started
        if self.elapsed_ms is not None:
            return self.elapsed_ms / 1000
        return (self.ended or now) - self.started

    def cells(self, now: float) -> tuple[str, str, str, str, str, str]:
        """step, phase, rows, rows/s, MB, elapsed — as text."""
        rate = self.rate()
        return (self.step_id, self.phase or self.status,
                "" if self.rows is None else f"{self.rows:,} rows",
                "" if rate is None else f"{rate:,.0f} rows/s",
                "" if self.bytes is None else f"{self.bytes / 1e6:,.1f} MB",
                _duration(self.seconds(now)))


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes}m{rest:02d}s" if minutes < 60 else f"{minutes // 60}h{minutes % 60:02d}m"


class Board:
    """The run as the display sees it, folded from its events (thread-safe)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._lines: dict[str, StepLine] = {}
        self.session: str | None = None
        self.started: float | None = None
        self.outcome: RunComplete | None = None

    def fold(self, logged: Logged) -> None:
        item, now = logged.item, self._clock()
        with self._lock:
            if isinstance(item, RunStart):
                self.session, self.started = logged.session, now
            elif isinstance(item, RunComplete):
                self.outcome = item
            elif isinstance(item, StepStart):
                self._lines[item.step_id] = StepLine(item.step_id, "running", started=now)
            elif isinstance(item, StepSkipped):
                self._lines.setdefault(item.step_id, StepLine(item.step_id, "skipped", started=now, ended=now))
            elif isinstance(item, StepProgress | StepComplete | StepFailed | StepCounted):
                line = self._lines.get(item.step_id)
                if line is not None:
                    self._step(line, item, now)

    @staticmethod
    def _step(line: StepLine, item: StepProgress | StepComplete | StepFailed | StepCounted, now: float) -> None:
        if isinstance(item, StepProgress):
            line.phase, line.rows, line.bytes, line.elapsed_ms, line.moved = (
                item.phase, item.rows, item.bytes, item.elapsed_ms, now)
        elif isinstance(item, StepComplete):
            line.status, line.ended = ("streamed" if item.streaming else "succeeded"), now
            if not item.streaming:
                line.rows, line.elapsed_ms = item.rows_out, item.duration_ms
            elif line.moved is None:
                line.elapsed_ms = item.duration_ms
        elif isinstance(item, StepFailed):
            line.status, line.ended = "failed", now
        elif item.rows_out is not None:  # the final counts of a streamed step
            line.rows = item.rows_out

    def snapshot(self) -> tuple[list[StepLine], float]:
        """Copies of the lines in the order the steps started, and the clock's now."""
        with self._lock:
            return [replace(line) for line in self._lines.values()], self._clock()

    def elapsed(self) -> float:
        with self._lock:
            return 0.0 if self.started is None else self._clock() - self.started


def heartbeat(lines: list[StepLine], now: float, run_elapsed: float) -> str | None:
    """The plain view's line: the active steps, or None when none is."""
    parts = []
    for line in (line for line in lines if line.active(now)):
        step, phase, rows, rate, size, elapsed = line.cells(now)
        figures = ", ".join(x for x in (rows, rate, size) if x)
        parts.append(f"{step} {phase}" + (f" {figures}" if figures else "") + f" ({elapsed})")
    return f"progress {_duration(run_elapsed)}: " + "; ".join(parts) if parts else None


def summary(board: Board) -> str:
    outcome = board.outcome
    status = outcome.status if outcome is not None else "stopped"
    took = _duration(outcome.duration_ms / 1000) if outcome is not None else _duration(board.elapsed())
    counts = ", ".join(f"{n} {s}" for s, n in sorted(outcome.steps.items()) if n) if outcome is not None else ""
    return f"Run {status} in {took}" + (f" ({counts})" if counts else "")


class Display:
    """A view of one run: `listen` to its events while it is `open`; closing it prints the summary."""

    def __init__(self, stream: TextIO, logs_dir: Path) -> None:
        self.stream = stream
        self.logs_dir = logs_dir
        self.board = Board()

    def listen(self, logged: Logged) -> None:
        self.board.fold(logged)
        if isinstance(logged.item, RunStart):
            self.say(f"Session: {self.logs_dir / logged.session}")

    def say(self, text: str) -> None:
        self.stream.write(text + "\n")
        self.stream.flush()

    @contextmanager
    def open(self) -> Iterator[None]:
        yield


class PlainDisplay(Display):
    def __init__(self, stream: TextIO, logs_dir: Path, every_s: float = HEARTBEAT_S) -> None:
        super().__init__(stream, logs_dir)
        self.every_s = every_s
        self._stop = threading.Event()

    def _beat(self) -> None:
        while not self._stop.wait(self.every_s):
            lines, now = self.board.snapshot()
            line = heartbeat(lines, now, self.board.elapsed())
            if line is not None:
                self.say(line)

    @contextmanager
    def open(self) -> Iterator[None]:
        beater = threading.Thread(target=self._beat, name="osiris-progress", daemon=True)
        beater.start()
        try:
            yield
        finally:
            self._stop.set()
            beater.join()
            if self.board.session is not None:
                self.say(summary(self.board))


_SYMBOLS: Final[dict[Status, tuple[str, str]]] = {
    "succeeded": ("✓", "green"), "streamed": ("↪", "cyan"), "failed": ("✗", "red"), "skipped": ("-", "dim")}
_SPINNER: Final = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"
_STYLES: Final = ("bold", "cyan", "", "", "", "")
"""Of the columns step, phase, rows, rows/s, MB, elapsed (the last four aligned right)."""


class LiveDisplay(Display):
    """The live view through `rich.live`: one line per step, redrawn four times a second (~1 ms each)."""

    def __init__(self, stream: TextIO, logs_dir: Path, *, force_terminal: bool) -> None:
        from rich.console import Console  # only this view needs rich

        super().__init__(stream, logs_dir)
        self.console = Console(file=stream, force_terminal=force_terminal or None, markup=False, highlight=False,
                               emoji=False)

    def say(self, text: str) -> None:
        from rich.text import Text

        self.console.print(Text(text))

    def render(self) -> Text:
        from rich.text import Text

        lines, now = self.board.snapshot()
        rows = [line.cells(now) for line in lines]
        widths = [max((len(row[i]) for row in rows), default=0) for i in range(len(_STYLES))]
        text = Text(no_wrap=True, overflow="ellipsis")
        for line, row in zip(lines, rows, strict=True):
            if text:
                text.append("\n")
            if line.active(now):
                text.append(_SPINNER[int(now * 10) % len(_SPINNER)], style="yellow")
            else:
                text.append(*_SYMBOLS.get(line.status, ("•", "")))
            for index, (cell, width, style) in enumerate(zip(row, widths, _STYLES, strict=True)):
                text.append("  ")
                text.append(cell.ljust(width) if index < 2 else cell.rjust(width), style=style)
        return text

    @contextmanager
    def open(self) -> Iterator[None]:
        from rich.live import Live

        live = Live(console=self.console, get_renderable=self.render, refresh_per_second=4, transient=False,
                    redirect_stdout=False, redirect_stderr=True)
        try:
            with live:
                yield
        finally:
            if self.board.session is not None:
                self.say(summary(self.board))


@contextmanager
def progress_listeners(mode: str, logs_dir: Path, stream: TextIO | None = None) -> Iterator[tuple[EventListener, ...]]:
    """The listeners that show a run's progress in `mode` on `stream` (default: standard error), for as long as
    the block runs; at its end the view stops and prints its summary."""
    out = stream if stream is not None else sys.stderr
    view = resolve_mode(mode, out)
    if view == "none":
        yield ()
        return
    # The view is decided now: a terminal stays one for rich while the run filters fd 2 (`native_panics`).
    display: Display = PlainDisplay(out, logs_dir) if view == "plain" else \
        LiveDisplay(out, logs_dir, force_terminal=True)
    with display.open():
        yield (display.listen,)
