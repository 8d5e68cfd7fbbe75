"""OML: the pipeline file a user writes. Parsing here checks shape only; the compiler checks meaning."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from osiris_core.errors import CompileError
from osiris_core.spec import Mode
from osiris_core.yaml_source import YamlDocument, load_yaml

OML_VERSIONS = ("0.1.0",)
STEP_ID_PATTERN = r"^[A-Za-z][A-Za-z0-9_\-]*$"
MAX_RETRIES = 10
MAX_BACKOFF_S = 3600.0
RETRIES_HINT = f"write retries: {{max: N (0-{MAX_RETRIES}), backoff_s: seconds (0-{MAX_BACKOFF_S:g})}}"


class RetryPolicy(BaseModel):
    """`retries:` of a step: run it again, up to `max` more times, after an error marked transient.

    Attempt n+1 starts `backoff_s * 2**(n-1)` seconds after attempt n failed. Other errors fail the step at once.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    max: int = Field(default=0, ge=0, le=MAX_RETRIES)
    backoff_s: float = Field(default=0.0, ge=0, le=MAX_BACKOFF_S)

    def delay_s(self, failed_attempt: int) -> float:
        """Seconds to wait after attempt `failed_attempt` (1-based) failed."""
        return float(self.backoff_s * 2 ** (failed_attempt - 1))


class Step(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=STEP_ID_PATTERN)
    component: str
    mode: Mode
    config: dict[str, Any] = Field(default_factory=dict)
    needs: tuple[str, ...] = ()
    retries: RetryPolicy = RetryPolicy()


class Pipeline(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    oml_version: Literal["0.1.0"]
    name: str = Field(min_length=1)
    steps: tuple[Step, ...] = Field(min_length=1)
    metadata: dict[str, Any] = Field(default_factory=dict)


def sql_name(step_id: str) -> str:
    """A step id made SQL-safe: the name under which downstream SQL sees its output."""
    name = re.sub(r"[^A-Za-z0-9_]", "_", step_id)
    return name if not name[0].isdigit() else f"_{name}"


_FIX_BY_TYPE = {
    "extra_forbidden": "remove it or check its spelling",
    "missing": "add it",
    "literal_error": "use one of the allowed values",
    "string_pattern_mismatch": "use letters, digits, '_' and '-', starting with a letter",
}


def _describe(error: dict[str, Any]) -> tuple[str, str]:
    loc = [str(p) for p in error["loc"]]
    dotted = ".".join(loc) or "<root>"
    kind = error["type"]
    if kind == "extra_forbidden":
        return f"unknown key '{loc[-1]}' at {dotted}", RETRIES_HINT if "retries" in loc else _FIX_BY_TYPE[kind]
    if kind == "missing":
        return f"missing required key '{loc[-1]}'", _FIX_BY_TYPE[kind]
    if loc == ["oml_version"]:
        return f"unsupported oml_version {error.get('input')!r}", f"use one of {list(OML_VERSIONS)}"
    if loc[-1:] == ["mode"]:
        return f"invalid mode {error.get('input')!r} at {dotted}", "use read, write or transform"
    if "retries" in loc:
        return f"{dotted}: {error['msg']}", RETRIES_HINT
    return f"{dotted}: {error['msg']}", _FIX_BY_TYPE.get(kind, "fix the value")


def parse_pipeline(document: YamlDocument) -> Pipeline:
    """Validate the document's shape; the first problem becomes a `CompileError` with its location."""
    if not isinstance(document.data, dict):
        raise CompileError(
            "a pipeline must be a YAML mapping", location=document.location([]), hint="see examples/*.yaml"
        )
    try:
        return Pipeline.model_validate(document.data)
    except ValidationError as exc:
        first = exc.errors()[0]
        message, hint = _describe(dict(first))
        location = document.location(list(first["loc"]), key=first["type"] == "extra_forbidden")
        raise CompileError(message, location=location, hint=hint) from None


def load_pipeline(path: Path) -> tuple[Pipeline, YamlDocument]:
    document = load_yaml(path)
    return parse_pipeline(document), document
