"""What a sandbox must pip-install to run a manifest (`--e2b-install-deps`): locked versions, hash-checked.

The install set is the dependency closure of

* `CORE_REQUIREMENTS`: what the engine itself imports (`osiris_core`: pydantic, pyyaml, pyarrow, jsonschema;
  the worker and the bootstrap add nothing beyond the standard library);
* `WORKER_IMPORT_REQUIREMENTS`: what the worker imports at module level beyond the core — nothing today: driver
  modules import their libraries (DuckDB included) inside the functions that use them, so a run installs only what
  its components name. tests/remote/test_install_deps.py walks the module-level import graph of the worker and
  of the built-in drivers and fails when a third-party import is not covered here;
* the `requirements` of each component the manifest uses (its `spec.yaml` names the PyPI projects its driver
  imports; the same test checks each driver's imports are covered by them).

Versions, hashes and dependencies come from `locked_requirements.json`, exported from the Pex lock
(3rdparty/python/default.lock) by build-support/lock/export_lock.py. `closure` follows dependencies and the
extras they ask for (postgrest needs `httpx[http2]`, hence h2); a dependency the lock does not have is skipped:
the lock is universal for CPython 3.11 on Linux and macOS, so such a dependency applies to other Pythons only
(`exceptiongroup; python_version < "3.11"`). Other environment markers are not evaluated: for every built-in
component that gives the same install set as evaluating them for CPython 3.11 on Linux (the tests check it
against the raw lock), since the few that are false there name projects needed anyway (typing-extensions).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from functools import cache
from importlib.resources import files
from typing import Any

from osiris_core.errors import InputError
from osiris_core.manifest import Manifest
from osiris_core.registry import ComponentRegistry

LOCK_RESOURCE = "locked_requirements.json"
CORE_REQUIREMENTS: tuple[str, ...] = ("pydantic", "pyyaml", "pyarrow", "jsonschema")
WORKER_IMPORT_REQUIREMENTS: tuple[str, ...] = ()
"""Imported at module level by driver modules the worker's registry imports (see the module docstring)."""

_REQUIREMENT = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[([^\]]*)\])?$")


def normalize(name: str) -> str:
    """PEP 503 normalized project name (and PEP 685 extra name)."""
    return re.sub(r"[-_.]+", "-", name).lower()


@cache
def locked() -> dict[str, dict[str, Any]]:
    """Normalized project name → {"version", "hashes", "requires", "extras"}, as exported from the lock."""
    text = files(__package__ or "osiris_remote").joinpath(LOCK_RESOURCE).read_text(encoding="utf-8")
    document = json.loads(text)
    assert isinstance(document, dict)
    return document


def needed_projects(manifest: Manifest, registry: ComponentRegistry) -> list[str]:
    """The projects the worker imports to run `manifest` (before following their dependencies)."""
    lock = locked()
    needed = {normalize(p) for p in CORE_REQUIREMENTS + WORKER_IMPORT_REQUIREMENTS}
    for component in sorted({step.component for step in manifest.steps}):
        for project in registry.get(component).spec.requirements:
            if normalize(project) not in lock:
                raise InputError(
                    f"component '{component}' requires {project!r}, which is not in the locked requirements",
                    hint="add it to 3rdparty/python/requirements.txt, regenerate the lock and run "
                         "build-support/lock/export_lock.py; or run without --e2b-install-deps")
            needed.add(normalize(project))
    return sorted(needed)


def _parse(requirement: str) -> tuple[str, list[str]]:
    match = _REQUIREMENT.match(requirement.strip())
    if match is None:
        raise ValueError(f"not a project name with optional extras: {requirement!r}")
    return normalize(match.group(1)), [normalize(e) for e in (match.group(2) or "").split(",") if e.strip()]


def closure(projects: Iterable[str]) -> list[str]:
    """`projects` (names, optionally with extras: `httpx[http2]`) and everything they need, per the lock.

    Sorted normalized names; names the lock does not have are skipped.
    """
    lock = locked()
    seen: set[tuple[str, str]] = set()
    found: set[str] = set()
    todo = [_parse(p) for p in projects]
    while todo:
        name, extras = todo.pop()
        entry = lock.get(name)
        if entry is None:
            continue
        found.add(name)
        for part in ["", *extras]:
            if (name, part) in seen:
                continue
            seen.add((name, part))
            todo.extend(_parse(r) for r in (entry["requires"] if not part else entry["extras"].get(part, [])))
    return sorted(found)


def requirements_txt(projects: Iterable[str]) -> str:
    """A pip requirements file pinning each project to its locked version with every locked hash of it."""
    lock = locked()
    lines = []
    for name in sorted({normalize(p) for p in projects}):
        entry = lock.get(name)
        if entry is None:
            raise ValueError(f"{name} is not in the locked requirements")
        hashes = " ".join(f"--hash=sha256:{h}" for h in entry["hashes"])
        lines.append(f"{name}=={entry['version']} {hashes}")
    return "\n".join(lines) + "\n"
