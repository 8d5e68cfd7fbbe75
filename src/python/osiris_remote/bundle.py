"""The bundle: built from the code this process runs, or loaded from a file, and checked both ways.

A bundle carries what a run executes (`bundle_format`): the run packages of the pipeline's components, built-in
or third-party, and the worker. Its sha256 is its identity. Its manifest lists every file's sha256; its
fingerprint — over the run packages' files — is the number the compiler records, the engine checks and the
worker reports. Every `Bundle` has been verified file by file: a zip that is malformed, has no valid manifest, or
holds a file whose bytes differ from its manifest entry (or that the manifest does not list) never becomes one.
`ship` then checks that a bundle is exactly the one this host would build for a run, and finds the spec file
the worker loads for each of its components (`osiris_remote.worker.components`): only those are parsed.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path, PurePosixPath
from typing import Annotated, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from osiris_core.errors import InputError, Location, SpecError
from osiris_core.fingerprint import fingerprint_of, package_files, run_packages
from osiris_core.input_files import MiB, describe_size, read_regular_file
from osiris_core.registry import Component
from osiris_core.spec import parse_spec
from osiris_remote.bundle_format import (
    DEFAULT_PACKAGES,
    MANIFEST_NAME,
    WORKER_PACKAGE,
    bundle_bytes,
    bundle_sha256,
    bundled,
    file_manifest,
)
from osiris_remote.worker.components import SPEC_FILE, component_spec_paths

MAX_BUNDLE_BYTES = 64 * MiB
"""A bundle file (`--bundle`); the real one is well under 1 MiB."""
MAX_BUNDLE_CONTENT_BYTES = 256 * MiB
"""What a bundle's files may add up to once decompressed (a bound against zip bombs)."""
_REBUILD = "rebuild it with `./pants package src/python/osiris_remote:bundle` (or drop --bundle)"
_BUILT = "built from the running code"
_DROP = "drop --bundle: the host builds the bundle each pipeline needs"
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

    @cached_property
    def run_packages(self) -> list[str]:
        """The top-level packages the bundle carries besides the worker's."""
        return sorted({_top(path) for path in self.manifest} - {WORKER_PACKAGE})

    def fingerprint(self) -> str:
        """The code fingerprint of its run packages (`osiris_core.fingerprint.run_fingerprint`)."""
        return fingerprint_of({p: s for p, s in self.manifest.items() if _top(p) != WORKER_PACKAGE})

    def read(self, path: str) -> bytes:
        with zipfile.ZipFile(io.BytesIO(self.data)) as archive:
            return archive.read(path)

    def differences(self, expected: dict[str, str]) -> list[str]:
        """Paths whose sha256 in this bundle differs from `expected` (path → sha256), or that only one side has."""
        return sorted(p for p in set(self.manifest) | set(expected) if self.manifest.get(p) != expected.get(p))

    def tampered_files(self) -> list[str]:
        """Files whose bytes differ from the bundle's manifest; always empty for a `Bundle` (see `parse_bundle`)."""
        return _tampered(self.data, self.manifest)


def _top(path: str) -> str:
    return PurePosixPath(path).parts[0]


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


def bundle_files(packages: Iterable[str]) -> dict[str, bytes]:
    """`package/relative/path` → bytes of what a bundle of run `packages` carries, as this process runs them."""
    wanted = set(packages)
    return {path: data for path, data in package_files(wanted | {WORKER_PACKAGE}).items() if bundled(path, wanted)}


def build_bundle(packages: Iterable[str] = DEFAULT_PACKAGES) -> Bundle:
    """The bundle of run `packages` from the code this process runs (installed wheels or a source tree)."""
    return parse_bundle(bundle_bytes(bundle_files(packages)), origin=_BUILT)


def load_bundle(path: Path) -> Bundle:
    """A `--bundle` file: a regular file of at most `MAX_BUNDLE_BYTES`, verified file by file."""
    return parse_bundle(read_regular_file(path, limit=MAX_BUNDLE_BYTES, what="bundle"), origin=str(path))



class Shipment(NamedTuple):
    """What a sandbox run ships: the bundle, and the bundle path of each component's spec the worker loads."""

    bundle: Bundle
    spec_paths: list[str]


def bundle_for(components: Sequence[Component], given: Bundle | None = None) -> Bundle:
    """The bundle a run of `components` ships (`ship`)."""
    return ship(components, given).bundle


def ship(components: Sequence[Component], given: Bundle | None = None) -> Shipment:
    """The bundle a run of `components` ships: their run packages and the worker, as this host runs them; and
    the spec file in it of each component.

    Without `given` it is built from this process's code; a `given` bundle (`--bundle`) must be that same bundle,
    file for file. Either way each component must be a `spec.yaml` of the bundle, with the host's spec.
    """
    packages = run_packages(component.spec.driver for component in components)
    files = bundle_files(packages)
    bundle = given or parse_bundle(bundle_bytes(files), origin=_BUILT)
    missing = sorted(set(packages) - set(bundle.run_packages))
    if missing:
        raise InputError(f"the bundle ({bundle.origin}) does not carry {', '.join(missing)}, which this pipeline's "
                         "components run", hint=_DROP)
    extra = sorted(set(bundle.run_packages) - set(packages))
    if extra:
        raise InputError(f"the bundle ({bundle.origin}) carries {', '.join(extra)}, which this pipeline does not run",
                         hint=_DROP)
    expected = file_manifest(files)
    host_fp = fingerprint_of({p: s for p, s in expected.items() if _top(p) != WORKER_PACKAGE})
    if bundle.fingerprint() != host_fp:
        raise InputError(f"the bundle ({bundle.origin}) carries driver code {bundle.fingerprint()[:12]} but this "
                         f"host runs {host_fp[:12]}", hint="rebuild the bundle from this code (or drop --bundle)")
    differing = bundle.differences(expected)
    if differing:
        raise InputError(f"the bundle ({bundle.origin}) differs from the code this host runs: {shown(differing)}",
                         hint="rebuild the bundle from this code (or drop --bundle)")
    candidates = component_spec_paths(bundle.manifest)
    return Shipment(bundle, sorted({_spec_path(bundle, component, candidates) for component in components}))


def _spec_path(bundle: Bundle, component: Component, candidates: list[str]) -> str:
    """The `spec.yaml` of the bundle (among `candidates`) that holds the component's spec: the one beside its driver
    module, else another of its package's (each parsed until one matches)."""
    module = component.spec.driver.partition(":")[0]
    beside = f"{module.rpartition('.')[0].replace('.', '/')}/{SPEC_FILE}"
    package = module.split(".", 1)[0]
    for path in sorted((p for p in candidates if _top(p) == package), key=lambda p: p != beside):
        try:
            spec = parse_spec(bundle.read(path).decode("utf-8"), origin=path)
        except (SpecError, UnicodeDecodeError) as exc:
            said = exc.render() if isinstance(exc, SpecError) else str(exc)
            raise InputError(f"the bundle's {path} is not a component spec: {said}",
                             hint="every spec.yaml in a component package must be a component's spec") from None
        if spec.name == component.name and spec.fingerprint() == component.spec.fingerprint():
            return path
    raise InputError(f"component '{component.name}' cannot run in a sandbox: no spec.yaml of package "
                     f"'{package}' holds its spec", hint="ship the spec as a spec.yaml file in the "
                     "component's package, beside its driver (docs/components.md)")
