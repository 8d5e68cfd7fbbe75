"""Component specs: the `spec.yaml` that declares a component's modes, config schema, secrets and driver."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import jsonschema
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from osiris_core.canonical import sha256_value
from osiris_core.errors import Location, SpecError
from osiris_core.yaml_source import parse_yaml

Mode = Literal["read", "write", "transform"]
MODES: tuple[Mode, ...] = ("read", "write", "transform")
COMPONENT_NAME_PATTERN = r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$"
DRIVER_PATTERN = r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$"
"""`package.module:Class`."""
ProjectName = Annotated[str, Field(pattern=r"^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$")]
"""A PyPI project name (as `pip install` takes it, without version or extras)."""
EventName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$")]


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

    @field_validator("config")
    @classmethod
    def _config_is_object_schema(cls, value: dict[str, Any]) -> dict[str, Any]:
        jsonschema.Draft202012Validator.check_schema(value)
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
    return spec
