"""The bundle's byte format and what goes into it: a deterministic zip of code files plus a manifest of their sha256.

A bundle carries exactly what runs in the sandbox: the run packages of the pipeline (`osiris_core` and the
top-level package of each component it uses; `osiris_core.fingerprint.run_packages`) and the worker
(`osiris_remote/__init__.py` and `osiris_remote/worker/`) — never the proxy, the backends, the sandbox server or
the CLI. The default bundle is that of the built-in components (`DEFAULT_PACKAGES`).

Standard library only (besides `osiris_core.fingerprint`, which is too) and Python 3.9-compatible: the Pants
plugin that builds the default bundle at `pants package` time imports this module too, so both builders select the
same files and produce the same bytes.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from collections.abc import Collection, Mapping
from pathlib import PurePosixPath

from osiris_core.fingerprint import FINGERPRINTED_SUFFIXES

MANIFEST_NAME = "osiris_bundle.json"
BUNDLE_FORMAT = 1
WORKER_PACKAGE = "osiris_remote"
WORKER_FILES = ("osiris_remote/__init__.py",)
"""Files of the worker's top-level package besides its `worker/` folder (a package needs its `__init__`)."""
WORKER_DIR = "osiris_remote/worker"
DEFAULT_PACKAGES = ("osiris_core", "osiris_drivers")
"""The run packages of the default bundle: the engine and the built-in components."""

_FIXED_DATE = (1980, 1, 1, 0, 0, 0)
_FILE_MODE = 0o644 << 16


def is_worker_file(path: str) -> bool:
    """Whether `path` (`package/relative/path`) is a file of the worker."""
    return path in WORKER_FILES or path.startswith(WORKER_DIR + "/")


def bundled(path: str, packages: Collection[str]) -> bool:
    """Whether a bundle of run `packages` carries `path` (`package/relative/path`)."""
    parts = PurePosixPath(path).parts
    if len(parts) < 2 or "__pycache__" in parts or PurePosixPath(path).suffix not in FINGERPRINTED_SUFFIXES:
        return False
    return is_worker_file(path) if parts[0] == WORKER_PACKAGE else parts[0] in packages


def file_manifest(files: Mapping[str, bytes]) -> dict[str, str]:
    """`path` → sha256 of its bytes, sorted by path."""
    return {path: hashlib.sha256(files[path]).hexdigest() for path in sorted(files)}


def bundle_bytes(files: Mapping[str, bytes]) -> bytes:
    """The bundle: every file in sorted order with fixed metadata, then the manifest. Same files, same bytes."""
    manifest = {"format": BUNDLE_FORMAT, "files": file_manifest(files)}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        entries = [(path, files[path]) for path in sorted(files)]
        entries.append((MANIFEST_NAME, (json.dumps(manifest, indent=1, sort_keys=True) + "\n").encode()))
        for path, data in entries:
            info = zipfile.ZipInfo(path, date_time=_FIXED_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = _FILE_MODE
            info.create_system = 3
            archive.writestr(info, data, compress_type=zipfile.ZIP_DEFLATED, compresslevel=9)
    return buffer.getvalue()


def bundle_sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
