"""Keep Rust panic reports off the user's terminal while a run executes.

ConnectorX (the SQL extractors) panics in its own thread when the database fails a query mid-stream or a stop
signal cancels it; Rust then writes a report to file descriptor 2 that Python cannot intercept. The step's error
already says what happened (`osiris_drivers.sql.connectorx.database_error`), so during the run fd 2 goes through
a pipe and a thread passes everything on except such reports (`thread '…' panicked at …` through Rust's `note:`
line, at most `MAX_REPORT_LINES` lines). The extractors turn backtraces off, so a report is a few hundred bytes: it
always fits the pipe even while ConnectorX holds the GIL the thread needs.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import threading
from collections.abc import Iterator

PANIC_START = re.compile(rb"^thread '[^']*'(?: \(\d+\))? panicked at ")
PANIC_END = re.compile(rb"^note: run with `RUST_BACKTRACE")
MAX_REPORT_LINES = 40
_PREFIX = b"thread '"


class _Filter:
    def __init__(self, out: int) -> None:
        self.out = out
        self.pending = b""
        self.dropping = 0
        """Lines of a panic report dropped so far (0: not in one)."""

    def _write(self, data: bytes) -> None:
        while data:
            data = data[os.write(self.out, data):]

    def feed(self, data: bytes) -> None:
        self.pending += data
        while b"\n" in self.pending:
            line, self.pending = self.pending.split(b"\n", 1)
            self._line(line + b"\n")
        # A partial line goes on at once unless it may begin a report (or lies inside one).
        if self.pending and not self.dropping and not _PREFIX.startswith(self.pending[:len(_PREFIX)]):
            self._write(self.pending)
            self.pending = b""

    def _line(self, line: bytes) -> None:
        if self.dropping:
            self.dropping += 1
            if PANIC_END.match(line) or self.dropping > MAX_REPORT_LINES:
                self.dropping = 0
            return
        if PANIC_START.match(line):
            self.dropping = 1
            return
        self._write(line)

    def close(self) -> None:
        if self.pending and not self.dropping:
            self._write(self.pending)


@contextlib.contextmanager
def quiet_native_panics() -> Iterator[None]:
    """Inside the block, fd 2 passes through the filter; afterwards it is the original again, everything written
    meanwhile passed on."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
        read, write = os.pipe()
    except (OSError, ValueError):  # no usable fd 2: nothing to keep clean
        yield
        return
    os.dup2(write, 2)
    os.close(write)
    filtered = _Filter(saved)

    def forward() -> None:
        with contextlib.suppress(OSError):
            while chunk := os.read(read, 65536):
                filtered.feed(chunk)
            filtered.close()

    thread = threading.Thread(target=forward, name="osiris-stderr", daemon=True)
    thread.start()
    try:
        yield
    finally:
        with contextlib.suppress(ValueError, OSError):
            sys.stderr.flush()
        os.dup2(saved, 2)  # the pipe's last writer here closes: the thread sees its end
        thread.join(timeout=2)
        os.close(read)
        os.close(saved)
