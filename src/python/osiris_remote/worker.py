"""The worker: runs a compiled pipeline inside the sandbox with the same engine, streaming every record.

Started by the bootstrap from verified bundle files. Everything it reports goes to stdout as protocol
lines (`osiris_remote.protocol`): a hello with its code fingerprint, each event and metric as the engine
writes it (already masked), and finally the run card and where the session's archive is.
"""

from __future__ import annotations

import argparse
import sys
import tarfile
from pathlib import Path
from typing import Any

from osiris_core.compiler import code_packages
from osiris_core.connections import Connections
from osiris_core.errors import OsirisError
from osiris_core.fingerprint import code_fingerprint
from osiris_core.manifest import load_compiled
from osiris_core.runner import Runner
from osiris_drivers.registry import default_registry
from osiris_remote.protocol import encode

ARCHIVE_NAME = "session.tar.gz"
EXIT_FINGERPRINT_MISMATCH = 4


def say(kind: str, payload: dict[str, Any]) -> None:
    sys.stdout.write(encode(kind, payload))
    sys.stdout.flush()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="osiris-worker")
    parser.add_argument("--manifest", type=Path, required=True)
    parser.add_argument("--connections", type=Path, required=True)
    parser.add_argument("--logs", type=Path, required=True)
    parser.add_argument("--expected-fingerprint", required=True)
    parser.add_argument("--checksums", action="store_true")
    parser.add_argument("--step-timeout", type=float, default=None)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    registry = default_registry()
    fingerprint = code_fingerprint(code_packages(registry))
    say("hello", {"driver_code_sha256": fingerprint, "python": sys.version.split()[0]})
    if fingerprint != args.expected_fingerprint:
        say("fingerprint_mismatch", {"sandbox": fingerprint, "host": args.expected_fingerprint})
        return EXIT_FINGERPRINT_MISMATCH
    try:
        compiled = load_compiled(args.manifest)
        connections = Connections.load(args.connections)
    except OsirisError as exc:
        say("worker_error", {"error": exc.render(), "exit_code": exc.exit_code})
        return exc.exit_code
    runner = Runner(registry, connections, args.logs, listeners=(lambda record: say("record", record),),
                    checksums=args.checksums, step_timeout_s=args.step_timeout)
    result = runner.run(compiled)
    archive = args.logs / ARCHIVE_NAME
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(result.session.path, arcname=result.session.id)
    say("run_card", {"card": result.card.model_dump(mode="json"), "archive": str(archive)})
    return result.exit_code


if __name__ == "__main__":
    sys.exit(main())
