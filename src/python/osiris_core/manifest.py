"""The compiled manifest: what `osiris run` executes. Deterministic and free of secrets."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from osiris_core.errors import InputError, Location
from osiris_core.spec import Mode

MANIFEST_VERSION = 1
MANIFEST_FILE = "manifest.yaml"
CFG_DIR = "cfg"


class ManifestStep(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    component: str
    driver: str
    mode: Mode
    needs: tuple[str, ...]
    inputs: dict[str, str]
    """SQL-safe input name → the step id it reads."""
    connection: str | None
    cfg: str


class Fingerprints(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    oml_sha256: str
    specs: dict[str, str]
    compiler_version: str
    driver_code_sha256: str


class PipelineInfo(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    oml_version: str
    metadata: dict[str, Any]


class Manifest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    manifest_version: int
    pipeline: PipelineInfo
    fingerprints: Fingerprints
    steps: tuple[ManifestStep, ...]
    """In execution order."""

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False, allow_unicode=True)


class CompiledPipeline(BaseModel):
    """A manifest with its per-step configs, as loaded from a `compiled/` directory."""

    model_config = ConfigDict(frozen=True)

    manifest: Manifest
    configs: dict[str, dict[str, Any]]
    directory: str


def load_compiled(manifest_path: Path) -> CompiledPipeline:
    """Load `manifest.yaml` and the `cfg/*.json` files beside it."""
    where = Location(str(manifest_path))
    try:
        raw = yaml.safe_load(manifest_path.read_text(encoding="utf-8"))
        manifest = Manifest.model_validate(raw)
    except FileNotFoundError:
        raise InputError("manifest not found", location=where, hint="run `osiris compile` first") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        raise InputError(f"not a valid Osiris manifest: {'.'.join(map(str, first['loc']))}: {first['msg']}",
                         location=where, hint="recompile the pipeline with `osiris compile`") from None
    except (yaml.YAMLError, OSError) as exc:
        first_line = str(exc).splitlines()[0]
        raise InputError(f"not a valid Osiris manifest: {first_line}", location=where,
                         hint="recompile the pipeline with `osiris compile`") from None
    if manifest.manifest_version != MANIFEST_VERSION:
        raise InputError(f"manifest version {manifest.manifest_version} is not supported", location=where,
                         hint="recompile the pipeline with this version of osiris")
    configs: dict[str, dict[str, Any]] = {}
    for step in manifest.steps:
        cfg_path = manifest_path.parent / step.cfg
        try:
            configs[step.id] = json.loads(cfg_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise InputError(f"cannot read step config: {exc}", location=Location(str(cfg_path)),
                             hint="recompile the pipeline with `osiris compile`") from None
    return CompiledPipeline(manifest=manifest, configs=configs, directory=str(manifest_path.parent))
