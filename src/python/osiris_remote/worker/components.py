"""The components a bundle carries, loaded from its files alone: no distribution metadata, no entry points.

A bundle holds the engine (`osiris_core`), the worker, and the top-level package of each component the pipeline
uses, built-in or third-party alike. Each `spec.yaml` in such a component package is a component: the spec is
parsed at start (its name and driver path make the code fingerprint) and the driver it names is imported from the
bundle when a step first uses it. The host applies the same selection
(`component_spec_paths`) to a bundle before it ships it, so a component whose spec is not such a file is refused
there, before anything runs.
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


def bundled_specs(root: Path) -> dict[str, ComponentSpec]:
    """Bundle path → parsed spec of every component spec the bundle at `root` carries (its file list is the
    bundle's own manifest)."""
    manifest = root / MANIFEST_NAME
    if not manifest.is_file():
        raise InputError("the worker runs only from a bundle the bootstrap verified", location=Location(str(root)),
                         hint="start it with the host's bootstrap command")
    files = json.loads(manifest.read_text(encoding="utf-8"))["files"]
    return {path: parse_spec(read_regular_text(root / path, limit=MAX_YAML_BYTES, what="component spec"),
                             origin=path) for path in component_spec_paths(files)}


def bundled_registry(specs: dict[str, ComponentSpec]) -> ComponentRegistry:
    """The bundle's components, each driver imported (and checked against its spec) when a step first uses it."""
    registry = ComponentRegistry()
    for path, spec in specs.items():
        registry.defer(spec.name, partial(component_of, spec, origin=path))
    return registry
