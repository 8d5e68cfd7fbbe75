# Pants BUILD-file prelude: the one shape every Osiris library takes (sources, packaged data files, a wheel).

OSIRIS_VERSION = "0.1.0"

# Type stubs are for mypy only: never a Requires-Dist of a wheel.
# (A tuple: prelude values must be hashable.)
_STUBS_EXCLUDED = tuple(
    f"!!//3rdparty/python:reqs#{stub}"
    for stub in ("types-PyYAML", "types-jsonschema", "types-psycopg2", "types-PyMySQL")
)


def osiris_library(*, dist_name, description, data_globs=("py.typed",), entry_points=None):
    """python_sources `:lib` + resources `:data` + python_distribution `:dist` (reproducible wheel only)."""
    resources(name="data", sources=list(data_globs))
    python_sources(name="lib", sources=["**/*.py"], dependencies=[":data"])
    python_distribution(
        name="dist",
        dependencies=[":lib", ":data", *_STUBS_EXCLUDED],
        provides=python_artifact(
            name=dist_name,
            version=OSIRIS_VERSION,
            description=description,
            python_requires=">=3.11",
        ),
        entry_points=entry_points or {},
        env_vars=["SOURCE_DATE_EPOCH=315532800"],
        sdist=False,
    )
