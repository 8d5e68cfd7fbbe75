"""The components a bundle carries, loaded from its files alone: no distribution metadata, no entry points.

A bundle holds the engine (`osiris_core`), the worker, and the top-level package of each component the pipeline
uses, built-in or third-party alike. A component is a `spec.yaml` in such a component package
(`component_spec_paths`); the host names the spec file of each component the run uses (`--spec`, found and
checked by `osiris_remote.bundle.ship` before anything runs), the worker parses those at start (their drivers'
packages make the code fingerprint) and imports the driver a spec names from the bundle when a step first uses it.
Spec files the run does not use are never parsed.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from functools import partial
from pathlib import Path, PurePosixPath

from osiris_core.errors import InputError, Location
from osiris_core.input_files import MAX_YAML_BYTES, read_regular_text
from osiris_core.registry import ComponentRegistry, component_of
from osiris_core.spec import ComponentSpec, parse_spec

SPEC_FILE = "spec.yaml"
MANIFEST_NAME = "osiris_bundle.json"
"""The bundle's own list of its files (`osiris_remote.bundle_format.MANIFEST_NAME`)."""
NON_COMPONENT_PACKAGES = frozenset({"osiris_core", "osiris_remote"})
"""The engine and the worker: their files are never component specs."""


def component_spec_paths(paths: Iterable[str]) -> list[str]:
    """The bundle paths (`package/.../spec.yaml`) that are component specs."""
    found = []
    for path in paths:
        parts = PurePosixPath(path).parts
        if len(parts) > 1 and parts[-1] == SPEC_FILE and parts[0] not in NON_COMPONENT_PACKAGES:
            found.append(path)
    return sorted(found)


def bundle_root() -> Path:
    """The folder the bootstrap unpacked the verified bundle into (this package's grandparent's parent)."""
    return Path(__file__).resolve().parent.parent.parent


def bundled_specs(root: Path, paths: Iterable[str]) -> dict[str, ComponentSpec]:
    """Bundle path → parsed spec of the component specs at `paths`, each a component spec file of the bundle at
    `root` (its file list is the bundle's own manifest)."""
    manifest = root / MANIFEST_NAME
    if not manifest.is_file():
        raise InputError("the worker runs only from a bundle the bootstrap verified", location=Location(str(root)),
                         hint="start it with the host's bootstrap command")
    specs = set(component_spec_paths(json.loads(manifest.read_text(encoding="utf-8"))["files"]))
    unknown = sorted(set(paths) - specs)
    if unknown:
        raise InputError(f"not component spec files of the bundle: {', '.join(unknown)}", location=Location(str(root)),
                         hint="name (--spec) a package/.../spec.yaml of a component package the bundle carries")
    return {path: parse_spec(read_regular_text(root / path, limit=MAX_YAML_BYTES, what="component spec"),
                             origin=path) for path in sorted(set(paths))}


def bundled_registry(specs: dict[str, ComponentSpec]) -> ComponentRegistry:
    """The bundle's components, each driver imported (and checked against its spec) when a step first uses it."""
    registry = ComponentRegistry()
    for path, spec in specs.items():
        registry.defer(spec.name, partial(component_of, spec, origin=path))
    return registry
