"""Console rendering for the CLI: plain text tables, or JSON with --json."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any


def emit_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, sort_keys=True, default=str) + "\n")


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
    if card.get("error"):
        print(f"Error: {card['error']}")
