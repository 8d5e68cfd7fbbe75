"""Spec rules: how a step's config keys (and its connection's fields) constrain each other.

A component's `spec.yaml` lists them under `rules:`; the compiler checks every step against them and reports the
first broken one at the step's YAML location, and the engine checks them again, with the connection's resolved
fields, just before the step runs. One rule is one constraint on a list of keys, optionally only `when` other
keys have given values:

    rules:
      - one_of: [query, table]             # exactly one is set
      - forbids: [columns, limit]          # none is set ...
        when: {query: {}}                  # ... when query is set (to any value)
      - requires: [primary_key]            # all are set ...
        when: {write_mode: upsert}         # ... when write_mode is upsert
        hint: list the key columns in primary_key

Constraints: `requires` (all set), `forbids` (none set), `exclusive` (at most one set), `one_of` (exactly one),
`any_of` (at least one). A key is *set* when it has a value other than null, "" , [] or {}; keys the step leaves
out count with the spec's `default`. `when` maps keys to a JSON Schema their value must match (the key must be
set): `{}` is any value, a plain value means `const`, a list means `enum` (`{write_mode: [append, upsert]}`).
The same conditions say when a writer is idempotent (a spec's `idempotent:`), which `osiris parity` relies on.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import jsonschema
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
    model_validator,
)

from osiris_core.canonical import canonical_json
from osiris_core.json_schemas import check_schema

CONSTRAINTS = ("requires", "forbids", "exclusive", "one_of", "any_of")
KeyList = tuple[str, ...]


def condition_schema(value: Any) -> dict[str, Any]:
    """A `when` value as a JSON Schema: a mapping is one already, a list means `enum`, anything else `const`."""
    if isinstance(value, dict):
        return value
    if isinstance(value, list):
        return {"enum": value}
    return {"const": value}


def check_condition(when: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """`when` with every value as a checked JSON Schema (raises ValueError on a bad schema)."""
    schemas = {}
    for key, value in when.items():
        schema = condition_schema(value)
        try:
            check_schema(schema)
        except jsonschema.SchemaError as exc:
            raise ValueError(f"condition on {key!r} is not a JSON Schema: {exc.message}") from None
        schemas[key] = schema
    return schemas


def is_set(values: Mapping[str, Any], key: str) -> bool:
    value = values.get(key)
    return value is not None and value not in ("", [], {})


def describe(key: str, schema: Mapping[str, Any]) -> str:
    """`write_mode is 'upsert'`, `query is set`, … — from the spec's own text, never the user's values."""
    if not schema:
        return f"{key} is set"
    if set(schema) == {"const"}:
        return f"{key} is {json.dumps(schema['const'])}"
    if set(schema) == {"enum"}:
        return f"{key} is one of {', '.join(json.dumps(v) for v in schema['enum'])}"
    if set(schema) == {"pattern"}:
        return f"{key} matches /{schema['pattern']}/"
    return f"{key} matches {canonical_json(dict(schema))}"


def holds(when: Mapping[str, Mapping[str, Any]], values: Mapping[str, Any]) -> bool:
    """Whether every condition holds for `values` (each key set, its value valid under its schema)."""
    return all(is_set(values, key) and jsonschema.Draft202012Validator(dict(schema)).is_valid(values[key])
               for key, schema in when.items())


@dataclass(frozen=True)
class Violation:
    """A broken rule: a one-line message, the key to point at (None: the step's config) and a hint."""

    message: str
    key: str | None
    hint: str


class Rule(BaseModel):
    """One constraint on config keys and connection fields (see the module docstring)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    requires: KeyList | None = Field(default=None, min_length=1)
    forbids: KeyList | None = Field(default=None, min_length=1)
    exclusive: KeyList | None = Field(default=None, min_length=2)
    one_of: KeyList | None = Field(default=None, min_length=2)
    any_of: KeyList | None = Field(default=None, min_length=2)
    when: dict[str, Any] = Field(default_factory=dict)
    hint: str | None = None

    @field_validator("when")
    @classmethod
    def _conditions(cls, value: dict[str, Any]) -> dict[str, Any]:
        return check_condition(value)

    @model_validator(mode="after")
    def _one_constraint(self) -> Rule:
        given = [name for name in CONSTRAINTS if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError(f"a rule has exactly one of {', '.join(CONSTRAINTS)} (got {given or 'none'})")
        return self

    @model_serializer(mode="wrap")
    def _as_written(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """As a spec writes it: the constraint, and `when`/`hint` only when given."""
        data: dict[str, Any] = handler(self)
        return {k: v for k, v in data.items() if v is not None and v != {}}

    @property
    def kind(self) -> str:
        return next(name for name in CONSTRAINTS if getattr(self, name) is not None)

    @property
    def keys(self) -> KeyList:
        """The constrained keys."""
        keys: KeyList = getattr(self, self.kind)
        return keys

    @property
    def names(self) -> frozenset[str]:
        """Every key the rule reads."""
        return frozenset(self.keys) | frozenset(self.when)

    def check(self, values: Mapping[str, Any], unknown: Iterable[str] = ()) -> Violation | None:
        """The violation for `values`, or None. Keys in `unknown` have values not known yet (a connection field
        whose `${VAR}` is not set): a rule whose condition reads one is skipped, and a constraint is reported only
        if it is broken whether those keys are set or not."""
        unknown = frozenset(unknown) & self.names
        if unknown & set(self.when) or not holds(self.when, values):
            return None
        undecided = sorted(unknown & set(self.keys))
        found: Violation | None = None
        for choice in itertools.product((False, True), repeat=len(undecided)):
            assumed = {k for k, on in zip(undecided, choice, strict=True) if on}
            found = self._violation([k for k in self.keys
                                     if (k in assumed if k in undecided else is_set(values, k))])
            if found is None:
                return None
        return found

    def _violation(self, given: list[str]) -> Violation | None:
        keys = list(self.keys)
        missing = [k for k in keys if k not in given]
        where = f" when {' and '.join(describe(k, s) for k, s in self.when.items())}" if self.when else ""
        anchor = next(iter(self.when), None)
        names = ", ".join(keys)
        if self.kind == "requires" and missing:
            verb = "is" if len(missing) == 1 else "are"
            return self._found(f"{', '.join(missing)} {verb} required{where}", anchor or missing[0],
                               f"set {', '.join(missing)}")
        if self.kind == "forbids" and given:
            verb = "is" if len(given) == 1 else "are"
            return self._found(f"{', '.join(given)} {verb} not allowed{where}", given[0], f"remove {given[0]}")
        if self.kind in ("exclusive", "one_of") and len(given) > 1:
            return self._found(f"{' and '.join(given)} exclude each other{where}", given[-1],
                               f"set only one of {names}")
        if self.kind in ("one_of", "any_of") and not given:
            need = "one" if self.kind == "one_of" else "at least one"
            return self._found(f"{need} of {names} is required{where}", anchor, f"set {need} of {names}")
        return None

    def _found(self, message: str, key: str | None, hint: str) -> Violation:
        return Violation(message, key, self.hint or hint)


def first_violation(rules: Iterable[Rule], values: Mapping[str, Any], unknown: Iterable[str] = ()) -> Violation | None:
    """The first broken rule, in the spec's order."""
    unknown = frozenset(unknown)
    return next((v for v in (rule.check(values, unknown) for rule in rules) if v is not None), None)
