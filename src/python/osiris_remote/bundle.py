"""The driver bundle: built from the code this process runs, or loaded from a file, and checked both ways.

A bundle's sha256 is its identity. Its manifest lists every file's sha256; its fingerprint — over the
engine's and drivers' files only — is the same number the compiler records and the run engine checks.
Every `Bundle` has been verified file by file: a zip that is malformed, has no valid manifest, or holds a file
whose bytes differ from its manifest entry (or that the manifest does not list) never becomes one.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from osiris_core.errors import InputError, Location
from osiris_core.fingerprint import fingerprint_of, package_files
from osiris_core.input_files import MiB, describe_size, read_regular_file
from osiris_remote.bundle_format import BUNDLE_PACKAGES, MANIFEST_NAME, bundle_bytes, bundle_sha256

MAX_BUNDLE_BYTES = 64 * MiB
"""A bundle file (`--bundle`); the real one is well under 1 MiB."""
MAX_BUNDLE_CONTENT_BYTES = 256 * MiB
"""What a bundle's files may add up to once decompressed (a bound against zip bombs)."""
_REBUILD = "rebuild it with `./pants package src/python/osiris_remote:bundle` (or drop --bundle)"
_SHOWN = 5


class _BundleManifest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    format: Literal[1]
    """`bundle_format.BUNDLE_FORMAT`."""
    files: dict[str, Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]]


def shown(paths: list[str]) -> str:
    """The first few paths, and how many more."""
    more = f" and {len(paths) - _SHOWN} more" if len(paths) > _SHOWN else ""
    return ", ".join(paths[:_SHOWN]) + more


@dataclass(frozen=True)
class Bundle:
    data: bytes
    origin: str
    """Where it came from: a file path, or "built from the running code"."""
    manifest: dict[str, str]
    """path → sha256 as recorded inside the bundle, and verified against the bytes of each file."""

    @cached_property
    def sha256(self) -> str:
        return bundle_sha256(self.data)

    def fingerprint(self, packages: Iterable[str]) -> str:
        """The code fingerprint of `packages` as this bundle carries them."""
        prefixes = tuple(f"{p}/" for p in packages)
        return fingerprint_of({p: s for p, s in self.manifest.items() if p.startswith(prefixes)})

    def differences(self, expected: dict[str, str]) -> list[str]:
        """Paths whose sha256 in this bundle differs from `expected` (path → sha256), or that only one side has."""
        return sorted(p for p in set(self.manifest) | set(expected) if self.manifest.get(p) != expected.get(p))

    def tampered_files(self) -> list[str]:
        """Files whose bytes differ from the bundle's manifest; always empty for a `Bundle` (see `parse_bundle`)."""
        return _tampered(self.data, self.manifest)


def _fail(origin: str, message: str) -> InputError:
    return InputError(message, location=Location(origin), hint=_REBUILD)


def _tampered(data: bytes, manifest: dict[str, str]) -> list[str]:
    """Entries whose sha256 differs from `manifest`, that it does not list, that appear twice, or that are missing."""
    bad: set[str] = set()
    seen: set[str] = set()
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        for info in archive.infolist():
            name = info.filename
            if name == MANIFEST_NAME:
                continue
            if name in seen or name not in manifest:
                bad.add(name)
                seen.add(name)
                continue
            seen.add(name)
            digest = hashlib.sha256()
            with archive.open(info) as stream:
                for chunk in iter(lambda: stream.read(MiB), b""):
                    digest.update(chunk)
            if digest.hexdigest() != manifest[name]:
                bad.add(name)
    return sorted(bad | (set(manifest) - seen))


def parse_bundle(data: bytes, origin: str) -> Bundle:
    """A verified `Bundle` from the bytes of a bundle zip; anything else is an `InputError` naming `origin`."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            infos = archive.infolist()
            content = sum(info.file_size for info in infos)
            if content > MAX_BUNDLE_CONTENT_BYTES:
                raise _fail(origin, f"not an Osiris bundle: its files add up to {content} bytes, over the "
                                    f"{describe_size(MAX_BUNDLE_CONTENT_BYTES)} limit")
            manifests = [info for info in infos if info.filename == MANIFEST_NAME]
            if len(manifests) != 1:
                raise _fail(origin, f"not an Osiris bundle: it has {len(manifests) or 'no'} {MANIFEST_NAME}")
            raw = archive.read(manifests[0])
        try:
            manifest = _BundleManifest.model_validate_json(raw, strict=True)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(map(str, first["loc"])) or "<root>"
            raise _fail(origin, f"not an Osiris bundle: {MANIFEST_NAME}: {where}: {first['msg']}") from None
        files = dict(manifest.files)
        bad = _tampered(data, files)
    except InputError:
        raise
    except Exception as exc:  # a malformed zip raises many kinds (BadZipFile, EOFError, NotImplementedError, ...)
        raise _fail(origin, f"not an Osiris bundle: {type(exc).__name__}: {exc}") from None
    if bad:
        raise _fail(origin, f"files of the bundle differ from its {MANIFEST_NAME}: {shown(bad)}")
    return Bundle(data, origin=origin, manifest=files)


def build_bundle() -> Bundle:
    """The bundle of the code this process runs (installed wheels or a source tree)."""
    return parse_bundle(bundle_bytes(package_files(BUNDLE_PACKAGES)), origin="built from the running code")


def load_bundle(path: Path) -> Bundle:
    """A `--bundle` file: a regular file of at most `MAX_BUNDLE_BYTES`, verified file by file."""
    return parse_bundle(read_regular_file(path, limit=MAX_BUNDLE_BYTES, what="bundle"), origin=str(path))

