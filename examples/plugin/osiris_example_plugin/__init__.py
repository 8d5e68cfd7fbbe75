"""An example third-party Osiris component package."""

from __future__ import annotations

from importlib.resources import files

from osiris_core.registry import Component
from osiris_core.spec import parse_spec
from osiris_example_plugin.sequence.driver import SequenceDriver


def components() -> list[Component]:
    """The entry point: every component this package provides."""
    spec = (files("osiris_example_plugin.sequence") / "spec.yaml").read_text(encoding="utf-8")
    return [Component(spec=parse_spec(spec, origin="osiris_example_plugin/sequence/spec.yaml"),
                      driver=SequenceDriver)]
