"""The worker → host wire format: one JSON object per stdout line, marked so other output cannot pass for it.

Kinds, in the only order the host accepts: `bundle_verified` (or `bundle_rejected`) from the bootstrap; `hello`
(`driver_code_sha256`) from the worker; then `record` (an event or metric exactly as the worker's run recorder
wrote it, masked), `worker_error` (the run could not start) and last `finished` (`session`, `archive`,
`exit_code`). The bootstrap writes the same mark with its own copy of `encode` (it may import nothing).
"""

from __future__ import annotations

import json
from typing import Any

MARK = "\x1eosiris "
"""Record separator + tag: a driver printing to stdout never produces this by accident."""


def encode(kind: str, payload: dict[str, Any]) -> str:
    return MARK + json.dumps({"kind": kind, "payload": payload}, ensure_ascii=False, default=str) + "\n"


def decode(line: str) -> tuple[str, dict[str, Any]] | None:
    """(kind, payload) for a protocol line; None for anything else."""
    if not line.startswith(MARK):
        return None
    try:
        message = json.loads(line[len(MARK):])
    except json.JSONDecodeError:
        return None
    if not isinstance(message, dict) or not isinstance(message.get("payload"), dict):
        return None
    return str(message.get("kind")), message["payload"]


class LineAssembler:
    """Turns output chunks (the SDK delivers chunks, not lines) into complete lines."""

    def __init__(self) -> None:
        self._partial = ""

    def feed(self, chunk: str) -> list[str]:
        text = self._partial + chunk
        *lines, self._partial = text.split("\n")
        return lines

    def flush(self) -> list[str]:
        rest, self._partial = self._partial, ""
        return [rest] if rest else []
