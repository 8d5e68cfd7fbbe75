"""`osiris discover`: a thin printer over `osiris_cli.api.discover` and `api.emit_pipeline`."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from osiris_cli.logs_commands import EXIT_OK, AddCommand
from osiris_cli.output import emit_json, table
from osiris_core.errors import InputError

if TYPE_CHECKING:
    from osiris_cli.app import App
    from osiris_cli.logs_commands import Subparsers


def _rows(rows: int | None, kind: str) -> str:
    """`table, ~1,234 rows`: every count is an estimate."""
    return kind if rows is None else f"{kind}, ~{rows:,} row{'' if rows == 1 else 's'}"


def _print(found: dict[str, Any]) -> None:
    schema = f" (schema {found['schema']})" if found["schema"] is not None else ""
    print(f"{found['connection']}: {found['location']}{schema}")
    others = [s for s in found["schemas"] if s != found["schema"]]
    if others:
        print(f"Other schemas (--schema): {', '.join(others)}")
    if not found["tables"]:
        print("No tables." if found["schema"] is not None else "No CSV files.")
    for relation in found["tables"]:
        print(f"\n{relation['name']} — {_rows(relation['rows'], relation['kind'])}")
        if relation["note"]:
            print(f"  note: {relation['note']}")
        if relation["columns"]:
            print("\n".join("  " + line for line in table(
                ["column", "type", "nullable", "primary key"],
                [(c["name"], c["type"], {True: "yes", False: "no", None: "?"}[c["nullable"]],
                  "yes" if c["primary_key"] else "") for c in relation["columns"]]).splitlines()))


def cmd_discover(app: App, args: argparse.Namespace) -> int:
    from osiris_cli import api  # imported when the command runs: `osiris --help` stays light

    if args.output is not None and not args.emit_pipeline:
        raise InputError("-o/--output goes with --emit-pipeline", hint="add --emit-pipeline TABLE ..., or drop -o")
    if not args.emit_pipeline:
        found = api.discover(app, args.connection, args.schema)
        if app.json:
            emit_json(found)
        else:
            _print(found)
        return EXIT_OK
    if args.output is None:
        raise InputError("--emit-pipeline needs -o FILE", hint="add -o pipeline.yaml (or -o - to print it)")
    written, text = api.emit_pipeline(app, args.connection, args.emit_pipeline, args.output, args.schema)
    if args.output == "-":
        sys.stdout.write(text)
    elif app.json:
        emit_json(written)
    else:
        print(f"Wrote {written['file']}: pipeline '{written['pipeline']}', {len(written['steps'])} steps, copying "
              f"into {written['target']}")
        print(f"Next: osiris validate {written['file']} && osiris run {written['file']}")
    return EXIT_OK


def add_discover_command(add: AddCommand, sub: Subparsers) -> None:
    p = add("discover", cmd_discover, "list the tables and views (or CSV files) behind a connection: row estimates, "
            "columns and their types; optionally write a starter pipeline copying some of them", sub)
    p.add_argument("connection", metavar="@family.alias", help="the connection (as in osiris_connections.yaml)")
    p.add_argument("--schema", default=None, metavar="S",
                   help="the schema to list (MySQL: a database; default: the connection's database, public, or "
                        "DuckDB's main)")
    p.add_argument("--emit-pipeline", nargs="+", default=None, metavar="TABLE",
                   help="write a starter pipeline copying these tables into output/<family>_<alias>.duckdb")
    p.add_argument("-o", "--output", default=None, metavar="FILE",
                   help="where --emit-pipeline writes the pipeline (- prints it); an existing file is never "
                        "overwritten")
