"""The `osiris` subcommands. Each takes the parsed arguments and returns an exit code."""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

import yaml

from osiris_cli.app import App
from osiris_cli.executors import EXECUTORS, executor_name
from osiris_cli.native_panics import quiet_native_panics
from osiris_cli.output import EXIT_OK, EXIT_RUN_FAILED, emit_json, print_run_card, table
from osiris_cli.progress import progress_listeners
from osiris_cli.remote_commands import check_rerun_safe, compare_cards, print_parity
from osiris_core.compiler import compile_file, compile_pipeline
from osiris_core.connections import parse_reference
from osiris_core.errors import InputError, Interrupted, OsirisError
from osiris_core.events import (
    Logged,
    OutputWritten,
    StepComplete,
    StepCounted,
    StepFailed,
    StepProgress,
    StepRetry,
    StepSkipped,
    StepStart,
)
from osiris_core.execution import ExecutionSettings
from osiris_core.interrupts import stop_on_signals
from osiris_core.malloc_arenas import limit_malloc_arenas
from osiris_core.manifest import load_compiled
from osiris_core.oml import load_pipeline
from osiris_core.recorder import RunResult
from osiris_core.run_session import read_card, registry_masker
from osiris_core.session import last_compile


def cmd_compile(app: App, args: argparse.Namespace) -> int:
    path = Path(args.pipeline)
    result = compile_file(path, app.registry(), app.connections(path.parent), app.logs_dir)
    assert result.session_dir is not None
    if app.json:
        emit_json({"session": result.session_dir.name, "manifest": str(result.manifest_path),
                   "steps": [s.id for s in result.manifest.steps],
                   "fingerprints": result.manifest.fingerprints.model_dump()})
    else:
        print(f"Compiled '{result.manifest.pipeline.name}' ({len(result.manifest.steps)} steps) → "
              f"{result.manifest_path}")
    return EXIT_OK


def cmd_validate(app: App, args: argparse.Namespace) -> int:
    path = Path(args.pipeline)
    pipeline, document = load_pipeline(path)
    result = compile_pipeline(pipeline, document, app.registry(), app.connections(path.parent))
    if app.json:
        emit_json({"valid": True, "pipeline": pipeline.name, "steps": [s.id for s in result.manifest.steps]})
    else:
        print(f"OK: '{pipeline.name}' is valid ({len(result.manifest.steps)} steps)")
    return EXIT_OK


def _manifest_to_run(app: App, args: argparse.Namespace) -> Path:
    if args.last_compile:
        if args.target:
            raise InputError("give either a pipeline/manifest or --last-compile, not both",
                             hint="drop one of them")
        return last_compile(app.logs_dir)
    if not args.target:
        raise InputError("nothing to run", hint="give PIPELINE.yaml, a compiled manifest.yaml, or --last-compile")
    target = Path(args.target)
    if target.name == "manifest.yaml" or (target.is_dir() and (target / "manifest.yaml").is_file()):
        return target / "manifest.yaml" if target.is_dir() else target
    result = compile_file(target, app.registry(), app.connections(target.parent), app.logs_dir)
    assert result.manifest_path is not None
    return result.manifest_path


def _verbose_line(logged: Logged) -> None:
    """One stderr line per step event (`--verbose`)."""
    item = logged.item
    if isinstance(item, StepStart):
        details = ""
    elif isinstance(item, StepComplete):
        rows_out = "(streaming, counted as it is read)" if item.streaming else item.rows_out
        details = f" rows_in={item.rows_in} rows_out={rows_out} {item.duration_ms}ms"
    elif isinstance(item, StepCounted):
        details = f" rows_in={item.rows_in} rows_out={item.rows_out}"
    elif isinstance(item, StepProgress):
        details = f" {item.phase} rows={item.rows} bytes={item.bytes} {item.elapsed_ms}ms"
    elif isinstance(item, StepRetry):
        details = f" attempt {item.attempt} failed, next in {item.delay_s:g}s: {item.error}"
    elif isinstance(item, StepFailed):
        details = f" {item.error}"
    elif isinstance(item, StepSkipped):
        details = f" ({item.reason})"
    else:
        return
    print(f"[{logged.ts[11:23]}] {item.event_name:<13} {item.step_id}{details}", file=sys.stderr, flush=True)


def _execute(app: App, manifest_path: Path, executor: str, args: argparse.Namespace, *, checksums: bool,
             outputs: list[OutputWritten]) -> RunResult:
    """Run a compiled manifest with the executor named `executor`."""
    compiled = load_compiled(manifest_path)

    def collect(logged: Logged) -> None:
        if isinstance(logged.item, OutputWritten):
            outputs.append(logged.item)

    listeners = (collect, _verbose_line) if app.verbose else (collect,)
    # Rust panic reports (the step's error says what happened) stay off the terminal.
    with progress_listeners(args.progress, app.logs_dir) as progress, quiet_native_panics():
        settings = ExecutionSettings(app.registry(), app.connections(manifest_path.parent), app.logs_dir,
                                     listeners=(*listeners, *progress), checksums=checksums,
                                     step_timeout_s=args.step_timeout,
                                     full_refresh=getattr(args, "full_refresh", False))
        return EXECUTORS[executor](settings, args).run(compiled)


def cmd_run(app: App, args: argparse.Namespace) -> int:
    if args.dry_run:
        from osiris_cli.dry_run import cmd_dry_run  # the plan's modules only when a plan is asked for

        return cmd_dry_run(app, args)
    if app.owns_process:
        limit_malloc_arenas()  # before the run's threads: peak memory stays flat however many rows
    executor = executor_name(args)
    manifest_path = _manifest_to_run(app, args)
    outputs: list[OutputWritten] = []
    # SIGINT/SIGTERM end the run as `interrupted` (exit 130), rolled back, with its card written; once the steps
    # are done, a signal no longer changes the outcome the card states (it is printed, and the exit code is the run's).
    with stop_on_signals(then_ignore=app.owns_process):
        result = _execute(app, manifest_path, executor, args, checksums=False, outputs=outputs)
        card = read_card(result.session.path)
        if app.json:
            emit_json(card)
        else:
            print_run_card(card)
            for output in outputs:
                print(f"Output: {output.step_id} wrote {output.rows} rows → {output.target}")
            print(f"Session: {result.session.path}")
        return result.exit_code


def cmd_parity(app: App, args: argparse.Namespace) -> int:
    """Run the pipeline here and in the sandbox with checksums on; exit 0 when the run cards agree."""
    from osiris_remote.bundle import Bundle, bundle_for, load_bundle  # sandbox machinery only for parity

    if not args.e2b and args.sandbox is None:
        args.sandbox = "local"
    sandbox = executor_name(args)
    given: Bundle | None = load_bundle(args.bundle) if args.bundle else None  # a bad file fails before any run
    manifest_path = _manifest_to_run(app, args)
    compiled = load_compiled(manifest_path)
    if not args.allow_real_targets:
        check_rerun_safe(app.registry(), compiled)
    bundle = bundle_for(app.registry().used_by(step.component for step in compiled.manifest.steps), given)
    # One stop ends both runs: an interrupted local run starts no sandbox run.
    with stop_on_signals(then_ignore=app.owns_process):
        local = _execute(app, manifest_path, "local", args, checksums=True, outputs=[])
        local_card = read_card(local.session.path)
        if local.exit_code == Interrupted.exit_code:
            emit_json(local_card) if app.json else print_run_card(local_card)
            return local.exit_code
        local_card["execution"]["bundle_sha256"] = bundle.sha256
        remote = _execute(app, manifest_path, sandbox, args, checksums=True, outputs=[])
        remote_card = read_card(remote.session.path)
    diffs = compare_cards(local_card, remote_card)
    print_parity(app, local_card, remote_card, diffs)
    return EXIT_OK if not diffs else EXIT_RUN_FAILED


def cmd_sandbox_serve(app: App, args: argparse.Namespace) -> int:
    """Serve a sandbox until Ctrl-C; a default (temporary) root is removed on exit, even when the port is busy."""
    from osiris_remote.sandbox_server import serve

    temporary = None if args.root else Path(tempfile.mkdtemp(prefix="osiris-sandbox-"))
    root = temporary or Path(args.root)
    try:
        serve(root, args.host, args.port, token_file=Path(args.token_file) if args.token_file else None,
              lifetime=args.lifetime)
    finally:
        if temporary is not None:
            shutil.rmtree(temporary, ignore_errors=True)
    return EXIT_OK


def cmd_components_list(app: App, args: argparse.Namespace) -> int:
    registry = app.registry()
    if app.json:
        emit_json([{"name": c.name, "version": c.spec.version, "modes": list(c.spec.modes),
                    "description": c.spec.description} for c in registry])
    else:
        print(table(["component", "version", "modes", "description"],
                    [(c.name, c.spec.version, ",".join(c.spec.modes), c.spec.description.split(". ")[0][:70])
                     for c in registry]))
    return EXIT_OK


def cmd_components_show(app: App, args: argparse.Namespace) -> int:
    component = app.registry().get(args.name)
    data = component.spec.model_dump(mode="json")
    if app.json:
        emit_json(data)
    else:
        sys.stdout.write(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    return EXIT_OK


def cmd_connections_list(app: App, args: argparse.Namespace) -> int:
    connections = app.connections()
    masked = registry_masker(app.registry()).mask(connections.families())
    if app.json:
        emit_json({"file": connections.path, "connections": masked})
        return EXIT_OK
    if connections.path is None:
        print("No osiris_connections.yaml found (looked in the working directory and $OSIRIS_CONNECTIONS).")
        return EXIT_OK
    rows = []
    for family, aliases in sorted(masked.items()):
        for alias, fields in sorted(aliases.items()):
            shown = ", ".join(f"{k}={v}" for k, v in fields.items() if k != "default")
            rows.append((f"@{family}.{alias}", "yes" if fields.get("default") else "", shown))
    print(f"Connections from {connections.path}")
    print(table(["reference", "default", "fields (masked)"], rows))
    return EXIT_OK


def cmd_connections_doctor(app: App, args: argparse.Namespace) -> int:
    from osiris_drivers.doctor import Verdict, check_connection

    """Check every connection (or the given ones) for real; exit 1 if any fails."""
    connections = app.connections()
    if connections.path is None:
        raise InputError("no osiris_connections.yaml found", hint="create one or pass --connections PATH")
    masker = registry_masker(app.registry())
    verdicts = []
    for family, aliases in sorted(connections.families().items()):
        for alias in sorted(aliases):
            reference = f"@{family}.{alias}"
            if args.only and reference not in args.only:
                continue
            try:
                fields = connections.resolve(parse_reference(reference))
            except OsirisError as exc:
                verdicts.append(Verdict(reference, False, exc.render()))
                continue
            masker.add_connection_fields(fields)
            verdicts.append(check_connection(reference, family, fields))
    rows = [{"connection": v.reference, "ok": v.ok, "message": masker.mask(v.message)} for v in verdicts]
    if app.json:
        emit_json(rows)
    else:
        print(table(["connection", "status", "verdict"],
                    [(r["connection"], "OK" if r["ok"] else "FAIL", r["message"]) for r in rows]))
    return EXIT_OK if all(v.ok for v in verdicts) else EXIT_RUN_FAILED
