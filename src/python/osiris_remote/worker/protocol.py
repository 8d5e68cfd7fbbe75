"""The wire format between host and worker.

Worker → host: one JSON object per stdout line, marked so other output cannot pass for it. Kinds, in the only
order the host accepts: `bundle_verified` (or `bundle_rejected`) from the bootstrap; `hello`
(`driver_code_sha256`) from the worker; then `record` (an event or metric exactly as the worker's run recorder
wrote it, masked), `worker_error` (the run could not start) and last `finished` (`session`, `archive`,
`exit_code`). The bootstrap writes the same mark with its own copy of `encode` (it may import nothing).

Host → worker: once the worker's hello is trusted, the host writes one line on its stdin, the values of the
connections' `${VAR}` references (`encode_values`), secrets included; nothing secret is ever in the worker's
environment or command line, which every process listing shows. When the host is asked to stop (SIGINT/SIGTERM)
it may then write one more line, `encode_stop`: the worker stops its run as the signal would stop a local one.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

MAX_VALUES_BYTES = 16 * 1024 * 1024
"""The longest line of connection values the worker reads."""

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


def encode_values(values: Mapping[str, str]) -> bytes:
    """The host's one line to the worker: the connections' values by variable name (ASCII: any string survives)."""
    return json.dumps(dict(values)).encode() + b"\n"


def decode_values(line: bytes) -> dict[str, str]:
    """The values `encode_values` wrote; ValueError for anything else (nothing, a cut line, another shape)."""
    if not line.endswith(b"\n"):
        raise ValueError("no complete line of connection values on stdin")
    values = json.loads(line)
    if not isinstance(values, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in values.items()):
        raise ValueError("the connection values on stdin are not an object of strings")
    return values


def encode_stop(signal_name: str) -> bytes:
    """The host's stop request: the worker's run ends `interrupted`, its writes in progress rolled back."""
    return json.dumps({"stop": signal_name}).encode() + b"\n"


def decode_stop(line: bytes) -> str | None:
    """The signal name of a stop request line; None for anything else."""
    try:
        message = json.loads(line)
    except ValueError:
        return None
    stop = message.get("stop") if isinstance(message, dict) else None
    return stop if isinstance(stop, str) and stop.isidentifier() else None


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
