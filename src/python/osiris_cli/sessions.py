"""Sessions under `logs/` as a person asks about them: one summary per session, filters, and clean-up.

A summary is a JSON-able dict: `session`, `kind` (`run`/`compile`), `pipeline`, `started_at` (UTC, from the
session id), `duration_ms`, `status` and `place` (where the steps ran), plus `path`. `status` is the run
card's (`succeeded`/`failed`/`interrupted`), `compiled` for a compile session, `incomplete` for a session that never got
its card or metadata (interrupted, or still running) and `unknown` when those files cannot be read.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from datetime import UTC, datetime, timedelta
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, Final

from osiris_core.errors import InputError, OsirisError
from osiris_core.input_files import MAX_JSON_BYTES, MAX_POINTER_BYTES, read_regular_text
from osiris_core.run_session import RUN_CARD_FILE
from osiris_core.session import LAST_COMPILE_FILE, list_sessions

SESSION_NAME: Final = re.compile(r"^(?P<kind>run|compile)_(?P<stamp>\d{8}T\d{6}_\d{6})Z(?:_\d+)?$")
STATUSES: Final = ("succeeded", "failed", "interrupted", "compiled", "incomplete", "unknown")
EVENTS_FILE: Final = "events.jsonl"
META_FILE: Final = "compiled/meta.json"
MAX_EVENT_LINE: Final = 4 * 1024 * 1024
RECENT_S: Final = 15 * 60
"""An incomplete session touched this recently may still be running: `gc` leaves it alone."""
_AGE = re.compile(r"^(?P<n>\d+)(?P<unit>[smhdw])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
SESSION_HINT: Final = "give a session id from `osiris logs list`, e.g. run_20260101T000000_000000Z"


def started_at(session: str) -> datetime | None:
    """When the session began (UTC), from its id; None for a name that is not a session id."""
    match = SESSION_NAME.match(session)
    if match is None:
        return None
    return datetime.strptime(match["stamp"], "%Y%m%dT%H%M%S_%f").replace(tzinfo=UTC)


def iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def human_duration(ms: Any) -> str:
    """`72 ms`, `3.4 s`, `2 min 5 s`, `1 h 2 min`; `—` when unknown."""
    if not isinstance(ms, int | float) or isinstance(ms, bool):
        return "—"
    if ms < 1000:
        return f"{ms:.0f} ms"
    seconds = ms / 1000
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def session_dir(logs_dir: Path, session: str) -> Path:
    """The directory of session `session` (an id, never a path) under `logs_dir`."""
    if SESSION_NAME.match(session) is None:
        raise InputError(f"'{session}' is not a session id", hint=SESSION_HINT)
    path = logs_dir / session
    if not path.is_dir():
        raise InputError(f"no session '{session}' in {logs_dir}", hint="see `osiris logs list`")
    return path


def read_json_file(path: Path) -> dict[str, Any] | None:
    """A JSON object written by Osiris, or None when it is missing; unreadable or torn files raise ValueError."""
    if not path.exists():
        return None
    try:
        data = json.loads(read_regular_text(path, limit=MAX_JSON_BYTES, what="session"))
    except OsirisError as exc:
        raise ValueError(exc.render()) from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: not a JSON object")
    return data


def read_events(path: Path) -> list[dict[str, Any]]:
    """The session's events, in order; a torn or foreign line (an interrupted write) is skipped."""
    events: list[dict[str, Any]] = []
    file = path / EVENTS_FILE
    if not file.is_file():
        return events
    with file.open(encoding="utf-8", errors="replace") as stream:
        while line := stream.readline(MAX_EVENT_LINE):
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict) and isinstance(record.get("event"), str):
                events.append(record)
    return events


def _first_event(path: Path) -> dict[str, Any] | None:
    file = path / EVENTS_FILE
    if not file.is_file():
        return None
    with file.open(encoding="utf-8", errors="replace") as stream:
        line = stream.readline(MAX_EVENT_LINE)
    try:
        record = json.loads(line)
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


def place(execution: Any) -> str:
    """`local`, or `sandbox:<backend>`, from a run card's `execution`."""
    if not isinstance(execution, dict) or execution.get("mode") != "sandbox":
        return "local"
    return f"sandbox:{execution.get('backend') or 'unknown'}"


def summarize(path: Path) -> dict[str, Any]:
    """One session's summary (see the module docstring)."""
    match = SESSION_NAME.match(path.name)
    kind = match["kind"] if match else path.name.split("_", 1)[0]
    summary: dict[str, Any] = {"session": path.name, "kind": kind, "pipeline": None,
                               "started_at": iso(started_at(path.name)), "duration_ms": None,
                               "status": "incomplete", "place": None, "path": str(path)}
    try:
        if kind == "run":
            card = read_json_file(path / RUN_CARD_FILE)
            if card is None:
                first = _first_event(path)
                if first is not None and first.get("event") == "run_start":
                    summary["pipeline"] = first.get("pipeline")
                return summary
            summary.update(pipeline=card["pipeline"], duration_ms=card["duration_ms"], status=card["status"],
                           place=place(card.get("execution")))
            return summary
        if read_json_file(path / META_FILE) is None:
            return summary
        summary["status"] = "compiled"
        from osiris_core.manifest import load_manifest  # pydantic: only when a compile session is listed

        summary["pipeline"] = load_manifest(path / "compiled" / "manifest.yaml").pipeline.name
    except (OSError, ValueError, KeyError, TypeError, OsirisError):
        summary["status"] = "unknown"
    return summary


def parse_since(text: str, now: datetime) -> datetime:
    """`2h`, `30m`, `7d`, `2w` before `now`, or an ISO date/time (UTC when it names no zone)."""
    age = _AGE.match(text.strip())
    if age is not None:
        return now - timedelta(seconds=int(age["n"]) * _UNIT_S[age["unit"]])
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise InputError(f"since {text!r} is neither an ISO date/time nor an age",
                         hint="write e.g. 2026-01-31, 2026-01-31T08:00Z, 90m, 2h or 7d") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def list_summaries(logs_dir: Path, *, pipeline: str | None = None, status: str | None = None,
                   since: str | None = None, limit: int | None = None,
                   now: datetime | None = None) -> list[dict[str, Any]]:
    """Summaries of the sessions under `logs_dir`, newest first, filtered (`pipeline` may be a glob)."""
    if status is not None and status not in STATUSES:
        raise InputError(f"unknown status {status!r}", hint=f"use one of {', '.join(STATUSES)}")
    if limit is not None and limit < 1:
        raise InputError(f"limit {limit} must be at least 1", hint="give a positive number of sessions")
    cutoff = parse_since(since, now or datetime.now(UTC)) if since else None
    found: list[dict[str, Any]] = []
    for path in list_sessions(logs_dir):
        begun = started_at(path.name)
        if begun is None or (cutoff is not None and begun < cutoff):
            continue
        summary = summarize(path)
        if status is not None and summary["status"] != status:
            continue
        if pipeline is not None and not fnmatchcase(str(summary["pipeline"] or ""), pipeline):
            continue
        found.append(summary)
        if limit is not None and len(found) >= limit:
            break
    return found


def _last_compile_session(logs_dir: Path) -> str | None:
    """The compile session `logs/last_compile` points to (so `run --last-compile` keeps working)."""
    pointer = logs_dir / LAST_COMPILE_FILE
    try:
        target = Path(read_regular_text(pointer, limit=MAX_POINTER_BYTES, what="last-compile pointer").strip())
    except OsirisError:
        return None
    parent = target.parent.parent  # <session>/compiled/manifest.yaml
    return parent.name if parent.parent.resolve() == logs_dir.resolve() else None


def _may_be_running(path: Path, now_s: float) -> bool:
    try:
        newest = max((p.stat().st_mtime for p in (path, path / EVENTS_FILE) if p.exists()), default=0.0)
    except OSError:
        return True
    return now_s - newest < RECENT_S


def collect_garbage(logs_dir: Path, *, keep: int | None, older_than_days: float | None, dry_run: bool = False,
                    now: datetime | None = None) -> dict[str, Any]:
    """Remove whole session directories: those beyond the newest `keep`, and/or older than `older_than_days`.

    Never removed: the newest `keep` sessions, the last compile (`--last-compile` needs it), an incomplete
    session written to in the last 15 minutes (it may still be running), and anything that is not a session
    directory (symbolic links included).
    """
    if keep is None and older_than_days is None:
        raise InputError("nothing to collect: no rule given", hint="give --keep N, --older-than DAYS, or both")
    if keep is not None and keep < 0:
        raise InputError(f"--keep {keep} must be 0 or more", hint="give how many of the newest sessions to keep")
    if older_than_days is not None and not 0 <= older_than_days < float("inf"):
        raise InputError(f"--older-than {older_than_days} is not a number of days", hint="give e.g. --older-than 30")
    moment = now or datetime.now(UTC)
    cutoff = moment - timedelta(days=older_than_days) if older_than_days is not None else None
    sessions = [p for p in list_sessions(logs_dir) if not p.is_symlink() and started_at(p.name) is not None]
    protected = {p.name for p in sessions[: keep or 0]}
    last_compile = _last_compile_session(logs_dir)
    if last_compile is not None:
        protected.add(last_compile)
    removed: list[dict[str, Any]] = []
    failed: list[dict[str, str]] = []
    for path in sessions:
        begun = started_at(path.name)
        assert begun is not None
        if path.name in protected or (cutoff is not None and begun >= cutoff):
            continue
        summary = summarize(path)
        if summary["status"] == "incomplete" and _may_be_running(path, time.time()):
            continue
        if not dry_run:
            try:
                shutil.rmtree(path)
            except OSError as exc:
                failed.append({"session": path.name, "error": f"{exc.strerror or exc} ({exc.filename})"})
                continue
        removed.append(summary)
    return {"removed": removed, "failed": failed, "kept": len(sessions) - len(removed) - len(failed),
            "dry_run": dry_run}
