"""Entry point of the `osiris` command: argument parsing and the error → exit code boundary."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeAlias

from osiris_cli import __version__
from osiris_cli.app import App
from osiris_cli.discover_commands import add_discover_command
from osiris_cli.logs_commands import add_logs_commands
from osiris_cli.output import EXIT_BAD_INPUT, EXIT_RUN_FAILED, PROGRESS_MODES, one_document
from osiris_cli.project_commands import add_init_command, add_mcp_command, cmd_mcp
from osiris_cli.remote_commands import add_parity_flags, add_sandbox_flags
from osiris_core.errors import Interrupted, OsirisError
from osiris_core.masking import scrub_text

Command = Callable[[App, argparse.Namespace], int]
Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


@dataclass(frozen=True)
class Deferred:
    """A handler of `module` (`osiris_cli.commands` by default), imported when its command runs.

    Those modules import the compiler, the engine, the drivers and the sandbox proxy (pyarrow, DuckDB, pydantic,
    database clients): `osiris --help` and `--version` must not pay for them.
    """

    name: str
    module: str = "osiris_cli.commands"

    def __call__(self, app: App, args: argparse.Namespace) -> int:
        handler: Command = getattr(importlib.import_module(self.module), self.name)
        return handler(app, args)


cmd_compile = Deferred("cmd_compile")
cmd_validate = Deferred("cmd_validate")
cmd_run = Deferred("cmd_run")
cmd_parity = Deferred("cmd_parity")
cmd_sandbox_serve = Deferred("cmd_sandbox_serve")
cmd_components_list = Deferred("cmd_components_list")
cmd_components_show = Deferred("cmd_components_show")
cmd_connections_list = Deferred("cmd_connections_list")
cmd_connections_doctor = Deferred("cmd_connections_doctor")
cmd_state_show = Deferred("cmd_state_show", "osiris_cli.state_commands")
cmd_state_reset = Deferred("cmd_state_reset", "osiris_cli.state_commands")

SERVERS: tuple[Command, ...] = (cmd_sandbox_serve, cmd_mcp)
"""Commands that own standard output while they serve, and print no JSON document."""
EPILOG = "Exit codes: 0 success, 1 the run failed, 2 bad input (pipeline, config, flags, connections)."


def _common_options(*, defaults: bool) -> argparse.ArgumentParser:
    """Options accepted before and after the subcommand.

    After it they default to SUPPRESS, so that a subcommand never overwrites a value given before it.
    """
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--logs-dir", type=Path, default=Path("logs") if defaults else argparse.SUPPRESS,
                        help="session directory root (default: logs)")
    common.add_argument("--connections", type=Path, default=None if defaults else argparse.SUPPRESS,
                        metavar="PATH", help="osiris_connections.yaml to use (default: $OSIRIS_CONNECTIONS, "
                        "then ./, then the pipeline's folder)")
    common.add_argument("--json", action="store_true", default=False if defaults else argparse.SUPPRESS,
                        help="print machine-readable JSON")
    return common


def _port(text: str) -> int:
    port = int(text)
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a TCP port (0-65535)")
    return port


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text} is not a positive number of seconds")
    return value


def _progress_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--progress", choices=PROGRESS_MODES, default="auto",
                        help="live progress on stderr: tty (a live line per step), plain (a heartbeat line at most "
                        "every 10 s), none; auto (default): tty if stderr is a terminal, else plain")


def build_parser() -> argparse.ArgumentParser:
    common = _common_options(defaults=False)
    parser = argparse.ArgumentParser(prog="osiris", description="Compile and run OML data pipelines.",
                                     epilog=EPILOG, parents=[_common_options(defaults=True)])
    parser.add_argument("--version", action="version", version=f"osiris {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, handler: Command, help_text: str, target: Subparsers = sub) -> argparse.ArgumentParser:
        command = target.add_parser(name, help=help_text, description=help_text, parents=[common], epilog=EPILOG)
        command.set_defaults(handler=handler)
        return command

    p = add("compile", cmd_compile, "compile a pipeline into a manifest under logs/compile_<ts>/")
    p.add_argument("pipeline", help="the OML pipeline file")
    p = add("validate", cmd_validate, "check a pipeline without writing anything")
    p.add_argument("pipeline", help="the OML pipeline file")
    p = add("run", cmd_run, "run a pipeline, a compiled manifest, or the last compile")
    p.add_argument("target", nargs="?", help="PIPELINE.yaml or a compiled manifest.yaml")
    p.add_argument("--last-compile", action="store_true", help="run the manifest of the last `osiris compile`")
    p.add_argument("--verbose", action="store_true", help="stream one line per step event to stderr")
    p.add_argument("--dry-run", action="store_true",
                   help="print the plan (sources, targets, what happens to each) without touching data; exit 1 if "
                        "it shows the run would fail")
    p.add_argument("--full-refresh", action="store_true",
                   help="incremental extractors ignore their state and read everything; the writers downstream of "
                        "them replace their targets (and commit the new state)")
    _progress_option(p)
    add_sandbox_flags(p)

    p = add("parity", cmd_parity, "run here and in a sandbox, then compare the run cards (exit 1 on any difference)")
    p.add_argument("target", nargs="?", help="PIPELINE.yaml or a compiled manifest.yaml")
    p.add_argument("--last-compile", action="store_true", help="use the manifest of the last `osiris compile`")
    p.add_argument("--verbose", action="store_true", help="stream one line per step event to stderr")
    add_parity_flags(p)
    _progress_option(p)
    add_sandbox_flags(p)

    sandbox = sub.add_parser("sandbox", help="the local E2B-compatible sandbox server").add_subparsers(
        dest="sandbox_command", required=True, metavar="ACTION")
    p = add("serve", cmd_sandbox_serve, "serve an E2B-compatible sandbox (envd protocol) in the foreground", sandbox)
    p.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default 127.0.0.1; any other needs --token-file too)")
    p.add_argument("--port", type=_port, default=49983, help="port (0 picks a free one; default 49983)")
    p.add_argument("--root", default=None,
                   help="sandbox root directory, made 0700 (default: a new temporary one, removed on exit)")
    p.add_argument("--token-file", default=None, metavar="PATH",
                   help="write the access token here, 0600 (default: a temporary file, removed on exit)")
    p.add_argument("--lifetime", type=_seconds, default=None, metavar="SECONDS",
                   help="end the sandbox after this long: kill its processes, refuse requests (default: no limit)")

    components = sub.add_parser("components", help="list or show components").add_subparsers(
        dest="components_command", required=True, metavar="ACTION")
    add("list", cmd_components_list, "list the installed components", components)
    add("show", cmd_components_show, "show a component's spec", components).add_argument("name")

    connections = sub.add_parser("connections", help="inspect connections").add_subparsers(
        dest="connections_command", required=True, metavar="ACTION")
    add("list", cmd_connections_list, "list connections with secrets masked", connections)
    add("doctor", cmd_connections_doctor, "check each connection for real (exit 1 if one fails)",
        connections).add_argument("only", nargs="*", metavar="@family.alias", help="check only these")

    state = sub.add_parser("state", help="show or reset incremental state").add_subparsers(
        dest="state_command", required=True, metavar="ACTION")
    p = add("show", cmd_state_show, "show each incremental step's cursor, as committed in its writers' targets", state)
    p.add_argument("pipeline", help="PIPELINE.yaml or a compiled manifest.yaml")
    p = add("reset", cmd_state_reset, "delete the pipeline's incremental state: the next run reads from the start",
            state)
    p.add_argument("pipeline", help="PIPELINE.yaml or a compiled manifest.yaml")
    p.add_argument("--step", default=None, metavar="ID", help="reset only this incremental step")
    p.add_argument("--name", default=None, metavar="NAME",
                   help="reset the state stored under this pipeline name instead (e.g. the name before a rename)")

    logs = sub.add_parser("logs", help="inspect sessions under logs/").add_subparsers(
        dest="logs_command", required=True, metavar="ACTION")
    add_logs_commands(add, logs)
    add_discover_command(add, sub)
    add_init_command(add, sub)
    add_mcp_command(add, sub)
    return parser


EXIT_BROKEN_PIPE = 141
"""128 + SIGPIPE, what a shell reports for a command whose output pipe was closed."""
EXIT_INTERRUPTED = Interrupted.exit_code
"""128 + SIGINT: stopped by Ctrl-C (or SIGTERM) before or outside a run (a run's card says the same)."""


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush cannot fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def main(argv: Sequence[str] | None = None, *, owns_process: bool = False) -> int:
    args = build_parser().parse_args(argv)
    app = App(logs_dir=args.logs_dir, connections_path=args.connections, json=args.json,
              verbose=getattr(args, "verbose", False), owns_process=owns_process)
    handler: Command = args.handler
    try:
        with one_document(app.json and handler not in SERVERS):
            code = handler(app, args)
            sys.stdout.flush()  # a closed pipe surfaces here, not in the interpreter's final flush
        return code
    except OsirisError as exc:
        print(f"error: {scrub_text(exc.render())}", file=sys.stderr)
        return exc.exit_code
    except BrokenPipeError:  # the reader went away (`osiris … | head`): not an error of ours, and nothing to say
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    except OSError as exc:  # a path the user gave (logs dir, sandbox root, port) that cannot be used
        where = f" ({exc.filename})" if exc.filename else ""
        print(f"error: {exc.strerror or exc}{where} — check the path or port you gave", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # the last boundary: one line, never a traceback
        print(f"error: internal error ({type(exc).__name__}): {scrub_text(str(exc))} — please report this",
              file=sys.stderr)
        return EXIT_RUN_FAILED


def run() -> None:
    code = main(owns_process=True)
    if code == EXIT_INTERRUPTED:
        # A stopped run can leave native threads (DuckDB scanning a Python stream, ConnectorX) that would call into
        # an interpreter being finalized and abort it; the card is written and the output flushed, so end here.
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    run()

__all__ = ["EXIT_BAD_INPUT", "build_parser", "main", "run"]
