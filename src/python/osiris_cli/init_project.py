"""`osiris init [DIR]`: a project skeleton whose sample pipeline runs at once, never overwriting a file.

The skeleton is package data (`templates/init/`) plus an `osiris_connections.yaml` written from the installed
components' specs: one connection per family with every field the specs declare, each value a `${VAR}`
placeholder (with the driver's default where it has one).
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Iterator
from importlib.resources import files
from pathlib import Path
from typing import Annotated, Any

from pydantic import SecretStr, TypeAdapter, ValidationError
from pydantic.fields import FieldInfo

from osiris_core.connections import CONNECTIONS_FILE
from osiris_core.errors import InputError
from osiris_core.registry import Component, ComponentRegistry

TEMPLATES = "templates/init"
SKELETON: tuple[tuple[str, str], ...] = (
    ("pipelines/director_stats.yaml", "pipelines/director_stats.yaml"),
    ("data/movies.csv", "data/movies.csv"),
    ("data/directors.csv", "data/directors.csv"),
    ("README.md", "README.md"),
    (".gitignore", "gitignore"),
)
"""(path in the project, template file)."""
SAMPLE_PIPELINE = SKELETON[0][0]
CONNECTIONS_HEADER = """\
# Connections, one per database family, referenced from a step as "@family" (the default alias) or
# "@family.alias". Every value comes from the environment: ${VAR} must be set (even to an empty value),
# ${VAR:-default} falls back to the default. A connection is resolved only when a step uses it, so unset
# variables of families you do not use are harmless. Check the ones you use: `osiris connections doctor`.
# Lines commented out are optional fields: uncomment them to use them. Never write a secret into this file.
connections:
"""


def _field_infos(component: Component) -> dict[str, FieldInfo]:
    return {(info.alias or name): info for name, info in component.driver.config_model.model_fields.items()}


def _accepts_empty(info: FieldInfo) -> bool:
    annotation: Any = Annotated[(info.annotation, *info.metadata)] if info.metadata else info.annotation
    try:
        TypeAdapter(annotation).validate_python("")
    except ValidationError:
        return False
    return True


def _field_line(family: str, field: str, info: FieldInfo | None) -> str:
    """`field: ${VAR}` for a required field, `${VAR:-default}` for one with a default, commented out for an
    optional one that an empty value would not satisfy."""
    variable = f"{family}_{field}".upper()
    if info is None or info.is_required():
        return f"      {field}: ${{{variable}}}"
    default = info.get_default(call_default_factory=True)
    if isinstance(default, SecretStr):
        default = default.get_secret_value()
    if default is None:
        if _accepts_empty(info):
            return f"      {field}: ${{{variable}:-}}"
        return f"      # {field}: ${{{variable}}}"
    text = str(default).lower() if isinstance(default, bool) else str(default)
    return f"      {field}: ${{{variable}:-{text}}}"


def connections_template(registry: ComponentRegistry) -> str:
    """An `osiris_connections.yaml` with a `main` (default) connection for every family the components use."""
    families: dict[str, dict[str, FieldInfo | None]] = {}
    for component in registry:
        connection = component.spec.connection
        if connection is None:
            continue
        infos = _field_infos(component)
        fields = families.setdefault(connection.family, {})
        for field in connection.fields:
            fields.setdefault(field, infos.get(field))
    lines = [CONNECTIONS_HEADER.rstrip("\n")]
    if not families:
        lines.append("  {}")
    for family, fields in sorted(families.items()):
        lines += [f"  {family}:", "    main:", "      default: true"]
        lines += [_field_line(family, field, info) for field, info in fields.items()]
    return "\n".join(lines) + "\n"


def _skeleton(registry: ComponentRegistry) -> Iterator[tuple[str, bytes]]:
    root = files("osiris_cli").joinpath(TEMPLATES)
    for target, source in SKELETON:
        yield target, root.joinpath(source).read_bytes()
    yield CONNECTIONS_FILE, connections_template(registry).encode("utf-8")


def _create(path: Path, content: bytes) -> bool:
    """Write `path` whole, only if nothing is there (not even a dangling link); False if something was."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o644)
    except FileExistsError:
        return False
    try:
        with os.fdopen(fd, "wb") as stream:
            stream.write(content)
    except BaseException:
        path.unlink(missing_ok=True)  # never leave half a file
        raise
    return True


def init_project(directory: Path, registry: ComponentRegistry) -> dict[str, Any]:
    """Create the skeleton in `directory`: `{"directory", "created": [...], "kept": [...]}` (paths relative)."""
    if directory.exists() and not directory.is_dir():
        raise InputError(f"{directory} exists and is not a directory", hint="give a new or existing directory")
    contents = list(_skeleton(registry))  # everything is ready before anything is written
    created: list[str] = []
    kept: list[str] = []
    for relative, content in contents:
        target = directory / relative
        try:
            made = _create(target, content)
        except (NotADirectoryError, FileExistsError):
            raise InputError(f"cannot create {target}: a file stands where a folder is needed",
                             hint=f"move {target.parent} away or init another directory") from None
        (created if made else kept).append(relative)
    run = f"osiris run {SAMPLE_PIPELINE}"
    return {"directory": str(directory), "created": created, "kept": kept,
            "next": run if directory == Path() else f"cd {shlex.quote(str(directory))} && {run}"}
