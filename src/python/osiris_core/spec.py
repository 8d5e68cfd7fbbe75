"""Component specs: the `spec.yaml` that declares a component's modes, config schema, secrets and driver."""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Iterable, Mapping
from typing import Annotated, Any, Literal

import jsonschema
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from osiris_core.canonical import sha256_value
from osiris_core.errors import Location, SpecError
from osiris_core.json_schemas import check_schema
from osiris_core.rules import Rule, Violation, check_condition, first_violation, holds
from osiris_core.yaml_source import YamlDocument, parse_yaml

Mode = Literal["read", "write", "transform"]
MODES: tuple[Mode, ...] = ("read", "write", "transform")
COMPONENT_NAME_PATTERN = r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$"
DRIVER_PATTERN = r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$"
"""`package.module:Class`."""
ProjectName = Annotated[str, Field(pattern=r"^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$")]
"""A PyPI project name (as `pip install` takes it, without version or extras)."""
EventName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$")]
GLOB_CHARACTERS = re.compile(r"[*?[]")


def expand_glob(pattern: str) -> list[str]:
    """The regular files a path with glob characters (`*`, `?`, `[…]`, `**` for any depth) matches, sorted; a
    path without them, or naming an existing file, is itself. Hidden files match only a pattern that starts
    with a dot, as in a shell."""
    if not GLOB_CHARACTERS.search(pattern) or os.path.isfile(pattern):
        return [pattern]
    return sorted(path for path in glob.glob(pattern, recursive=True) if os.path.isfile(path))


class ConnectionSpec(BaseModel):
    """Which connection family a component uses and which config fields that connection supplies."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    family: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    fields: tuple[str, ...]
    required: bool = True


class ComponentSpec(BaseModel):
    """A parsed, validated `spec.yaml`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=COMPONENT_NAME_PATTERN)
    version: str
    description: str
    modes: tuple[Mode, ...] = Field(min_length=1)
    driver: str = Field(pattern=DRIVER_PATTERN)
    connection: ConnectionSpec | None = None
    secrets: tuple[str, ...] = ()
    requirements: tuple[ProjectName, ...] = ()
    """PyPI projects the driver imports beyond the engine's own (pydantic, pyyaml, pyarrow, jsonschema):
    what `--e2b-install-deps` installs, from the lock, for a sandbox that runs this component."""
    events: tuple[EventName, ...] = ()
    """Component events the driver emits through `StepContext` (e.g. `source_opened`, `output_written`); the
    conformance tests check emitted events against this list."""
    config: dict[str, Any]
    rules: tuple[Rule, ...] = ()
    """Constraints between config keys and connection fields (`osiris_core.rules`), checked at compile time and
    again before the step runs."""
    idempotent: bool | dict[str, Any] = False
    """Write components: whether running a step twice leaves its target as running it once — true, false, or a
    condition on the config as a rule's `when` (`{write_mode: [replace, upsert]}`). `osiris parity` refuses
    (unless told otherwise) to run a pipeline twice whose writers are not."""

    @field_validator("idempotent")
    @classmethod
    def _idempotent_condition(cls, value: bool | dict[str, Any]) -> bool | dict[str, Any]:
        return value if isinstance(value, bool) else check_condition(value)

    @field_validator("config")
    @classmethod
    def _config_is_object_schema(cls, value: dict[str, Any]) -> dict[str, Any]:
        check_schema(value)
        if value.get("type") != "object" or value.get("additionalProperties") is not False:
            raise ValueError("config must be a JSON Schema with type: object and additionalProperties: false")
        return value

    @property
    def config_keys(self) -> frozenset[str]:
        """Keys a pipeline step may write under `config`."""
        return frozenset(self.config.get("properties", {}))

    @property
    def connection_fields(self) -> frozenset[str]:
        return frozenset(self.connection.fields) if self.connection else frozenset()

    @property
    def driver_keys(self) -> frozenset[str]:
        """Keys the driver receives: step config (minus the connection reference) plus connection fields."""
        return (self.config_keys - {"connection"}) | self.connection_fields

    def file_keys(self, direction: Literal["input", "output"]) -> list[str]:
        """Config keys holding a local file the step reads (`input`), writes (`output`), or both (`inout`).

        Declared in the schema with `x-osiris-file`; sandbox runs upload inputs (and existing `inout` files)
        and bring outputs back.
        """
        wanted = {direction, "inout"}
        properties = self.config.get("properties", {})
        return sorted(k for k, v in properties.items() if isinstance(v, dict) and v.get("x-osiris-file") in wanted)

    def file_required(self, key: str) -> bool:
        """Whether a sandbox run must find the key's file locally before it starts (pure inputs)."""
        return bool(self.config.get("properties", {}).get(key, {}).get("x-osiris-file") == "input")

    def local_files(self, key: str, value: str) -> list[str]:
        """The local files a file key's value names: what its glob matches for a key declared with
        `x-osiris-glob: true` (no file: an empty list), else the value itself."""
        schema = self.config.get("properties", {}).get(key, {})
        return expand_glob(value) if schema.get("x-osiris-glob") is True else [value]

    @property
    def defaults(self) -> dict[str, Any]:
        """The config keys' schema defaults."""
        return {k: v["default"] for k, v in self.config.get("properties", {}).items()
                if isinstance(v, dict) and "default" in v}

    def rule_violation(self, values: Mapping[str, Any], unknown: Iterable[str] = ()) -> Violation | None:
        """The first rule `values` (config keys and connection fields; defaults filled in) break, or None."""
        return first_violation(self.rules, {**self.defaults, **values}, unknown)

    def writes_idempotently(self, config: Mapping[str, Any]) -> bool:
        """Whether a step with this config leaves its target the same when it runs twice (`idempotent`)."""
        if isinstance(self.idempotent, bool):
            return self.idempotent
        return holds(self.idempotent, {**self.defaults, **config})

    def fingerprint(self) -> str:
        return sha256_value(self.model_dump(mode="json"))


def parse_spec(text: str, *, origin: str) -> ComponentSpec:
    """Parse a spec file's text; any problem is a `SpecError` naming `origin`."""
    document = parse_yaml(text, path=origin)
    try:
        spec = ComponentSpec.model_validate(document.data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = document.location([str(p) for p in first["loc"]])
        raise SpecError(
            f"invalid component spec: {'.'.join(str(p) for p in first['loc'])}: {first['msg']}",
            location=where,
            hint="see docs/components.md for the spec format",
        ) from None
    except jsonschema.SchemaError as exc:
        raise SpecError(
            f"invalid config JSON Schema: {exc.message}", location=Location(origin), hint="fix the schema"
        ) from None
    if spec.connection and "connection" not in spec.config_keys:
        raise SpecError(
            "a component with a connection must accept a 'connection' config key",
            location=document.location(["config", "properties"]),
        )
    unknown_secrets = set(spec.secrets) - spec.driver_keys
    if unknown_secrets:
        raise SpecError(
            f"secrets {sorted(unknown_secrets)} are neither config keys nor connection fields",
            location=document.location(["secrets"]),
        )
    _check_rule_keys(spec, document)
    return spec


def _check_rule_keys(spec: ComponentSpec, document: YamlDocument) -> None:
    """Rules name only keys the driver receives; `idempotent` only config keys; globs only on input files."""
    for index, rule in enumerate(spec.rules):
        unknown = sorted(rule.names - spec.driver_keys)
        if unknown:
            raise SpecError(f"rule {index + 1} names {unknown}, neither config keys nor connection fields",
                            location=document.location(["rules", index]),
                            hint=f"use keys of {sorted(spec.driver_keys)}")
    if isinstance(spec.idempotent, dict) and set(spec.idempotent) - spec.config_keys:
        raise SpecError(f"idempotent names {sorted(set(spec.idempotent) - spec.config_keys)}, not config keys",
                        location=document.location(["idempotent"]), hint="a condition on the step's config keys")
    for key, schema in spec.config.get("properties", {}).items():
        if isinstance(schema, dict) and "x-osiris-glob" in schema and (
                schema["x-osiris-glob"] is not True or schema.get("x-osiris-file") != "input"):
            raise SpecError(f"config key '{key}': x-osiris-glob: true applies to x-osiris-file: input keys only",
                            location=document.location(["config", "properties", key]), hint="remove x-osiris-glob")
