"""The worker: runs a compiled pipeline inside the sandbox with the local engine, streaming every record.

Started by the bootstrap from verified bundle files. Its components are those the host names (`--spec`) of the
bundle's files (`osiris_remote.worker.components`). Everything it reports goes to stdout as protocol lines
(`osiris_remote.worker.protocol`): a hello with the fingerprint of the code it runs, each event and metric as its
run recorder writes it (already masked), and at the end the session id and where the session's archive is.
The connections' values (secrets included) arrive on stdin, one line once the host trusts the hello
(`protocol.encode_values`); they never pass through the environment.
"""

from __future__ import annotations

import argparse
import os
import select
import signal
import sys
import tarfile
from pathlib import Path
from typing import Any, BinaryIO

from osiris_core.connections import Connections
from osiris_core.errors import OsirisError
from osiris_core.events import Logged
from osiris_core.execution import ExecutionSettings
from osiris_core.fingerprint import run_fingerprint
from osiris_core.interrupts import stop_on_signals
from osiris_core.malloc_arenas import limit_malloc_arenas
from osiris_core.manifest import load_compiled
from osiris_core.runner import LocalExecutor
from osiris_remote.worker.components import bundle_root, bundled_registry, bundled_specs
from osiris_remote.worker.protocol import MAX_VALUES_BYTES, decode_stop, decode_values, encode

ARCHIVE_NAME = "session.tar.gz"
EXIT_FINGERPRINT_MISMATCH = 4


def say(kind: str, payload: dict[str, Any]) -> None:
    sys.stdout.write(encode(kind, payload))
    sys.stdout.flush()


def forward(logged: Logged) -> None:
    say("record", logged.record)


def read_values(stdin: BinaryIO) -> dict[str, str]:
    """The connections' values the host writes on stdin; then stdin is /dev/null, so no child inherits the pipe.
    The pipe itself stays open on a private (non-inheritable) descriptor for the host's stop request."""
    try:
        return decode_values(stdin.readline(MAX_VALUES_BYTES + 1))
    finally:
        _listen_for_stop(os.dup(0))
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)


def _listen_for_stop(fd: int) -> None:
    """A stop request from the host signals this process as Ctrl-C signals a local run (`osiris_core.interrupts`:
    rolled back, `interrupted`). A child process listens, not a thread: ConnectorX can hold this process's GIL for
    as long as a query runs, while a signal still reaches the run's stop helper, which cancels that query."""
    worker = os.getpid()
    if os.fork():
        os.close(fd)
        return
    try:  # the listener: never returns into the worker's code
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        null = os.open(os.devnull, os.O_RDWR)
        for std in (0, 1, 2):  # the host waits for the worker's output to end: hold none of it open
            os.dup2(null, std)
        _forward_stop(fd, worker)
    finally:
        os._exit(0)


def _forward_stop(fd: int, worker: int) -> None:
    """Wait for the host's stop line on `fd`; signal `worker` with the signal it names. Ends with the worker."""
    buffer = b""
    while os.getppid() == worker:
        ready, _, _ = select.select([fd], [], [], 1.0)
        if not ready:
            continue
        chunk = os.read(fd, 4096)
        if not chunk:
            return
        buffer += chunk
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            name = decode_stop(line + b"\n")
            if name is not None:
                os.kill(worker, signal.SIGTERM if name == "SIGTERM" else signal.SIGINT)
                return


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="osiris-worker")
    parser.add_argument("--manifest", type=Path, required=True)
    parser.add_argument("--connections", type=Path, required=True)
    parser.add_argument("--logs", type=Path, required=True)
    parser.add_argument("--expected-fingerprint", required=True)
    parser.add_argument("--spec", action="append", default=[], dest="specs",
                        help="the bundle path of a component's spec.yaml the run uses (repeated)")
    parser.add_argument("--checksums", action="store_true")
    parser.add_argument("--step-timeout", type=float, default=None)
    parser.add_argument("--full-refresh", action="store_true")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    limit_malloc_arenas()  # this process exists to run the pipeline (`osiris_core.malloc_arenas`)
    try:
        specs = bundled_specs(bundle_root(), args.specs)
        registry = bundled_registry(specs)
    except OsirisError as exc:  # before the hello, the host shows stderr
        print(f"osiris worker: {exc.render()}", file=sys.stderr)
        return exc.exit_code
    fingerprint = run_fingerprint(spec.driver for spec in specs.values())
    say("hello", {"driver_code_sha256": fingerprint, "python": sys.version.split()[0]})
    if fingerprint != args.expected_fingerprint:
        say("fingerprint_mismatch", {"sandbox": fingerprint, "host": args.expected_fingerprint})
        return EXIT_FINGERPRINT_MISMATCH
    try:
        values = read_values(sys.stdin.buffer)
    except ValueError as exc:
        say("worker_error", {"error": f"the worker got no connection values from the host: {exc}", "exit_code": 1})
        return 1
    try:
        compiled = load_compiled(args.manifest)
        connections = Connections.load(args.connections)
    except OsirisError as exc:
        say("worker_error", {"error": exc.render(), "exit_code": exc.exit_code})
        return exc.exit_code
    settings = ExecutionSettings(registry, connections, args.logs, environ=values, listeners=(forward,),
                                 checksums=args.checksums, step_timeout_s=args.step_timeout,
                                 full_refresh=args.full_refresh)
    with stop_on_signals():
        result = LocalExecutor(settings).run(compiled)
    archive = args.logs / ARCHIVE_NAME
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(result.session.path, arcname=result.session.id)
    say("finished", {"session": result.session.id, "archive": str(archive), "exit_code": result.exit_code})
    return result.exit_code


def exit_now(code: int) -> None:
    """End the process once everything is said: the run is reported and its archive closed, so tearing down the
    interpreter (DuckDB, Arrow and the rest: ~50 ms) would only delay the host."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":  # the bootstrap runs this module (a package `__main__` would be no import's dependency)
    exit_now(main())
