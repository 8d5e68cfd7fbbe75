"""`osiris run --dry-run`: the plan of a run — each step's source and target, write mode, what happens to the
target (created, replaced, appended, upserted) and the incremental state in use — without a session and
without changing any target.

A pipeline is compiled in memory (no `compile_<ts>` session is written); a manifest is loaded and checked as a
run checks it. Each step's config is resolved and validated as the run does, then planned by
`osiris_drivers.dry_run.plan_step` with read-only look-ups. The plan runs here: `--sandbox`/`--e2b` are refused.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from osiris_cli.app import App
from osiris_cli.compiled_inputs import compiled_pipeline, step_config
from osiris_cli.executors import executor_name
from osiris_cli.output import emit_json, table
from osiris_core.driver import DriverConfig, StepPlan, WriteAction
from osiris_core.errors import InputError, OsirisError
from osiris_core.manifest import CompiledPipeline, ManifestStep
from osiris_core.masking import masked_logging
from osiris_core.registry import Component
from osiris_core.run_session import registry_masker
from osiris_core.state import cursor_min, encode_cursor
from osiris_core.state_plan import check_writers, load_records, state_targets, stored_cursor
from osiris_drivers.dry_run import plan_step

INCREMENTAL = "full"
"""A step that reads its whole source (or reads no source)."""
EXIT_OK = 0
EXIT_WOULD_FAIL = 1


def _step(step: ManifestStep, plan: StepPlan | None, error: str | None,
          incremental: str = INCREMENTAL) -> dict[str, Any]:
    return {"step": step.id, "component": step.component, "mode": step.mode, "needs": list(step.needs),
            "source": plan.source if plan else None, "target": plan.target if plan else None,
            "write_mode": plan.write_mode if plan else None, "action": plan.action if plan else None,
            "target_exists": plan.target_exists if plan else None, "detail": plan.detail if plan else "",
            "incremental": incremental, "error": error}


AFTER_CREATE: dict[str | None, WriteAction] = {"append": "append", "upsert": "upsert", "scd2": "scd2"}
"""What a write does to a target an earlier step creates; anything else (replace, a file) replaces it."""


def _after(plan: StepPlan, creator: str) -> StepPlan:
    """A target an earlier step of this run creates exists by the time this step writes it."""
    action = AFTER_CREATE.get(plan.write_mode, "replace")
    return replace(plan, action=action, target_exists=True,
                   detail=f"created by step '{creator}' earlier in this run, then: {action}")


def _incremental(compiled: CompiledPipeline, step: ManifestStep, components: dict[str, Component],
                 typed: Callable[[ManifestStep], DriverConfig], full_refresh: bool, refreshed: set[str]) -> str:
    """What an incremental extractor would read: `from <cursor>` (the smallest over its writers' targets), or
    `full (…)` without state or with --full-refresh (its writers then go to `refreshed`); read-only look-ups of
    the state tables."""
    targets = state_targets(compiled, components, typed, step)
    check_writers(step.id, targets, full_refresh=full_refresh)
    if full_refresh:
        refreshed.update(target.writer for target in targets)
        return "full (--full-refresh)"
    name = compiled.manifest.pipeline.name
    cursors = [stored_cursor(name, target, load_records(target)) for target in targets]
    if any(c is None for c in cursors):
        return "full (no state yet)"
    return f"from {encode_cursor(cursor_min([c for c in cursors if c is not None]))}"


def plan_run(app: App, target: str | None, *, use_last_compile: bool = False,
             full_refresh: bool = False) -> dict[str, Any]:
    """`{pipeline, dry_run: true, ok, steps: [{step, component, mode, needs, source, target, write_mode, action,
    target_exists, detail, incremental, error}]}`; `ok` is false when a step's plan shows the run would fail."""
    compiled, connections = compiled_pipeline(app, target, use_last_compile)
    registry = app.registry()
    masker = registry_masker(registry)
    steps: list[dict[str, Any]] = []
    columns: dict[str, tuple[str, ...] | None] = {}
    created: dict[str, str] = {}
    """target → the step that creates it."""
    refreshed: set[str] = set()
    """Writers under an incremental read of a --full-refresh run."""
    components = {s.id: registry.get(s.component) for s in compiled.manifest.steps}

    def typed(step: ManifestStep) -> DriverConfig:
        return step_config(step, components[step.id], compiled.configs[step.id], connections, masker)

    with masked_logging(masker):
        for step in compiled.manifest.steps:
            component = components[step.id]
            config = typed(step)
            known = columns.get(step.needs[0]) if len(step.needs) == 1 else None
            incremental = INCREMENTAL
            try:
                plan, error = plan_step(step.id, component, config, known, full_refresh=step.id in refreshed), None
                if step.mode == "read" and component.driver().incremental(config) is not None:
                    incremental = _incremental(compiled, step, components, typed, full_refresh, refreshed)
            except OsirisError as exc:
                plan, error = None, exc.render()
            written = plan.target if plan is not None and plan.action == "create" else None
            if plan is not None and written is not None:
                if written in created:
                    plan = _after(plan, created[written])
                else:
                    created[written] = step.id
            columns[step.id] = plan.columns if plan else None
            steps.append(_step(step, plan, error, incremental))
    result: dict[str, Any] = masker.mask({"pipeline": compiled.manifest.pipeline.name, "dry_run": True,
                                          "ok": all(s["error"] is None for s in steps), "steps": steps})
    return result


def _print(result: dict[str, Any]) -> None:
    print(f"Dry run — pipeline '{result['pipeline']}': no row was read, nothing was written")
    rows = []
    for s in result["steps"]:
        reads = s["source"] or (", ".join(f"step {need}" for need in s["needs"]) or "-")
        action = "FAILS" if s["error"] else (s["action"] or "-")
        rows.append((s["step"], s["component"], reads, s["target"] or "-", s["write_mode"] or "-", action,
                     s["incremental"]))
    print(table(["step", "component", "reads", "writes", "write_mode", "action", "incremental"], rows))
    for s in result["steps"]:
        if s["error"] or s["detail"]:
            print(f"  {s['step']}: {s['error'] or s['detail']}")
    failing = sum(1 for s in result["steps"] if s["error"])
    print("Plan: ok" if result["ok"] else f"Plan: the run would fail ({failing} step(s) above)")


def cmd_dry_run(app: App, args: argparse.Namespace) -> int:
    """`run --dry-run`: print the plan; exit 1 when it shows the run would fail."""
    if args.sandbox is not None or args.e2b:
        raise InputError("--dry-run plans on this machine and does not take --sandbox or --e2b",
                         hint="drop --sandbox/--e2b: the dry run looks the targets up from here")
    executor_name(args)  # every other execution flag is checked as for a run
    result = plan_run(app, args.target, use_last_compile=args.last_compile,
                      full_refresh=getattr(args, "full_refresh", False))
    if app.json:
        emit_json(result)
    else:
        _print(result)
    return EXIT_OK if result["ok"] else EXIT_WOULD_FAIL
