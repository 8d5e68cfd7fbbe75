"""Checking that a JSON Schema (draft 2020-12) is valid, with one meta-schema validator per process."""

from __future__ import annotations

from functools import cache
from typing import Any

import jsonschema


@cache
def _meta_validator() -> jsonschema.Draft202012Validator:
    """The validator `Draft202012Validator.check_schema` builds on each call, built once: its references into
    the meta-schema are then resolved once per process rather than once per schema."""
    meta = jsonschema.Draft202012Validator
    return meta(meta.META_SCHEMA, format_checker=meta.FORMAT_CHECKER)


def check_schema(schema: Any) -> None:
    """`Draft202012Validator.check_schema(schema)`: the first error against the meta-schema is a `SchemaError`."""
    for error in _meta_validator().iter_errors(schema):
        raise jsonschema.SchemaError.create_from(error)
