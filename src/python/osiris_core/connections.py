"""Connections: `osiris_connections.yaml`, `@family.alias` references and `${VAR}` substitution."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from osiris_core.errors import ConnectionConfigError, Location
from osiris_core.yaml_source import YamlDocument, load_yaml

CONNECTIONS_FILE = "osiris_connections.yaml"
CONNECTIONS_ENV = "OSIRIS_CONNECTIONS"
REFERENCE = re.compile(r"^@(?P<family>[a-z][a-z0-9_]*)(?:\.(?P<alias>[A-Za-z0-9_\-]+))?$")
_ENV_REF = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}")


@dataclass(frozen=True)
class ConnectionRef:
    family: str
    alias: str | None

    def __str__(self) -> str:
        return f"@{self.family}" if self.alias is None else f"@{self.family}.{self.alias}"


def parse_reference(text: str) -> ConnectionRef:
    match = REFERENCE.match(text)
    if not match:
        raise ConnectionConfigError(
            f"invalid connection reference '{text}'", hint="write '@family.alias' or '@family' for the default"
        )
    return ConnectionRef(match["family"], match["alias"])


def find_connections_file(explicit: Path | None, *, search_dirs: tuple[Path, ...] = ()) -> Path | None:
    """The connections file to use: `explicit`, else `$OSIRIS_CONNECTIONS`, else the first found in cwd/search_dirs."""
    if explicit is not None:
        return explicit
    from_env = os.environ.get(CONNECTIONS_ENV)
    if from_env:
        return Path(from_env)
    for directory in (Path.cwd(), *search_dirs):
        candidate = directory / CONNECTIONS_FILE
        if candidate.is_file():
            return candidate
    return None


def substitute_env(value: Any, *, environ: Mapping[str, str], where: str) -> Any:
    """Replace `${VAR}` and `${VAR:-default}` inside strings; an unset variable without default is an error."""
    if isinstance(value, str):

        def replace(match: re.Match[str]) -> str:
            name = match["name"]
            if name in environ:
                return environ[name]
            if match["default"] is not None:
                return match["default"]
            raise ConnectionConfigError(
                f"environment variable {name} is not set (needed by {where})",
                hint=f"export {name}=... or write ${{{name}:-default}}",
            )

        return _ENV_REF.sub(replace, value)
    if isinstance(value, Mapping):
        return {k: substitute_env(v, environ=environ, where=where) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute_env(v, environ=environ, where=where) for v in value]
    return value


class Connections:
    """The parsed connections file. Values keep their `${VAR}` references until `resolve` is called."""

    def __init__(self, document: YamlDocument | None) -> None:
        self._document = document
        self._families: dict[str, dict[str, dict[str, Any]]] = {}
        if document is not None:
            self._families = self._validate(document)

    @classmethod
    def load(cls, path: Path | None) -> Connections:
        if path is None:
            return cls(None)
        return cls(load_yaml(path, what="connections"))

    @property
    def path(self) -> str | None:
        return self._document.path if self._document else None

    @staticmethod
    def _validate(document: YamlDocument) -> dict[str, dict[str, dict[str, Any]]]:
        data = document.data
        if not isinstance(data, dict) or not isinstance(data.get("connections"), dict):
            raise ConnectionConfigError(
                "expected a top-level 'connections:' mapping",
                location=document.location([]),
                hint="write connections: {family: {alias: {...fields}}}",
            )
        families: dict[str, dict[str, dict[str, Any]]] = {}
        for family, aliases in data["connections"].items():
            if not isinstance(aliases, dict):
                raise ConnectionConfigError(
                    f"family '{family}' must map aliases to field mappings",
                    location=document.location(["connections", family]),
                )
            defaults = []
            for alias, fields in aliases.items():
                if not isinstance(fields, dict):
                    raise ConnectionConfigError(
                        f"connection '@{family}.{alias}' must be a mapping of fields",
                        location=document.location(["connections", family, alias]),
                    )
                if fields.get("default") is True:
                    defaults.append(alias)
            if len(defaults) > 1:
                raise ConnectionConfigError(
                    f"family '{family}' has several defaults: {defaults}",
                    location=document.location(["connections", family]),
                    hint="mark exactly one alias with default: true",
                )
            families[str(family)] = {str(a): dict(f) for a, f in aliases.items()}
        return families

    def families(self) -> dict[str, dict[str, dict[str, Any]]]:
        return {family: {alias: dict(f) for alias, f in aliases.items()} for family, aliases in self._families.items()}

    def default_alias(self, family: str) -> str | None:
        aliases = self._families.get(family, {})
        for alias, fields in aliases.items():
            if fields.get("default") is True:
                return alias
        return next(iter(aliases)) if len(aliases) == 1 else None

    def normalise(self, ref: ConnectionRef) -> ConnectionRef:
        """Turn `@family` into `@family.<default alias>`; raise if the connection does not exist."""
        where = f" in {self.path}" if self.path else ""
        if self._document is None:
            raise ConnectionConfigError(
                f"connection {ref} is referenced but no {CONNECTIONS_FILE} was found",
                hint=f"create {CONNECTIONS_FILE} in the working directory, or pass --connections PATH",
            )
        if ref.family not in self._families:
            raise ConnectionConfigError(
                f"no connection family '{ref.family}'{where}",
                hint=f"known families: {sorted(self._families) or 'none'}",
            )
        alias = ref.alias or self.default_alias(ref.family)
        if alias is None:
            raise ConnectionConfigError(
                f"{ref} has no default alias{where}",
                hint="mark one alias with default: true, or write @family.alias",
            )
        if alias not in self._families[ref.family]:
            raise ConnectionConfigError(
                f"no connection '@{ref.family}.{alias}'{where}",
                hint=f"known aliases: {sorted(self._families[ref.family])}",
            )
        return ConnectionRef(ref.family, alias)

    def location_of(self, ref: ConnectionRef) -> Location | None:
        if self._document is None:
            return None
        return self._document.location(["connections", ref.family, ref.alias or ""])

    def resolve(self, ref: ConnectionRef, *, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
        """The connection's fields with environment references substituted (secrets included: use, never log)."""
        ref = self.normalise(ref)
        assert ref.alias is not None
        fields = {k: v for k, v in self._families[ref.family][ref.alias].items() if k != "default"}
        return dict(substitute_env(fields, environ=os.environ if environ is None else environ, where=str(ref)))
