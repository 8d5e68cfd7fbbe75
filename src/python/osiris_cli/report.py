"""What a run report shows, gathered from a run session: the card, the step graph, the timeline, the configs.

Everything comes from files the run wrote (already masked) and is masked again on the way out; the result is
JSON-able and is what `report_html` draws.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from osiris_cli.redact import mask_strings
from osiris_cli.sessions import read_events, read_json_file, session_dir, started_at, summarize
from osiris_core.errors import InputError, OsirisError
from osiris_core.manifest import MANIFEST_FILE, Manifest, load_manifest
from osiris_core.masking import Masker
from osiris_core.run_session import RUN_CARD_FILE
from osiris_core.session import list_sessions

HINT_SEPARATOR = " — "
"""How `OsirisError.render` joins a message and its hint."""
MAX_COMPILES_SEARCHED = 200
MAX_EVENTS = 2000
"""Events a report lists (the first ones; the total is given)."""
_STATUS_BY_EVENT = {"step_complete": "succeeded", "step_failed": "failed", "step_skipped": "skipped"}


def split_hint(error: str | None) -> dict[str, str | None] | None:
    """`{"message", "hint"}` of a rendered error (`message — hint`)."""
    if not error:
        return None
    message, sep, hint = error.partition(HINT_SEPARATOR)
    return {"message": message, "hint": hint if sep else None}


def _ts(event: dict[str, Any]) -> datetime | None:
    try:
        return datetime.fromisoformat(str(event["ts"]).replace("Z", "+00:00"))
    except (KeyError, ValueError):
        return None


def _needs_of(manifest: Manifest) -> dict[str, list[str]]:
    return {s.id: list(s.needs) for s in manifest.steps}


def _recorded_needs(logs_dir: Path, manifest_dir: Any) -> tuple[dict[str, list[str]] | None, str | None]:
    """The `needs` of each step from the manifest the run recorded in `run_start`, or why there are none."""
    if not isinstance(manifest_dir, str) or not manifest_dir:
        return None, "the run did not record its manifest"
    recorded = Path(manifest_dir)
    candidates = [recorded / MANIFEST_FILE]
    if recorded.name == "compiled" and recorded.parent.name:  # a compile session: look under this --logs-dir too
        candidates.append(logs_dir / recorded.parent.name / "compiled" / MANIFEST_FILE)
    for candidate in candidates:
        if candidate.is_file():
            try:
                return _needs_of(load_manifest(candidate)), None
            except OsirisError as exc:
                return None, f"its manifest cannot be read ({exc.message})"
    return None, f"its manifest {recorded / MANIFEST_FILE} is not on this machine"


def _compiled_before(logs_dir: Path, run: str, pipeline: Any, step_ids: list[str]) -> tuple[str, dict[str,
                                                                                                    list[str]]] | None:
    """The newest compile session before `run` of the same pipeline with the same steps, and its `needs` (a
    sandbox run records the manifest's path inside the sandbox, not here)."""
    begun = started_at(run)
    for path in list_sessions(logs_dir)[:MAX_COMPILES_SEARCHED]:
        moment = started_at(path.name)
        if moment is None or begun is None or moment > begun or not path.name.startswith("compile_"):
            continue
        manifest = path / "compiled" / MANIFEST_FILE
        try:
            loaded = load_manifest(manifest) if manifest.is_file() else None
        except OsirisError:
            continue
        if loaded is not None and loaded.pipeline.name == pipeline and [s.id for s in loaded.steps] == step_ids:
            return path.name, _needs_of(loaded)
    return None


def _graph(logs_dir: Path, run: str, start: dict[str, Any], step_ids: list[str]) -> tuple[
        dict[str, list[str]] | None, str | None]:
    """The steps' `needs` and a note on where they come from (or why they are missing)."""
    needs, note = _recorded_needs(logs_dir, start.get("manifest_dir"))
    if needs is not None and list(needs) != step_ids:
        needs, note = None, "its manifest does not match the run's steps"
    if needs is not None:
        return needs, None
    found = _compiled_before(logs_dir, run, start.get("pipeline"), step_ids)
    if found is None:
        return None, f"Step links unavailable: {note}."
    return found[1], (f"Step links from {found[0]}, the latest compile of this pipeline with these steps before "
                      f"the run ({note}).")


def _steps_from_events(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Step rows for a run without a card (interrupted or still running), from what its events say."""
    start = next((e for e in events if e["event"] == "run_start"), {})
    ids = [str(s) for s in start.get("steps", []) if isinstance(s, str)]
    steps = {i: {"step_id": i, "component": None, "status": "not started", "rows_in": None, "rows_out": None,
                 "duration_ms": None, "error": None, "error_type": None} for i in ids}
    for event in events:
        step = steps.get(str(event.get("step_id")))
        if step is None:
            continue
        name = event["event"]
        if name == "step_start":
            step.update(status="started", component=event.get("component"))
        elif name in _STATUS_BY_EVENT:
            step["status"] = _STATUS_BY_EVENT[name]
            for key in ("rows_in", "rows_out", "duration_ms", "error", "error_type"):
                if key in event:
                    step[key] = event[key]
    return list(steps.values())


def _timeline(events: list[dict[str, Any]]) -> dict[str, dict[str, int | None]]:
    """Per step: `start_ms` and `end_ms` after the run started (end None while it runs)."""
    origin = next((_ts(e) for e in events if e["event"] == "run_start"), None)
    if origin is None:
        return {}
    spans: dict[str, dict[str, int | None]] = {}
    for event in events:
        moment, step_id = _ts(event), event.get("step_id")
        if moment is None or not isinstance(step_id, str):
            continue
        offset = max(0, int((moment - origin).total_seconds() * 1000))
        if event["event"] == "step_start":
            spans[step_id] = {"start_ms": offset, "end_ms": None}
        elif event["event"] in ("step_complete", "step_failed") and step_id in spans:
            spans[step_id]["end_ms"] = offset
    return spans


def _configs(path: Path, step_ids: list[str], masker: Masker) -> dict[str, Any]:
    configs: dict[str, Any] = {}
    for step_id in step_ids:
        try:
            config = read_json_file(path / "artifacts" / step_id / "cleaned_config.json")
        except ValueError:
            config = None
        if config is not None:
            configs[step_id] = masker.mask(config)
    return configs


def run_report(logs_dir: Path, session: str, masker: Masker) -> dict[str, Any]:
    """Everything the report of run session `session` shows, masked by `masker`."""
    path = session_dir(logs_dir, session)
    summary = summarize(path)
    if summary["kind"] != "run":
        raise InputError(f"session '{session}' is a compile session; reports are of runs",
                         hint="give a run_… session from `osiris logs list`")
    try:
        card = read_json_file(path / RUN_CARD_FILE)
    except ValueError:
        card = None
    events = read_events(path)
    start = next((e for e in events if e["event"] == "run_start"), {})
    steps = list(card["steps"]) if card else _steps_from_events(events)
    step_ids = [str(s["step_id"]) for s in steps]
    needs, dag_note = _graph(logs_dir, path.name, start, step_ids)
    failure = next((e for e in events if e["event"] == "step_failed"), None)
    execution = card.get("execution", {}) if card else {}
    report = {
        "session": path.name,
        "pipeline": summary["pipeline"] or start.get("pipeline"),
        "status": summary["status"],
        "started_at": summary["started_at"],
        "duration_ms": summary["duration_ms"],
        "place": summary["place"],
        "execution": execution,
        "driver_code_sha256": card.get("driver_code_sha256") if card else None,
        "error": split_hint(card.get("error") if card else None),
        "failed_step": None if failure is None else {
            "step_id": failure.get("step_id"), "error_type": failure.get("error_type"),
            "error": split_hint(failure.get("error")), "traceback": failure.get("traceback")},
        "steps": steps,
        "needs": needs,
        "dag_note": dag_note,
        "timeline": _timeline(events),
        "configs": _configs(path, step_ids, masker),
        "events": [{k: v for k, v in e.items() if k not in ("session", "traceback")}
                   for e in events[:MAX_EVENTS]],
        "events_total": len(events),
    }
    result: dict[str, Any] = mask_strings(masker, report)
    return result
