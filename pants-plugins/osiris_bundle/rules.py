"""`pants package` for `osiris_bundle`: the default bundle, the same bytes as the runtime builder's
`osiris_remote.bundle.build_bundle()` from the same source files.

The bundle format and the file selection (`bundled`: the engine, the built-in components, and of
`osiris_remote` only the worker) are imported from the project itself (`src/python` is on Pants' `pythonpath`),
so the plugin cannot drift from the runtime builder.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath

from pants.backend.python.target_types import PythonSourceField
from pants.core.goals.package import BuiltPackage, BuiltPackageArtifact, OutputPathField, PackageFieldSet
from pants.core.target_types import ResourceSourceField
from pants.core.util_rules.source_files import SourceFiles, SourceFilesRequest
from pants.core.util_rules.stripped_source_files import StrippedSourceFiles
from pants.engine.fs import CreateDigest, Digest, DigestContents, FileContent, PathGlobs, Paths
from pants.engine.rules import Get, MultiGet, collect_rules, rule
from pants.engine.target import SourcesField, TransitiveTargets, TransitiveTargetsRequest
from pants.engine.unions import UnionRule
from pants.source.source_root import SourceRootsRequest, SourceRootsResult
from pants.util.logging import LogLevel

from osiris_bundle.target_types import OsirisBundleDependenciesField
from osiris_remote.bundle_format import DEFAULT_PACKAGES, WORKER_PACKAGE, bundle_bytes, bundle_sha256, bundled

TOP_LEVEL_PACKAGES = (*DEFAULT_PACKAGES, WORKER_PACKAGE)
"""The packages the default bundle takes files from (of the worker's, only the worker's own files)."""


class OsirisBundleError(Exception):
    pass


@dataclass(frozen=True)
class OsirisBundleFieldSet(PackageFieldSet):
    required_fields = (OsirisBundleDependenciesField,)

    dependencies: OsirisBundleDependenciesField
    output_path: OutputPathField


def _bundled(stripped_path: str) -> bool:
    """The runtime builder's selection for the default bundle."""
    return bundled(stripped_path, DEFAULT_PACKAGES)


def _stripped(path: str, root: str) -> PurePosixPath:
    return PurePosixPath(path) if root in ("", ".") else PurePosixPath(path).relative_to(root)


def _package_dir(path: str, root: str) -> str | None:
    """`src/python/osiris_core` for `src/python/osiris_core/x.py` under root `src/python`, if bundled from."""
    relative = _stripped(path, root)
    if len(relative.parts) < 2 or relative.parts[0] not in TOP_LEVEL_PACKAGES:
        return None
    return str(PurePosixPath(root, relative.parts[0]))


@rule(desc="Build the Osiris driver bundle", level=LogLevel.DEBUG)
async def package_osiris_bundle(field_set: OsirisBundleFieldSet) -> BuiltPackage:
    transitive = await Get(TransitiveTargets, TransitiveTargetsRequest([field_set.address]))
    source_files = await Get(
        SourceFiles,
        SourceFilesRequest(
            (tgt.get(SourcesField) for tgt in transitive.closure),
            for_sources_types=(PythonSourceField, ResourceSourceField),
            enable_codegen=False,
        ),
    )
    stripped, roots = await MultiGet(
        Get(StrippedSourceFiles, SourceFiles, source_files),
        Get(SourceRootsResult, SourceRootsRequest, SourceRootsRequest.for_files(source_files.files)),
    )
    contents = await Get(DigestContents, Digest, stripped.snapshot.digest)
    files = {entry.path: entry.content for entry in contents if _bundled(entry.path)}

    # The runtime builder walks the package directories on disk: every file there that it would bundle must be
    # owned by a target of this bundle, or the two builders disagree.
    package_roots = {
        package_dir: root.path
        for path, root in roots.path_to_root.items()
        if (package_dir := _package_dir(str(path), root.path)) is not None
    }
    missing = sorted(set(TOP_LEVEL_PACKAGES) - {PurePosixPath(path).parts[0] for path in files})
    if missing:
        raise OsirisBundleError(
            f"{field_set.address}: the bundle has no files of package(s) {', '.join(missing)}; "
            "add their `:lib` and `:data` targets to `dependencies`"
        )
    on_disk = await Get(Paths, PathGlobs([f"{dir_}/**" for dir_ in sorted(package_roots)]))
    owned = {str(path) for path in source_files.files}
    unowned = sorted(
        path
        for path in on_disk.files
        if path not in owned
        and any(
            path.startswith(dir_ + "/") and _bundled(str(_stripped(path, root)))
            for dir_, root in package_roots.items()
        )
    )
    if unowned:
        raise OsirisBundleError(
            f"{field_set.address}: files the runtime bundle would carry are not owned by any dependency "
            f"of this target: {', '.join(unowned)}. Add them to a `resources` target (e.g. the "
            "`data_globs` of `osiris_library`) or a `python_sources` target."
        )

    data = bundle_bytes(files)
    output_path = field_set.output_path.value_or_default(file_ending="zip")
    digest = await Get(Digest, CreateDigest([FileContent(output_path, data)]))
    return BuiltPackage(
        digest,
        (
            BuiltPackageArtifact(
                output_path,
                extra_log_lines=(f"    {len(files)} files, sha256 {bundle_sha256(data)}",),
            ),
        ),
    )


def rules():
    return [*collect_rules(), UnionRule(PackageFieldSet, OsirisBundleFieldSet)]
