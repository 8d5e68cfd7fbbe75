"""`osiris discover --emit-pipeline`: a starter OML pipeline that copies chosen tables (or CSV files) of one
connection into a local DuckDB file.

Per table: the family's extractor step (`FamilyCatalog.extractor`) → a `duckdb.writer` step into
`output/<family>_<alias>.duckdb`, table named after the source (dots become `_`), `write_mode: replace` so that
running it again leaves the same copy. The pipeline is compiled before it is written: it always validates.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from osiris_core.compiler import compile_pipeline
from osiris_core.connections import ConnectionRef, Connections
from osiris_core.errors import InputError
from osiris_core.oml import OML_VERSIONS, parse_pipeline, sql_name
from osiris_core.registry import ComponentRegistry
from osiris_core.yaml_source import parse_yaml
from osiris_drivers.catalog import Catalog, FamilyCatalog, Relation
from osiris_drivers.connection import ConnectionSettings

TARGET_DIR = "output"
WRITER = "duckdb.writer"


def target_file(reference: ConnectionRef) -> str:
    """Where the copy goes: `output/<family>_<alias>.duckdb` (relative to where the pipeline runs)."""
    return f"{TARGET_DIR}/{reference.family}_{reference.alias}.duckdb"


def _pick(catalog: Catalog, wanted: str, reference: ConnectionRef) -> Relation:
    """The relation named `wanted`: its name, `schema.name`, its path, or a file's name without `.csv`."""
    for relation in catalog.relations:
        names = {relation.name, f"{relation.schema}.{relation.name}", relation.path,
                 relation.name.removesuffix(".csv") if relation.kind == "file" else None}
        if wanted in names:
            return relation
    where = f" schema '{catalog.schema}'" if catalog.schema else ""
    known = ", ".join(r.name for r in catalog.relations[:20]) or "none"
    raise InputError(f"no table '{wanted}' in {reference}{where}",
                     hint=f"tables: {known}{' …' if len(catalog.relations) > 20 else ''}; `osiris discover "
                          f"{reference}` lists them" + ("" if catalog.schema is None else " (--schema for another)"))


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (queries) as literal blocks."""


def _text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if "\n" in value else None)


_Dumper.add_representer(str, _text)


class _Names:
    """Step ids and table names, each unique (step ids also as SQL names)."""

    def __init__(self) -> None:
        self.taken: set[str] = set()

    def unique(self, base: str) -> str:
        name, n = base, 1
        while name.lower() in self.taken or sql_name(name).lower() in self.taken:
            n += 1
            name = f"{base}_{n}"
        self.taken.update({name.lower(), sql_name(name).lower()})
        return name


@dataclass(frozen=True)
class StarterPipeline:
    name: str
    text: str
    """The OML file, a comment on top."""
    steps: list[str]
    target: str
    """The DuckDB file it writes."""


def starter_pipeline(reference: ConnectionRef, family: FamilyCatalog[Any], settings: ConnectionSettings,
                     catalog: Catalog, tables: Sequence[str], registry: ComponentRegistry,
                     connections: Connections) -> StarterPipeline:
    """The pipeline copying `tables` (names as `discover` lists them); refuses unknown ones. It is compiled
    here, against `registry` and `connections`, so it validates."""
    chosen = list(dict.fromkeys(_pick(catalog, name, reference) for name in tables))
    target = target_file(reference)
    ids, table_names = _Names(), _Names()
    steps: list[dict[str, Any]] = []
    for relation in chosen:
        base = relation.name.removesuffix(".csv") if relation.kind == "file" else relation.name
        slug = re.sub(r"[^A-Za-z0-9_]+", "-", base).strip("-") or "table"
        component, config = family.extractor(str(reference), settings, relation)
        extract = ids.unique(f"extract-{slug}")
        steps.append({"id": extract, "component": component, "mode": registry.get(component).spec.modes[0],
                      "config": config})
        steps.append({"id": ids.unique(f"write-{slug}"), "component": WRITER, "mode": "write", "needs": [extract],
                      "config": {"path": target, "table": table_names.unique(base.replace(".", "_")),
                                 "write_mode": "replace"}})
    name = f"copy-{reference.family}-{reference.alias}"
    document = {"oml_version": OML_VERSIONS[-1], "name": name,
                "metadata": {"description": f"Copies {len(chosen)} table(s) of {reference} into {target} "
                                           "(written by `osiris discover --emit-pipeline`)."},
                "steps": steps}
    text = (f"# Starter pipeline from `osiris discover {reference} --emit-pipeline`: each table is read by its own\n"
            f"# step and written to {target} (write_mode: replace). Run it from the folder discover ran in:\n"
            f"#   osiris run <this file>\n"
            + yaml.dump(document, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100))
    emitted = parse_yaml(text, path="<emitted pipeline>")
    compile_pipeline(parse_pipeline(emitted), emitted, registry, connections)
    return StarterPipeline(name, text, [step["id"] for step in steps], target)
