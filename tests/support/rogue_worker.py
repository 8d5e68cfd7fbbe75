"""Test support: a rogue sandbox "interpreter" that speaks the worker protocol but is not the worker.

Given to the host as `--sandbox-python` (through a small shell wrapper), it receives the host's bootstrap command
line, ignores the bootstrap and the bundle, and prints protocol records (`osiris_remote.worker.protocol`) claiming that
every step succeeded — without a hello (`ROGUE_MODE=silent`), with the hello only after the records
(`ROGUE_MODE=late`, echoing the host's expected fingerprint), or with that hello first but records no engine
writes (`ROGUE_MODE=unordered`: each step completes without having started). The step ids come from `ROGUE_STEPS` (comma
separated). The host must trust none of it. With `ROGUE_MODE=greedy` it says hello with a fingerprint that is not
the host's (`greedy-trusted`: the host's own) and writes whatever reaches its stdin within 3 seconds to the file
`ROGUE_STDIN_FILE`: the host writes the connections' values only to a worker whose hello it trusts. Standard library
only: it runs as a plain script.
"""

from __future__ import annotations

import json
import os
import select
import sys
import time
from typing import Any

MARK = "\x1eosiris "


def say(kind: str, payload: dict[str, Any]) -> None:
    sys.stdout.write(MARK + json.dumps({"kind": kind, "payload": payload}) + "\n")
    sys.stdout.flush()


def read_stdin_for(seconds: float) -> bytes:
    """Whatever arrives on stdin within `seconds` (until a newline or its end)."""
    received = b""
    deadline = time.monotonic() + seconds
    while not received.endswith(b"\n") and (left := deadline - time.monotonic()) > 0:
        if not select.select([0], [], [], left)[0]:
            break
        chunk = os.read(0, 65536)
        if not chunk:
            break
        received += chunk
    return received


def main(argv: list[str]) -> int:
    mode = os.environ["ROGUE_MODE"]
    fingerprint = argv[argv.index("--expected-fingerprint") + 1]
    source = argv.index("-c") + 1  # -c SOURCE bundle.zip target bundle_sha256 ...
    say("bundle_verified", {"bundle_sha256": argv[source + 3], "files": 1})
    if mode.startswith("greedy"):
        claimed = fingerprint if mode == "greedy-trusted" else "0" * 64
        say("hello", {"driver_code_sha256": claimed, "python": "3.11"})
        with open(os.environ["ROGUE_STDIN_FILE"], "wb") as sink:
            sink.write(read_stdin_for(3.0))
        return 0
    steps = os.environ["ROGUE_STEPS"].split(",")
    if mode == "unordered":
        say("hello", {"driver_code_sha256": fingerprint, "python": "3.11"})
    for step in steps:
        if mode != "unordered":
            say("record", {"event": "step_start", "step_id": step})
        say("record", {"event": "step_complete", "step_id": step, "rows_in": 0, "rows_out": 7, "streaming": False,
                       "duration_ms": 1})
    if mode == "late":
        say("hello", {"driver_code_sha256": fingerprint, "python": "3.11"})
    card = {"session_id": "rogue", "pipeline": "rogue", "status": "succeeded", "exit_code": 0, "duration_ms": 1,
            "driver_code_sha256": fingerprint, "manifest_driver_code_sha256": fingerprint, "error": None,
            "steps": [{"step_id": s, "component": "filesystem.csv_writer", "driver": "x:Y", "status": "succeeded",
                       "rows_in": 0, "rows_out": 7} for s in steps]}
    say("run_card", {"card": card, "archive": "../logs/session.tar.gz"})
    say("finished", {"session": "rogue", "archive": "../logs/session.tar.gz", "exit_code": 0})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
