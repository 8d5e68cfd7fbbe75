"""A step's typed config, checked as every run and dry run checks it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from osiris_core.driver import DriverConfig
from osiris_core.errors import InputError
from osiris_core.manifest import ManifestStep
from osiris_core.registry import Component


def with_connection(step: ManifestStep, component: Component, fields: Mapping[str, Any],
                    config: Mapping[str, Any]) -> dict[str, Any]:
    """The step's own keys over its resolved connection's `fields`; a field the component does not use is a
    one-line InputError."""
    spec = component.spec
    allowed = spec.connection.fields if spec.connection is not None else ()
    unknown = sorted(set(fields) - set(allowed))
    if unknown:
        raise InputError(f"connection {step.connection} has fields {unknown} that '{spec.name}' does not use",
                         hint=f"allowed fields: {list(allowed)}")
    return {**fields, **config}


def typed_config(step: ManifestStep, component: Component, config: Mapping[str, Any]) -> DriverConfig:
    """`config` (its connection's fields resolved) checked against the spec's rules, then typed by the driver's
    config model; a bad value is a one-line InputError naming the step and the key."""
    violation = component.spec.rule_violation(config)
    if violation is not None:
        raise InputError(f"step '{step.id}': {violation.message}", hint=violation.hint)
    try:
        return component.driver.config_model.model_validate(config)
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(p) for p in first["loc"])
        raise InputError(f"step '{step.id}': config '{key}': {first['msg']}",
                         hint=f"see `osiris components show {step.component}`") from None
