"""The `osiris_bundle` target: which source targets go into the driver bundle, and where it is written."""

from pants.core.goals.package import OutputPathField
from pants.engine.target import COMMON_TARGET_FIELDS, Dependencies, Target
from pants.util.strutil import help_text


class OsirisBundleDependenciesField(Dependencies):
    help = help_text(
        """
        The `python_sources` and `resources` targets of the bundled packages (`:lib` and `:data` of
        `osiris_core` and `osiris_drivers`, `:lib` of `osiris_remote`). Dependencies are followed
        transitively; only files `osiris_remote.bundle_format.bundled` selects for the default bundle
        end up in it: the engine's, the built-in components', and the worker's (never the host side of
        `osiris_remote`).
        """
    )


class OsirisBundleTarget(Target):
    alias = "osiris_bundle"
    core_fields = (*COMMON_TARGET_FIELDS, OsirisBundleDependenciesField, OutputPathField)
    help = help_text(
        """
        The default Osiris bundle: a deterministic zip built by `osiris_remote.bundle_format.bundle_bytes`
        from the source files of its dependencies, paths relative to their source root. Byte-identical to
        the bundle the runtime builds from the same files for pipelines of built-in components.
        """
    )
