"""One function per question the CLI's `--json` and the MCP server answer, each returning a JSON-able value.

The shapes are documented in docs/cli.md. Nothing returned holds a secret: connections are masked with the
components' secret fields, and run cards, events and configs are read from files that were masked when the
run wrote them.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from osiris_cli.app import App
from osiris_cli.dry_run import plan_run
from osiris_cli.init_project import init_project
from osiris_cli.report import run_report
from osiris_cli.report_html import render_html
from osiris_cli.sessions import (
    META_FILE,
    collect_garbage,
    list_summaries,
    read_events,
    read_json_file,
    session_dir,
    summarize,
)
from osiris_cli.starter_pipeline import starter_pipeline
from osiris_core.compiler import compile_file, compile_pipeline
from osiris_core.connections import ConnectionRef, parse_reference
from osiris_core.errors import InputError, OsirisError
from osiris_core.execution import ExecutionSettings
from osiris_core.manifest import MANIFEST_FILE, load_compiled
from osiris_core.oml import load_pipeline
from osiris_core.run_session import RUN_CARD_FILE, read_card, registry_masker
from osiris_core.runner import LocalExecutor
from osiris_drivers.catalog import Catalog
from osiris_drivers.discovery import discover_connection
from osiris_drivers.registry import family_catalogs

__all__ = ["compile_file_json", "components_list", "components_show", "connections_list", "discover", "dry_run",
           "emit_pipeline", "init", "logs_gc", "logs_html", "logs_list", "logs_show", "report_html", "run",
           "validate"]


def init(app: App, directory: str) -> dict[str, Any]:
    """Create a project skeleton in `directory`: `{directory, created, kept, next}`; existing files are kept."""
    return init_project(Path(directory), app.registry())


def components_list(app: App) -> list[dict[str, Any]]:
    """`[{name, version, modes, description}]`, sorted by name."""
    return [{"name": c.name, "version": c.spec.version, "modes": list(c.spec.modes),
             "description": c.spec.description} for c in app.registry()]


def components_show(app: App, name: str) -> dict[str, Any]:
    """The component's spec (config JSON Schema, connection fields, secrets, events)."""
    data: dict[str, Any] = app.registry().get(name).spec.model_dump(mode="json")
    return data


def connections_list(app: App) -> dict[str, Any]:
    """`{file, connections: {family: {alias: {field: value}}}}`, secrets masked, `${VAR}` left unresolved."""
    connections = app.connections()
    masked: dict[str, Any] = registry_masker(app.registry()).mask(connections.families())
    return {"file": connections.path, "connections": masked}


def _located(exc: OsirisError, default_file: str) -> dict[str, Any]:
    where = exc.location
    return {"file": where.path if where else default_file, "line": where.line if where else None,
            "column": where.column if where else None, "message": exc.message, "hint": exc.hint,
            "text": exc.render()}


def validate(app: App, pipeline: str) -> dict[str, Any]:
    """`{valid: true, pipeline, steps}`, or `{valid: false, errors: [{file, line, column, message, hint, text}]}`.

    Writes nothing. The compiler stops at the first problem, so `errors` holds one entry.
    """
    path = Path(pipeline)
    try:
        parsed, document = load_pipeline(path)
        result = compile_pipeline(parsed, document, app.registry(), app.connections(path.parent))
    except OsirisError as exc:
        return {"valid": False, "errors": [_located(exc, pipeline)]}
    return {"valid": True, "pipeline": parsed.name, "steps": [s.id for s in result.manifest.steps]}


def compile_file_json(app: App, pipeline: str) -> dict[str, Any]:
    """Compile into a new `compile_<ts>` session: `{session, manifest, steps, fingerprints}`."""
    path = Path(pipeline)
    result = compile_file(path, app.registry(), app.connections(path.parent), app.logs_dir)
    assert result.session_dir is not None
    return {"session": result.session_dir.name, "manifest": str(result.manifest_path),
            "steps": [s.id for s in result.manifest.steps], "fingerprints": result.manifest.fingerprints.model_dump()}


def run(app: App, target: str) -> dict[str, Any]:
    """Run a pipeline (compiled first) or a compiled `manifest.yaml` here; the run card, also when it failed."""
    path = Path(target)
    if path.name != MANIFEST_FILE:
        path = Path(compile_file_json(app, target)["manifest"])
    compiled = load_compiled(path)
    settings = ExecutionSettings(app.registry(), app.connections(path.parent), app.logs_dir)
    result = LocalExecutor(settings).run(compiled)
    return read_card(result.session.path)


def logs_list(app: App, *, pipeline: str | None = None, status: str | None = None, since: str | None = None,
              limit: int | None = 20) -> list[dict[str, Any]]:
    """Session summaries, newest first: `[{session, kind, pipeline, started_at, duration_ms, status, place,
    path}]`."""
    return list_summaries(app.logs_dir, pipeline=pipeline, status=status, since=since, limit=limit)


def logs_show(app: App, session: str, *, events: bool = False, max_events: int | None = None) -> dict[str, Any]:
    """A run's card, a compile's metadata, or for an incomplete run its summary; `events` adds `events`
    (the last `max_events` when given, with `events_omitted` counting the rest)."""
    path = session_dir(app.logs_dir, session)
    try:
        shown = read_json_file(path / RUN_CARD_FILE) or read_json_file(path / META_FILE)
    except ValueError as exc:
        raise InputError(f"session '{session}' cannot be read: {exc}", hint="the session is damaged") from None
    result = dict(shown) if shown is not None else summarize(path)
    if events:
        records = read_events(path)
        kept = records if max_events is None else records[-max_events:] if max_events > 0 else []
        result["events"] = kept
        if len(kept) < len(records):
            result["events_omitted"] = len(records) - len(kept)
    return result


def logs_gc(app: App, *, keep: int | None, older_than_days: float | None, dry_run: bool = False) -> dict[str, Any]:
    """Remove old sessions: `{removed: [summary], failed: [{session, error}], kept, dry_run}`."""
    return collect_garbage(app.logs_dir, keep=keep, older_than_days=older_than_days, dry_run=dry_run)


def _write_whole(path: Path, text: str) -> None:
    """Write `path` via a temporary file in the same folder, so a reader never sees half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as stream:
            stream.write(text)
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def report_html(app: App, session: str) -> tuple[dict[str, Any], str]:
    """The report data of run `session` and its self-contained HTML page."""
    report = run_report(app.logs_dir, session, registry_masker(app.registry()))
    return report, render_html(report)


def logs_html(app: App, session: str, output: str | None = None) -> dict[str, Any]:
    """Write the HTML report of run `session` to `output` (default `<session dir>/report.html`):
    `{session, file, status}`."""
    target = Path(output) if output else session_dir(app.logs_dir, session) / "report.html"
    if target.is_dir():
        raise InputError(f"{target} is a directory", hint="give the path of the .html file to write")
    report, html = report_html(app, session)
    _write_whole(target, html)
    return {"session": report["session"], "file": str(target), "status": report["status"]}


def _discovered(app: App, connection: str, schema: str | None) -> tuple[ConnectionRef, dict[str, Any], Catalog]:
    connections = app.connections()
    reference = connections.normalise(parse_reference(connection))
    fields = connections.resolve(reference)
    return reference, fields, discover_connection(str(reference), reference.family, fields, schema)


def discover(app: App, connection: str, schema: str | None = None) -> dict[str, Any]:
    """What `connection` (`@family.alias`) holds: `{connection, family, location, schema, schemas, tables:
    [{schema, name, kind, rows, target, note, columns: [{name, type, nullable, primary_key}]}]}`, read-only.
    `schema` defaults to the one the family's steps use (MySQL: the connection's database; public; main)."""
    reference, _, catalog = _discovered(app, connection, schema)
    return {"connection": str(reference), "family": reference.family, "location": catalog.location,
            "schema": catalog.schema, "schemas": list(catalog.schemas),
            "tables": [relation.as_json() for relation in catalog.relations]}


def emit_pipeline(app: App, connection: str, tables: list[str], output: str,
                  schema: str | None = None) -> tuple[dict[str, Any], str]:
    """A starter pipeline copying `tables` of `connection` into a local DuckDB file, written to `output` (never
    over an existing file; `-` writes nothing): `{file, pipeline, steps, target}` and the pipeline's text."""
    reference, fields, catalog = _discovered(app, connection, schema)
    family = family_catalogs()[reference.family]
    settings = family.settings.from_connection(fields)
    emitted = starter_pipeline(reference, family, settings, catalog, tables, app.registry(), app.connections())
    if output != "-":
        target = Path(output)
        if target.exists() or target.is_symlink():
            raise InputError(f"{target} already exists", hint="give another -o FILE, or remove it first")
        _write_whole(target, emitted.text)
    return {"file": output, "pipeline": emitted.name, "steps": emitted.steps, "target": emitted.target}, emitted.text


def dry_run(app: App, target: str) -> dict[str, Any]:
    """The plan of running `target` (pipeline or compiled `manifest.yaml`) without touching data: as
    `run --dry-run --json`."""
    return plan_run(app, target)
