"""The driver bundle's byte format: a deterministic zip of code files plus a manifest of their sha256.

Standard library only and Python 3.9-compatible: the Pants plugin that builds the bundle at
`pants package` time imports this module too, so both builders produce the same bytes for the same files.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from collections.abc import Mapping

MANIFEST_NAME = "osiris_bundle.json"
BUNDLE_FORMAT = 1
BUNDLE_PACKAGES = ("osiris_core", "osiris_drivers", "osiris_remote")
"""What a bundle carries: the engine, the components, and the worker that runs them in the sandbox."""

_FIXED_DATE = (1980, 1, 1, 0, 0, 0)
_FILE_MODE = 0o644 << 16


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
