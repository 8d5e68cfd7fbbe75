"""`osiris init` and `osiris mcp`: thin printers over `osiris_cli.api`; the MCP SDK is imported only by `mcp`."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from osiris_cli.logs_commands import EXIT_OK, AddCommand
from osiris_cli.output import emit_json

if TYPE_CHECKING:
    from osiris_cli.app import App
    from osiris_cli.logs_commands import Subparsers


def cmd_init(app: App, args: argparse.Namespace) -> int:
    from osiris_cli import api  # imported when the command runs: `osiris --help` stays light

    result = api.init(app, args.directory)
    if app.json:
        emit_json(result)
        return EXIT_OK
    for path in result["created"]:
        print(f"Created {path}")
    if result["kept"]:
        print(f"Kept (already there, not overwritten): {', '.join(result['kept'])}")
    print(f"Next: {result['next']}")
    return EXIT_OK


def cmd_mcp(app: App, args: argparse.Namespace) -> int:
    from osiris_cli.mcp_server import serve_stdio

    return serve_stdio(app)


def add_init_command(add: AddCommand, sub: Subparsers) -> None:
    p = add("init", cmd_init, "create a project skeleton with a sample pipeline that runs at once (never "
            "overwrites a file)", sub)
    p.add_argument("directory", nargs="?", default=".", metavar="DIR", help="where (default: the current directory)")


def add_mcp_command(add: AddCommand, sub: Subparsers) -> None:
    add("mcp", cmd_mcp, "serve the Osiris tools to AI assistants over MCP on stdin/stdout (until stdin closes)", sub)
