"""`osiris logs list|show|gc|html`: thin printers over `osiris_cli.api`."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from osiris_cli.output import emit_json, emit_text, print_run_card, table
from osiris_cli.sessions import STATUSES, human_duration

if TYPE_CHECKING:
    from osiris_cli.app import App
    Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]

Command = Callable[["App", argparse.Namespace], int]
AddCommand = Callable[[str, Command, str, "Subparsers"], argparse.ArgumentParser]

EXIT_OK = 0
EXIT_FAILED = 1


def _started(text: str | None) -> str:
    return (text or "").replace("T", " ")


def cmd_logs_list(app: App, args: argparse.Namespace) -> int:
    from osiris_cli import api  # imported when the command runs: `osiris --help` stays light

    rows = api.logs_list(app, pipeline=args.pipeline, status=args.status, since=args.since, limit=args.limit)
    if app.json:
        emit_json(rows)
        return EXIT_OK
    if not rows:
        print(f"No sessions in {app.logs_dir} match." if any((args.pipeline, args.status, args.since))
              else f"No sessions in {app.logs_dir}.")
        return EXIT_OK
    print(table(["session", "pipeline", "started (UTC)", "duration", "status", "place"],
                [(r["session"], r["pipeline"] or "?", _started(r["started_at"]),
                  human_duration(r["duration_ms"]) if r["duration_ms"] is not None else "",
                  r["status"], r["place"] or "") for r in rows]))
    return EXIT_OK


def cmd_logs_show(app: App, args: argparse.Namespace) -> int:
    from osiris_cli import api  # imported when the command runs: `osiris --help` stays light

    shown = api.logs_show(app, args.session, events=args.events)
    if app.json:
        emit_json(shown)
        return EXIT_OK
    if "steps" in shown:
        print_run_card(shown)
    elif "source" in shown:
        print(f"Compile session {shown['session_id']} of {shown['source']}")
        print(f"Manifest: {app.logs_dir / args.session / 'compiled' / 'manifest.yaml'}")
    else:
        print(f"Session {shown['session']} (pipeline {shown['pipeline'] or 'unknown'}) is {shown['status']}: "
              "it was interrupted or is still running; `--events` shows how far it got")
    for event in shown.get("events", []):
        print(json.dumps(event, ensure_ascii=False, default=str))
    return EXIT_OK


def cmd_logs_gc(app: App, args: argparse.Namespace) -> int:
    from osiris_cli import api  # imported when the command runs: `osiris --help` stays light

    result = api.logs_gc(app, keep=args.keep, older_than_days=args.older_than, dry_run=args.dry_run)
    if app.json:
        emit_json(result)
    else:
        verb = "Would remove" if result["dry_run"] else "Removed"
        for session in result["removed"]:
            print(f"{verb} {session['path']}  ({session['pipeline'] or '?'}, {session['status']}, "
                  f"{_started(session['started_at'])})")
        for failure in result["failed"]:
            print(f"error: could not remove {failure['session']}: {failure['error']}", file=sys.stderr)
        print(f"{verb} {len(result['removed'])} session(s); kept {result['kept']}.")
    return EXIT_FAILED if result["failed"] else EXIT_OK


def cmd_logs_html(app: App, args: argparse.Namespace) -> int:
    from osiris_cli import api  # imported when the command runs: `osiris --help` stays light

    if args.output == "-":
        emit_text(api.report_html(app, args.session)[1])
        return EXIT_OK
    result = api.logs_html(app, args.session, args.output)
    if app.json:
        emit_json(result)
    else:
        print(f"Report of {result['session']} ({result['status']}) → {result['file']}")
    return EXIT_OK


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is negative")
    return value


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not at least 1")
    return value


def _days(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of days") from None
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text} is not a number of days")
    return value


def add_logs_commands(add: AddCommand, logs: Subparsers) -> None:
    p = add("list", cmd_logs_list, "list sessions, newest first", logs)
    p.add_argument("--limit", type=_positive, default=20, help="how many sessions to list (default 20)")
    p.add_argument("--pipeline", default=None, metavar="NAME", help="only this pipeline (a glob: 'movies-*')")
    p.add_argument("--status", choices=STATUSES, default=None, help="only sessions with this status")
    p.add_argument("--since", default=None, metavar="WHEN",
                   help="only sessions started since WHEN: an ISO date/time (UTC unless it names a zone) "
                        "or an age such as 90m, 2h, 7d, 2w")
    p = add("show", cmd_logs_show, "show a session's run card or compile metadata", logs)
    p.add_argument("session", help="session id, e.g. run_20260101T000000_000000Z")
    p.add_argument("--events", action="store_true", help="also print the session's events")
    p = add("gc", cmd_logs_gc, "remove old sessions (whole directories); never the newest --keep N", logs)
    p.add_argument("--keep", type=_non_negative, default=None, metavar="N",
                   help="keep the newest N sessions, remove the others (with --older-than: only those older)")
    p.add_argument("--older-than", type=_days, default=None, metavar="DAYS",
                   help="remove sessions started more than DAYS days ago")
    p.add_argument("--dry-run", action="store_true", help="print what would be removed, remove nothing")
    p = add("html", cmd_logs_html, "write a self-contained HTML report of a run", logs)
    p.add_argument("session", help="run session id, e.g. run_20260101T000000_000000Z")
    p.add_argument("-o", "--output", default=None, metavar="FILE",
                   help="where to write it (default: report.html in the session's directory; '-' for stdout)")
