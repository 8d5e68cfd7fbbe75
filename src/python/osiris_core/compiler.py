"""The compiler: OML + specs + connections → a deterministic, secret-free manifest and per-step configs."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
from pydantic import ValidationError

from osiris_core import __version__
from osiris_core.canonical import canonical_json, sha256_value
from osiris_core.connections import ConnectionRef, Connections, parse_reference, substitute_env
from osiris_core.driver import SINGLE_INPUT_SQL_NAME
from osiris_core.errors import CompileError, ConnectionConfigError, OsirisError
from osiris_core.fingerprint import run_fingerprint
from osiris_core.manifest import (
    CFG_DIR,
    MANIFEST_FILE,
    MANIFEST_VERSION,
    Fingerprints,
    Manifest,
    ManifestStep,
    PipelineInfo,
)
from osiris_core.masking import is_secret_key, scrub_text
from osiris_core.oml import Pipeline, Step, load_pipeline, sql_name
from osiris_core.registry import Component, ComponentRegistry
from osiris_core.session import new_session, record_last_compile
from osiris_core.spec import ComponentSpec
from osiris_core.yaml_source import YamlDocument

COMPILER_VERSION = f"osiris-core/{__version__}"


@dataclass(frozen=True)
class CompileResult:
    manifest: Manifest
    configs: dict[str, dict[str, Any]]
    session_dir: Path | None = None

    @property
    def manifest_path(self) -> Path | None:
        return self.session_dir / "compiled" / MANIFEST_FILE if self.session_dir else None


class _Checker:
    """Checks one pipeline's meaning, raising `CompileError` at the offending YAML location."""

    def __init__(self, pipeline: Pipeline, document: YamlDocument, registry: ComponentRegistry,
                 connections: Connections) -> None:
        self.pipeline = pipeline
        self.document = document
        self.registry = registry
        self.connections = connections

    def fail(self, message: str, at: Sequence[str | int], *, hint: str, key: bool = False) -> CompileError:
        return CompileError(message, location=self.document.location(list(at), key=key), hint=hint)

    def check_ids(self) -> dict[str, int]:
        index: dict[str, int] = {}
        for i, step in enumerate(self.pipeline.steps):
            if step.id in index:
                raise self.fail(f"duplicate step id '{step.id}' (first used by step {index[step.id] + 1})",
                                ["steps", i, "id"], hint="give every step a unique id")
            index[step.id] = i
        by_sql_name: dict[str, str] = {}
        for i, step in enumerate(self.pipeline.steps):
            name = sql_name(step.id)
            if name.lower() == SINGLE_INPUT_SQL_NAME:
                raise self.fail(f"step id '{step.id}' is reserved: SQL steps see a single input as "
                                f"'{SINGLE_INPUT_SQL_NAME}'", ["steps", i, "id"], hint="rename the step")
            if name in by_sql_name:
                raise self.fail(
                    f"step ids '{by_sql_name[name]}' and '{step.id}' both become the SQL name '{name}'",
                    ["steps", i, "id"], hint="rename one of them")
            by_sql_name[name] = step.id
        for i, step in enumerate(self.pipeline.steps):
            for j, need in enumerate(step.needs):
                if need in step.needs[:j]:
                    raise self.fail(f"step '{step.id}' lists '{need}' twice in needs", ["steps", i, "needs", j],
                                    hint="list each step once")
                if need not in index:
                    raise self.fail(f"step '{step.id}' needs unknown step '{need}'", ["steps", i, "needs", j],
                                    hint=f"use one of {sorted(index)}")
                if need == step.id:
                    raise self.fail(f"step '{step.id}' needs itself", ["steps", i, "needs", j],
                                    hint="remove it from needs")
        return index

    def order(self, index: dict[str, int]) -> list[Step]:
        """Topological order of `needs`, keeping file order among independent steps."""
        steps = self.pipeline.steps
        state: dict[str, int] = {}
        ordered: list[Step] = []

        def visit(step_id: str, trail: list[str]) -> None:
            if state.get(step_id) == 2:
                return
            if state.get(step_id) == 1:
                cycle = [*trail[trail.index(step_id):], step_id]
                raise self.fail(f"dependency cycle: {' -> '.join(cycle)}",
                                ["steps", index[step_id], "needs"],
                                hint="remove one of these needs so the steps form a DAG")
            state[step_id] = 1
            for need in steps[index[step_id]].needs:
                visit(need, [*trail, step_id])
            state[step_id] = 2
            ordered.append(steps[index[step_id]])

        for step in steps:
            visit(step.id, [])
        return ordered

    def component(self, i: int, step: Step) -> Component:
        if step.component not in self.registry:
            raise self.fail(f"unknown component '{step.component}'", ["steps", i, "component"],
                            hint=self.registry.suggest(step.component))
        component = self.registry.get(step.component)
        if step.mode not in component.spec.modes:
            raise self.fail(
                f"component '{step.component}' does not support mode '{step.mode}'", ["steps", i, "mode"],
                hint=f"use one of {list(component.spec.modes)}")
        return component

    def config(self, i: int, step: Step, component: Component) -> tuple[dict[str, Any], str | None]:
        """The step's config as compiled (connection reference normalised) and that reference."""
        spec = component.spec
        at: list[str | int] = ["steps", i, "config"]
        for key, value in step.config.items():
            if is_secret_key(key, spec.secrets) or (isinstance(value, str) and scrub_text(value) != value):
                raise self.fail(
                    f"inline secret in config key '{key}' of step '{step.id}'", [*at, key], key=True,
                    hint="put secrets in osiris_connections.yaml (with ${ENV_VAR}) and reference the connection")
        for key in step.config:
            if key not in spec.config_keys:
                raise self.fail(
                    f"unknown config key '{key}' for component '{spec.name}'", [*at, key], key=True,
                    hint=f"allowed keys: {sorted(spec.config_keys)}")
        validator = jsonschema.Draft202012Validator(spec.config)
        errors = sorted(validator.iter_errors(step.config), key=lambda e: list(e.absolute_path))
        if errors:
            error = errors[0]
            path: list[str | int] = list(error.absolute_path)
            where = ".".join(str(p) for p in path) or "config"
            raise self.fail(f"invalid config for step '{step.id}' at {where}: {error.message}", [*at, *path],
                            hint=f"see `osiris components show {spec.name}`")
        self.driver_checks(i, step, component)
        config = dict(step.config)
        if spec.connection is None:
            self.rules(i, step, spec, {}, set())
            return config, None
        raw_ref = config.get("connection", f"@{spec.connection.family}")
        ref_at: list[str | int] = [*at, "connection"] if "connection" in config else ["steps", i, "component"]
        try:
            ref = parse_reference(str(raw_ref))
            if ref.family != spec.connection.family:
                raise self.fail(
                    f"component '{spec.name}' needs a '{spec.connection.family}' connection, got '{raw_ref}'",
                    ref_at, hint=f"reference @{spec.connection.family}.<alias>")
            normalised = self.connections.normalise(ref)
        except ConnectionConfigError as exc:
            raise self.fail(exc.message, ref_at, hint=exc.hint or "fix the connection reference") from None
        fields, unknown = self.connection_fields(normalised, spec)
        self.rules(i, step, spec, fields, unknown, connection=(str(normalised), ref_at))
        config["connection"] = str(normalised)
        return config, str(normalised)

    def driver_checks(self, i: int, step: Step, component: Component) -> None:
        """The driver config's own checks (an encoding Python knows, a valid column type, …) of the keys the step
        sets: what the engine would refuse when the step starts is refused now."""
        config = {k: v for k, v in step.config.items() if k != "connection"}
        try:
            component.driver.config_model.model_validate(config)
            return
        except ValidationError as exc:
            errors = exc.errors()
        except Exception:  # a validator that needs the connection's fields: the run reports what it finds
            return
        for error in errors:
            loc = error["loc"]
            if loc and loc[0] in config:
                where = ".".join(str(p) for p in loc)
                message = str(error["msg"]).removeprefix("Value error, ")
                raise self.fail(f"invalid config for step '{step.id}' at {where}: {message}",
                                ["steps", i, "config", *loc], hint=f"see `osiris components show {component.name}`")

    def connection_fields(self, ref: ConnectionRef, spec: ComponentSpec) -> tuple[dict[str, Any], set[str]]:
        """The connection's fields the component uses, `${VAR}` resolved from this environment where set; the
        names of those that do not resolve yet (they are checked again when the step runs)."""
        assert ref.alias is not None
        known: dict[str, Any] = {}
        unknown: set[str] = set()
        for key, value in self.connections.families()[ref.family][ref.alias].items():
            if key not in spec.connection_fields:
                continue
            try:
                known[key] = substitute_env(value, environ=os.environ, where=str(ref))
            except ConnectionConfigError:
                unknown.add(key)
        return known, unknown

    def rules(self, i: int, step: Step, spec: ComponentSpec, fields: dict[str, Any], unknown: set[str], *,
              connection: tuple[str, list[str | int]] | None = None) -> None:
        """The spec's rules over the step's config (defaults filled in) and its connection's fields."""
        config = {k: v for k, v in step.config.items() if k != "connection"}
        violation = spec.rule_violation({**fields, **config}, unknown - set(config))
        if violation is None:
            return
        at: list[str | int] = ["steps", i, "config"]
        message = f"step '{step.id}': {violation.message}"
        if violation.key in config:
            raise self.fail(message, [*at, violation.key], key=True, hint=violation.hint)
        if connection is not None and violation.key in spec.connection_fields:
            raise self.fail(f"{message} (in connection {connection[0]})", connection[1], hint=violation.hint)
        raise self.fail(message, at if step.config else ["steps", i, "component"], hint=violation.hint)


def compile_pipeline(pipeline: Pipeline, document: YamlDocument, registry: ComponentRegistry,
                     connections: Connections) -> CompileResult:
    """Check a parsed pipeline and build its manifest and configs (nothing is written)."""
    checker = _Checker(pipeline, document, registry, connections)
    index = checker.check_ids()
    ordered = checker.order(index)
    steps: list[ManifestStep] = []
    configs: dict[str, dict[str, Any]] = {}
    spec_hashes: dict[str, str] = {}
    drivers: set[str] = set()
    for step in ordered:
        i = index[step.id]
        component = checker.component(i, step)
        try:
            component.check_agreement()
        except OsirisError as exc:
            raise CompileError(exc.message, location=document.location(["steps", i, "component"]),
                               hint=exc.hint) from None
        config, connection = checker.config(i, step, component)
        configs[step.id] = config
        spec_hashes[component.name] = component.spec.fingerprint()
        drivers.add(component.spec.driver)
        steps.append(ManifestStep(
            id=step.id, component=component.name, driver=component.spec.driver, mode=step.mode,
            needs=step.needs, inputs={sql_name(need): need for need in step.needs}, connection=connection,
            cfg=f"{CFG_DIR}/{step.id}.json", retries=step.retries,
        ))
    manifest = Manifest(
        manifest_version=MANIFEST_VERSION,
        pipeline=PipelineInfo(name=pipeline.name, oml_version=pipeline.oml_version, metadata=pipeline.metadata),
        fingerprints=Fingerprints(
            oml_sha256=sha256_value(pipeline.model_dump(mode="json")),
            specs=dict(sorted(spec_hashes.items())),
            compiler_version=COMPILER_VERSION,
            driver_code_sha256=run_fingerprint(drivers),
        ),
        steps=tuple(steps),
    )
    return CompileResult(manifest=manifest, configs=configs)


def write_compiled(result: CompileResult, directory: Path) -> Path:
    """Write `manifest.yaml` and `cfg/<step>.json` under `directory`; return the manifest path."""
    (directory / CFG_DIR).mkdir(parents=True, exist_ok=True)
    for step in result.manifest.steps:
        (directory / step.cfg).write_text(canonical_json(result.configs[step.id]), encoding="utf-8")
    manifest_path = directory / MANIFEST_FILE
    manifest_path.write_text(result.manifest.to_yaml(), encoding="utf-8")
    return manifest_path


def compile_file(pipeline_path: Path, registry: ComponentRegistry, connections: Connections,
                 logs_dir: Path) -> CompileResult:
    """`osiris compile`: check the file, write a `compile_<ts>` session and record it as the last compile."""
    pipeline, document = load_pipeline(pipeline_path)
    result = compile_pipeline(pipeline, document, registry, connections)
    session = new_session(logs_dir, "compile")
    compiled_dir = session.path / "compiled"
    manifest_path = write_compiled(result, compiled_dir)
    meta = {
        "session_id": session.id,
        "source": str(pipeline_path),
        "compiler_version": COMPILER_VERSION,
        "connections_file": connections.path,
        "manifest_sha256": sha256_value(result.manifest.model_dump(mode="json")),
    }
    (compiled_dir / "meta.json").write_text(canonical_json(meta), encoding="utf-8")
    record_last_compile(logs_dir, manifest_path)
    return CompileResult(manifest=result.manifest, configs=result.configs, session_dir=session.path)
