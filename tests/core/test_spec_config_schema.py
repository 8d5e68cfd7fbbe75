"""A spec's config must be a valid JSON Schema (2020-12): the error is jsonschema's own first one, every time."""

from __future__ import annotations

import jsonschema
import pytest
import yaml

from osiris_core.errors import SpecError
from osiris_core.spec import parse_spec

SPEC = """name: probe.x
version: 0.1.0
description: A probe.
modes: [read]
driver: probe.driver:Probe
config:
  type: object
  additionalProperties: false
  properties:
    limit: {type: %s}
"""


@pytest.mark.parametrize("kind", ["integr", "[string, 7]", "{}"])
def test_an_invalid_config_schema_is_refused_with_jsonschemas_message_on_each_parse(kind: str) -> None:
    text = SPEC % kind
    with pytest.raises(jsonschema.SchemaError) as expected:
        jsonschema.Draft202012Validator.check_schema(yaml.safe_load(text)["config"])
    for _ in range(2):
        with pytest.raises(SpecError) as raised:
            parse_spec(text, origin="probe/spec.yaml")
        assert f"invalid config JSON Schema: {expected.value.message}" in raised.value.render()


def test_a_valid_config_schema_parses_each_time() -> None:
    for _ in range(2):
        assert parse_spec(SPEC % "integer", origin="probe/spec.yaml").config_keys == {"limit"}
