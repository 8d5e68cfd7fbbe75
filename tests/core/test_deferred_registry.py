"""Components registered by name are loaded when first asked for, once, and must be what their name says."""

from __future__ import annotations

import pytest

from osiris_core.errors import SpecError
from osiris_core.registry import Component, ComponentRegistry
from tests.support.components import probe_component


class Loader:
    def __init__(self, component: Component) -> None:
        self.component = component
        self.calls = 0

    def __call__(self) -> Component:
        self.calls += 1
        return self.component


def test_a_deferred_component_loads_on_first_use_only_once() -> None:
    probe = probe_component()
    loader = Loader(probe)
    registry = ComponentRegistry(deferred={probe.name: loader})
    assert (probe.name in registry, len(registry), registry.names(), loader.calls) == (True, 1, [probe.name], 0)
    assert registry.get(probe.name) is probe
    assert registry.used_by([probe.name, "not.there"]) == [probe]
    assert list(registry) == [probe]
    assert loader.calls == 1


def test_unknown_and_twice_registered_names_are_refused() -> None:
    probe = probe_component()
    registry = ComponentRegistry(deferred={probe.name: Loader(probe)})
    with pytest.raises(SpecError, match="unknown component 'test.prob'"):
        registry.get("test.prob")
    with pytest.raises(SpecError, match="registered twice"):
        registry.add(probe)
    with pytest.raises(SpecError, match="registered twice"):
        registry.defer(probe.name, Loader(probe))


def test_a_loader_that_returns_another_component_is_an_error() -> None:
    registry = ComponentRegistry(deferred={"mysql.extractor": Loader(probe_component())})
    with pytest.raises(SpecError, match="component 'mysql.extractor' loads a spec named"):
        registry.get("mysql.extractor")


def test_the_builtin_registry_names_each_component_as_its_spec_does() -> None:
    """The names the registry knows before loading anything are the names the specs declare."""
    from osiris_drivers.registry import builtin_components, default_registry

    registry = default_registry(entry_points=False)
    assert registry.names() == sorted(c.name for c in builtin_components())
    assert [c.name for c in registry] == registry.names()
