"""Loads the `spec.yaml` that sits beside a driver module."""

from __future__ import annotations

from importlib.resources import files
from typing import Any

from osiris_core.driver import Driver
from osiris_core.registry import Component
from osiris_core.spec import parse_spec

SPEC_FILE = "spec.yaml"


def component_for(driver: type[Driver[Any]]) -> Component:
    """The component made of `driver` and the spec file in the driver's package."""
    package = driver.__module__.rsplit(".", 1)[0]
    resource = files(package) / SPEC_FILE
    spec = parse_spec(resource.read_text(encoding="utf-8"), origin=f"{package.replace('.', '/')}/{SPEC_FILE}")
    return Component(spec=spec, driver=driver)
