"""The compiled manifest: what `osiris run` executes. Deterministic and free of secrets.

A manifest on disk is input like any other: `load_compiled` reads it and its step configs as bounded regular
files and validates every field strictly (no coercion, no unknown keys), so that step ids, `cfg` paths, needs
and connection references are exactly of the forms the compiler writes — nothing in a manifest can name a
file outside its `compiled/` folder or a session's artifacts folder.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from osiris_core.errors import InputError, Location
from osiris_core.input_files import MAX_JSON_BYTES, read_regular_text
from osiris_core.oml import STEP_ID_PATTERN, RetryPolicy, sql_name
from osiris_core.spec import COMPONENT_NAME_PATTERN, DRIVER_PATTERN, Mode
from osiris_core.yaml_source import load_yaml

MANIFEST_VERSION = 1
MANIFEST_FILE = "manifest.yaml"
CFG_DIR = "cfg"
CONNECTION_PATTERN = r"^@[a-z][a-z0-9_]*\.[A-Za-z0-9_\-]+$"
"""A normalised connection reference, `@family.alias`, as the compiler writes it."""
SHA256_PATTERN = r"^[0-9a-f]{64}$"

StepId = Annotated[str, Field(pattern=STEP_ID_PATTERN)]
Sha256 = Annotated[str, Field(pattern=SHA256_PATTERN)]
ComponentName = Annotated[str, Field(pattern=COMPONENT_NAME_PATTERN)]
_STRICT = ConfigDict(extra="forbid", frozen=True, strict=True)


def cfg_path(step_id: str) -> str:
    """Where a step's config lives, relative to the manifest: `cfg/<step id>.json`."""
    return f"{CFG_DIR}/{step_id}.json"


class ManifestStep(BaseModel):
    model_config = _STRICT

    id: StepId
    component: ComponentName
    driver: str = Field(pattern=DRIVER_PATTERN)
    mode: Mode
    needs: tuple[StepId, ...]
    inputs: dict[str, StepId]
    """SQL-safe input name → the step id it reads."""
    connection: str | None = Field(pattern=CONNECTION_PATTERN)
    cfg: str
    retries: RetryPolicy = RetryPolicy()
    """Retry policy for transient errors (`max: 0` runs the step once)."""

    @field_validator("needs")
    @classmethod
    def _needs_once(cls, needs: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        if len(set(needs)) != len(needs):
            raise ValueError("lists a step twice")
        if info.data.get("id") in needs:
            raise ValueError("a step cannot need itself")
        return needs

    @field_validator("inputs")
    @classmethod
    def _inputs_name_needs(cls, inputs: dict[str, str], info: ValidationInfo) -> dict[str, str]:
        needs = info.data.get("needs")
        if needs is not None and inputs != {sql_name(need): need for need in needs}:
            raise ValueError("must map the SQL name of each step in needs to that step, and nothing else")
        return inputs

    @field_validator("cfg")
    @classmethod
    def _cfg_is_the_steps(cls, cfg: str, info: ValidationInfo) -> str:
        step_id = info.data.get("id")
        if step_id is not None and cfg != cfg_path(step_id):
            raise ValueError(f"must be '{cfg_path(step_id)}'")
        return cfg


class Fingerprints(BaseModel):
    model_config = _STRICT

    oml_sha256: Sha256
    specs: dict[ComponentName, Sha256]
    compiler_version: str
    driver_code_sha256: Sha256


class PipelineInfo(BaseModel):
    model_config = _STRICT

    name: str = Field(min_length=1)
    oml_version: str
    metadata: dict[str, Any]


class Manifest(BaseModel):
    model_config = _STRICT

    manifest_version: int
    pipeline: PipelineInfo
    fingerprints: Fingerprints
    steps: tuple[ManifestStep, ...] = Field(min_length=1)
    """In execution order: a step needs only steps before it."""

    @field_validator("steps")
    @classmethod
    def _steps_in_order(cls, steps: tuple[ManifestStep, ...]) -> tuple[ManifestStep, ...]:
        seen: set[str] = set()
        for step in steps:
            if step.id in seen:
                raise ValueError(f"step id '{step.id}' is used twice")
            unknown = [need for need in step.needs if need not in seen]
            if unknown:
                raise ValueError(f"step '{step.id}' needs '{unknown[0]}', which is not an earlier step")
            seen.add(step.id)
        return steps

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False, allow_unicode=True)


class CompiledPipeline(BaseModel):
    """A manifest with its per-step configs, as loaded from a `compiled/` directory."""

    model_config = ConfigDict(frozen=True)

    manifest: Manifest
    configs: dict[str, dict[str, Any]]
    directory: str


_RECOMPILE = "recompile the pipeline with `osiris compile`"


def load_manifest(manifest_path: Path) -> Manifest:
    """Read and strictly validate `manifest.yaml`; any problem is an `InputError` at its line."""
    document = load_yaml(manifest_path, what="manifest")
    where = Location(str(manifest_path))
    try:
        text = json.dumps(document.data)
    except (TypeError, ValueError) as exc:
        raise InputError(f"not a valid Osiris manifest: {exc}", location=where, hint=_RECOMPILE) from None
    try:
        manifest = Manifest.model_validate_json(text, strict=True)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = list(first["loc"])
        dotted = ".".join(map(str, loc)) or "<root>"
        raise InputError(f"not a valid Osiris manifest: {dotted}: {first['msg']}",
                         location=document.location(loc), hint=_RECOMPILE) from None
    if manifest.manifest_version != MANIFEST_VERSION:
        raise InputError(f"manifest version {manifest.manifest_version} is not supported",
                         location=document.location(["manifest_version"]),
                         hint="recompile the pipeline with this version of osiris")
    return manifest


def load_step_config(path: Path) -> dict[str, Any]:
    """A step's `cfg/<id>.json`: a bounded regular file holding one JSON object."""
    text = read_regular_text(path, limit=MAX_JSON_BYTES, what="step config")
    try:
        config = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"not valid JSON: {exc.msg}", location=Location(str(path), exc.lineno, exc.colno),
                         hint=_RECOMPILE) from None
    except RecursionError:
        raise InputError("not valid JSON: nested too deeply", location=Location(str(path)), hint=_RECOMPILE) \
            from None
    except ValueError as exc:  # e.g. an integer of more digits than Python converts
        raise InputError(f"not valid JSON: {str(exc).split(':')[0]}", location=Location(str(path)),
                         hint=_RECOMPILE) from None
    if not isinstance(config, dict):
        raise InputError(f"a step config must be a JSON object, not {type(config).__name__}",
                         location=Location(str(path)), hint=_RECOMPILE)
    return config


def load_compiled(manifest_path: Path) -> CompiledPipeline:
    """Load `manifest.yaml` and the `cfg/<id>.json` of each of its steps."""
    manifest = load_manifest(manifest_path)
    configs = {step.id: load_step_config(manifest_path.parent / cfg_path(step.id)) for step in manifest.steps}
    return CompiledPipeline(manifest=manifest, configs=configs, directory=str(manifest_path.parent))
