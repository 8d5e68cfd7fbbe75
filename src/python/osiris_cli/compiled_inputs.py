"""What planning commands (`osiris dry-run`, `osiris state`) start from: the pipeline compiled or its manifest
loaded and checked as a run would, and each step's typed config with its connection resolved."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from osiris_cli.app import App
from osiris_core.compiler import compile_pipeline
from osiris_core.connections import Connections, parse_reference
from osiris_core.driver import DriverConfig
from osiris_core.errors import InputError
from osiris_core.execution import check_manifest
from osiris_core.fingerprint import run_fingerprint
from osiris_core.manifest import MANIFEST_FILE, CompiledPipeline, ManifestStep, load_compiled
from osiris_core.masking import Masker
from osiris_core.oml import load_pipeline
from osiris_core.registry import Component
from osiris_core.session import last_compile
from osiris_core.step_config import typed_config, with_connection


def compiled_pipeline(app: App, target: str | None, use_last_compile: bool) -> tuple[CompiledPipeline, Connections]:
    """The pipeline compiled in memory, or the manifest as a run loads it; and the connections it uses."""
    if use_last_compile:
        if target:
            raise InputError("give either a pipeline/manifest or --last-compile, not both", hint="drop one of them")
        manifest: Path | None = last_compile(app.logs_dir)
    elif not target:
        raise InputError("nothing to plan", hint="give PIPELINE.yaml, a compiled manifest.yaml, or --last-compile")
    else:
        path = Path(target)
        manifest = path / MANIFEST_FILE if path.is_dir() and (path / MANIFEST_FILE).is_file() else (
            path if path.name == MANIFEST_FILE else None)
        if manifest is None:
            connections = app.connections(path.parent)
            pipeline, document = load_pipeline(path)
            result = compile_pipeline(pipeline, document, app.registry(), connections)
            return CompiledPipeline(manifest=result.manifest, configs=result.configs,
                                    directory=str(path.parent)), connections
    assert manifest is not None
    compiled = load_compiled(manifest)
    registry = app.registry()
    used = registry.used_by(step.component for step in compiled.manifest.steps)
    check_manifest(compiled, registry, run_fingerprint(c.spec.driver for c in used))
    return compiled, app.connections(manifest.parent)


def step_config(step: ManifestStep, component: Component, raw: dict[str, Any], connections: Connections,
            masker: Masker) -> DriverConfig:
    """The step's typed config as the run builds it: connection fields resolved (their secrets masked from now
    on), then the step's own keys; a bad value is the run's InputError."""
    config = {key: value for key, value in raw.items() if key != "connection"}
    spec = component.spec
    if spec.connection is not None and step.connection is not None:
        fields = connections.resolve(parse_reference(step.connection))
        masker.add_connection_fields(fields, spec.secrets)
        config = with_connection(step, component, fields, config)
    return typed_config(step, component, config)
