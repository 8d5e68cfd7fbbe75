"""`osiris state show|reset PIPELINE`: the incremental state a pipeline's writers keep in their targets.

The state lives in each target (`_osiris_state`, committed with the rows), so these commands connect to the
targets of the writers downstream of the pipeline's incremental extractors, as a run does.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from osiris_cli.app import App
from osiris_cli.compiled_inputs import compiled_pipeline, step_config
from osiris_cli.output import emit_json, table
from osiris_core.driver import DriverConfig
from osiris_core.errors import InputError
from osiris_core.manifest import CompiledPipeline, ManifestStep
from osiris_core.masking import masked_logging
from osiris_core.run_session import registry_masker
from osiris_core.state_plan import StateTarget, incremental_steps, load_records, state_targets

EXIT_OK = 0
HEADERS = ("pipeline", "step", "target", "cursor", "rows", "updated_at", "session")


def _targets(app: App, pipeline: str) -> tuple[CompiledPipeline, list[StateTarget]]:
    """The compiled pipeline and the state stores of its incremental extractors."""
    compiled, connections = compiled_pipeline(app, pipeline, False)
    registry = app.registry()
    masker = registry_masker(registry)
    components = {s.id: registry.get(s.component) for s in compiled.manifest.steps}
    typed: dict[str, DriverConfig] = {}

    def config(step: ManifestStep) -> DriverConfig:
        if step.id not in typed:
            typed[step.id] = step_config(step, components[step.id], compiled.configs[step.id], connections, masker)
        return typed[step.id]

    with masked_logging(masker):
        steps = incremental_steps(compiled, components, config)
        return compiled, [t for step in steps for t in state_targets(compiled, components, config, step)]


def _each(targets: list[StateTarget], action: Callable[[StateTarget], Any]) -> list[Any]:
    return [action(target) for target in targets]


def cmd_state_show(app: App, args: argparse.Namespace) -> int:
    compiled, targets = _targets(app, args.pipeline)
    name = compiled.manifest.pipeline.name
    states: list[dict[str, Any]] = []
    for target in targets:
        records = {r.step: r for r in load_records(target) if r.pipeline == name}
        record = records.get(target.extractor)
        states.append(record.as_json() if record is not None else
                      {"pipeline": name, "step": target.extractor, "target": target.store.target, "cursor": None,
                       "rows": None, "updated_at": None, "session": None})
    if app.json:
        emit_json({"pipeline": name, "states": states})
    elif not states:
        print(f"Pipeline '{name}' has no incremental step (add `incremental: {{cursor: COLUMN}}` to an extractor)")
    else:
        print(table(HEADERS, [[s[h] if s[h] is not None else "-" for h in HEADERS] for s in states]))
    return EXIT_OK


def cmd_state_reset(app: App, args: argparse.Namespace) -> int:
    compiled, targets = _targets(app, args.pipeline)
    name = args.name or compiled.manifest.pipeline.name
    if args.step is not None:
        known = sorted({t.extractor for t in targets})
        if args.step not in known:
            raise InputError(f"step '{args.step}' is no incremental step of this pipeline",
                             hint=f"incremental steps: {known}")
        targets = [t for t in targets if t.extractor == args.step]
    reset = _each(targets, lambda t: {"step": t.extractor, "target": t.store.target,
                                      "records": t.store.reset(name, args.step)})
    total = sum(r["records"] for r in reset)
    if app.json:
        emit_json({"pipeline": name, "reset": total, "targets": reset})
    else:
        print(f"Reset {total} state record(s) of pipeline '{name}'"
              + (f", step '{args.step}'" if args.step else "") + ": the next run reads from the start")
    return EXIT_OK
