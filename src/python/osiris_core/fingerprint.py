"""Content fingerprints of code: the same function on the host, in the bundle and inside a sandbox.

What a run executes is defined once, here (`run_packages`): the engine (`osiris_core`) plus the top-level package
of each driver the run uses. The compiler records `run_fingerprint` of a manifest's components, the engine checks
it before any step, the sandbox host builds the bundle from exactly those packages and expects the worker to
report the same number. Standard library only and Python 3.9-compatible: the Pants bundle plugin imports it.
"""

from __future__ import annotations

import hashlib
import importlib.util
from collections.abc import Iterable
from pathlib import Path

from osiris_core.errors import OsirisError

FINGERPRINTED_SUFFIXES = frozenset({".py", ".yaml", ".yml", ".json", ".typed"})
ENGINE_PACKAGE = "osiris_core"


def run_packages(drivers: Iterable[str]) -> list[str]:
    """Top-level packages a run executes: the engine plus the package of each driver (`module:Class` paths)."""
    return sorted({ENGINE_PACKAGE, *(driver.split(":", 1)[0].split(".", 1)[0] for driver in drivers)})


def package_dir(package: str) -> Path:
    """The directory an importable top-level package lives in."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise OsirisError(f"package '{package}' is not importable", hint="install it or fix PYTHONPATH")
    return Path(next(iter(spec.submodule_search_locations)))


def package_files(packages: Iterable[str]) -> dict[str, bytes]:
    """`package/relative/path` → bytes of every code or spec file in `packages` (what a bundle carries)."""
    files: dict[str, bytes] = {}
    for package in sorted(set(packages)):
        root = package_dir(package)
        for path in sorted(root.rglob("*")):
            if not path.is_file() or path.suffix not in FINGERPRINTED_SUFFIXES or "__pycache__" in path.parts:
                continue
            files[f"{package}/{path.relative_to(root).as_posix()}"] = path.read_bytes()
    return files


def file_manifest(packages: Iterable[str]) -> dict[str, str]:
    """`package/relative/path` → sha256 of every code or spec file in `packages`."""
    return {path: hashlib.sha256(data).hexdigest() for path, data in package_files(packages).items()}


def fingerprint_of(manifest: dict[str, str]) -> str:
    """Hash over the sorted (path, sha256) pairs."""
    digest = hashlib.sha256()
    for path in sorted(manifest):
        digest.update(f"{path}\0{manifest[path]}\n".encode())
    return digest.hexdigest()


def code_fingerprint(packages: Iterable[str]) -> str:
    return fingerprint_of(file_manifest(packages))


def run_fingerprint(drivers: Iterable[str]) -> str:
    """The fingerprint of the code a run of these drivers (`module:Class` paths) executes."""
    return code_fingerprint(run_packages(drivers))
