"""The driver bundle: built from the code this process runs, or loaded from a file, and checked both ways.

A bundle's sha256 is its identity. Its manifest lists every file's sha256; its fingerprint — over the
engine's and drivers' files only — is the same number the compiler records and the run engine checks.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from osiris_core.errors import InputError, Location
from osiris_core.fingerprint import fingerprint_of, package_files
from osiris_remote.bundle_format import BUNDLE_PACKAGES, MANIFEST_NAME, bundle_bytes, bundle_sha256


@dataclass(frozen=True)
class Bundle:
    data: bytes
    origin: str
    """Where it came from: a file path, or "built from the running code"."""

    @cached_property
    def sha256(self) -> str:
        return bundle_sha256(self.data)

    @cached_property
    def manifest(self) -> dict[str, str]:
        """path → sha256 as recorded inside the bundle."""
        with zipfile.ZipFile(io.BytesIO(self.data)) as archive:
            document = json.loads(archive.read(MANIFEST_NAME))
        files = document["files"]
        assert isinstance(files, dict)
        return {str(k): str(v) for k, v in files.items()}

    def fingerprint(self, packages: Iterable[str]) -> str:
        """The code fingerprint of `packages` as this bundle carries them."""
        prefixes = tuple(f"{p}/" for p in packages)
        return fingerprint_of({p: s for p, s in self.manifest.items() if p.startswith(prefixes)})

    def differences(self, expected: dict[str, str]) -> list[str]:
        """Paths whose sha256 in this bundle differs from `expected` (path → sha256), or that only one side has."""
        return sorted(p for p in set(self.manifest) | set(expected) if self.manifest.get(p) != expected.get(p))

    def tampered_files(self) -> list[str]:
        """Files whose bytes inside the bundle do not match its own manifest (or that the manifest lacks)."""
        bad = []
        with zipfile.ZipFile(io.BytesIO(self.data)) as archive:
            names = [n for n in archive.namelist() if n != MANIFEST_NAME]
            for name in names:
                if self.manifest.get(name) != hashlib.sha256(archive.read(name)).hexdigest():
                    bad.append(name)
        return sorted(set(bad) | (set(self.manifest) - set(names)))


def build_bundle() -> Bundle:
    """The bundle of the code this process runs (installed wheels or a source tree)."""
    return Bundle(bundle_bytes(package_files(BUNDLE_PACKAGES)), origin="built from the running code")


def load_bundle(path: Path) -> Bundle:
    try:
        data = path.read_bytes()
        bundle = Bundle(data, origin=str(path))
        _ = bundle.manifest
    except FileNotFoundError:
        raise InputError("bundle not found", location=Location(str(path)),
                         hint="build it with `./pants package src/python/osiris_remote:bundle`") from None
    except (OSError, zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise InputError(f"not an Osiris bundle: {exc}", location=Location(str(path)),
                         hint="rebuild it with `./pants package src/python/osiris_remote:bundle`") from None
    return bundle
