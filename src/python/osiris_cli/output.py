"""Console rendering for the CLI: plain text tables, or JSON with --json."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Final

EXIT_OK = 0
EXIT_RUN_FAILED = 1
EXIT_BAD_INPUT = 2

PROGRESS_MODES: Final = ("auto", "tty", "plain", "none")
"""How `--progress` may show a run on stderr (`osiris_cli.progress`); `auto`: `tty` when standard error is a
terminal (not TERM=dumb), else `plain`."""


@dataclass
class _Document:
    """The output of a `--json` command, held until the command returns."""

    holding: bool = False
    text: str | None = None

    def take(self) -> str | None:
        """The held text; stop holding."""
        text, self.holding, self.text = self.text, False, None
        return text


_document = _Document()


def emit_json(value: Any) -> None:
    """Print the command's JSON document (with `--json`, once the command returns)."""
    emit_text(json.dumps(value, indent=2, sort_keys=True, default=str) + "\n")


def emit_text(text: str) -> None:
    """Print the command's whole output as it is (e.g. `logs html -o -`), held like a JSON document."""
    if not _document.holding:
        sys.stdout.write(text)
        return
    if _document.text is not None:
        raise RuntimeError("a command printed a second document")
    _document.text = text


@contextmanager
def one_document(enabled: bool) -> Iterator[None]:
    """With `--json`: while the command runs, whatever writes to standard output — print(), a driver, native code,
    a child process — lands on standard error, and the command's one document is printed when it returns (nothing
    when it raises), so standard output is exactly one JSON document or empty."""
    if not enabled:
        yield
        return
    out = sys.stdout
    out.flush()
    try:
        saved: int | None = os.dup(1)
    except OSError:
        saved = None  # no descriptor 1: nothing below Python can write there either
    if saved is not None:
        os.dup2(2, 1)
    sys.stdout = sys.stderr
    _document.holding, _document.text = True, None
    try:
        yield
    finally:
        sys.stderr.flush()
        if saved is not None:
            os.dup2(saved, 1)
            os.close(saved)
        sys.stdout = out
        text = _document.take()
    if text is not None:
        out.write(text)
        out.flush()


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[("" if v is None else str(v)) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip(),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    return "\n".join(lines)


def print_run_card(card: dict[str, Any]) -> None:
    rows = [(s["step_id"], s["component"], s["status"], s["rows_in"], s["rows_out"], s["duration_ms"])
            for s in card["steps"]]
    print(f"Run card — pipeline '{card['pipeline']}', session {card['session_id']}")
    print(table(["step", "component", "status", "rows_in", "rows_out", "ms"], rows))
    counts: dict[str, int] = {}
    for step in card["steps"]:
        counts[step["status"]] = counts.get(step["status"], 0) + 1
    summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    print(f"Status: {card['status']} ({summary}) in {card['duration_ms']} ms")
    for step in card["steps"]:
        incremental = step.get("incremental")
        if incremental:
            refresh = " (--full-refresh)" if incremental["full_refresh"] else ""
            print(f"Incremental: {step['step_id']} read {incremental['rows_read']} rows from cursor "
                  f"{incremental['cursor_before'] or '(start)'} to {incremental['cursor_after'] or '(none)'}{refresh}")
    if card.get("error"):
        print(f"Error: {card['error']}")
