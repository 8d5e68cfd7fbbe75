"""An explicit registry of components (spec + driver class), extensible through entry points."""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

from osiris_core.driver import Driver, driver_path
from osiris_core.errors import SpecError
from osiris_core.spec import ComponentSpec, parse_spec

ENTRY_POINT_GROUP = "osiris.components"
"""Third-party wheels register a callable here that returns an iterable of `Component`."""


@dataclass(frozen=True)
class Component:
    """A component: its spec and the driver class that implements it."""

    spec: ComponentSpec
    driver: type[Driver[Any]]

    @property
    def name(self) -> str:
        return self.spec.name

    def check_agreement(self) -> None:
        """Raise `SpecError` if the spec and the driver disagree on the driver path or the config keys."""
        actual_path = driver_path(self.driver)
        if self.spec.driver != actual_path:
            raise SpecError(
                f"component '{self.name}': spec names driver '{self.spec.driver}' but is registered with "
                f"'{actual_path}'",
                hint="make the spec's `driver` field match the registered class",
            )
        accepted = frozenset(f.alias or name for name, f in self.driver.config_model.model_fields.items())
        declared = self.spec.driver_keys
        if accepted != declared:
            parts = []
            if declared - accepted:
                parts.append(f"spec declares {sorted(declared - accepted)} that the driver does not accept")
            if accepted - declared:
                parts.append(f"driver accepts {sorted(accepted - declared)} that the spec does not declare")
            raise SpecError(
                f"component '{self.name}': " + "; ".join(parts),
                hint="keep the spec's config properties and connection fields equal to the driver's config model",
            )


ComponentLoader = Callable[[], Component]
"""Loads one component when it is first needed: parses its spec and imports its driver."""


class ComponentRegistry:
    """Name → component. One instance is built by the caller (CLI, worker) and handed to the engine.

    A component may be registered by name only (`deferred`): its spec is parsed and its driver imported the first
    time it is asked for, so a run loads only the components it uses (iterating the registry loads them all).
    """

    def __init__(self, components: Iterable[Component] = (), *,
                 deferred: Mapping[str, ComponentLoader] | None = None) -> None:
        self._components: dict[str, Component] = {}
        self._deferred: dict[str, ComponentLoader] = {}
        for component in components:
            self.add(component)
        for name, load in (deferred or {}).items():
            self.defer(name, load)

    def _refuse_twice(self, name: str) -> None:
        if name in self:
            raise SpecError(
                f"component '{name}' is registered twice",
                hint="uninstall one of the packages that provide it",
            )

    def add(self, component: Component) -> None:
        self._refuse_twice(component.name)
        self._components[component.name] = component

    def defer(self, name: str, load: ComponentLoader) -> None:
        """Register `name`, loaded by `load` when first needed (which must return the component of that name)."""
        self._refuse_twice(name)
        self._deferred[name] = load

    def _loaded(self, name: str) -> Component:
        component = self._components.get(name)
        if component is None:
            component = self._deferred[name]()
            if component.name != name:
                raise SpecError(f"component '{name}' loads a spec named '{component.name}'",
                                hint="register the component under the name its spec declares")
            self._components[name] = component
            del self._deferred[name]
        return component

    def get(self, name: str) -> Component:
        if name not in self:
            raise SpecError(f"unknown component '{name}'", hint=self.suggest(name))
        return self._loaded(name)

    def __contains__(self, name: object) -> bool:
        return name in self._components or name in self._deferred

    def __iter__(self) -> Iterator[Component]:
        return iter([self._loaded(name) for name in self.names()])

    def __len__(self) -> int:
        return len(self._components) + len(self._deferred)

    def names(self) -> list[str]:
        return sorted([*self._components, *self._deferred])

    def used_by(self, names: Iterable[str]) -> list[Component]:
        """The registered components among `names`, each once, by name; names not registered are left out."""
        return [self._loaded(name) for name in sorted(set(names)) if name in self]

    def suggest(self, name: str) -> str:
        close = difflib.get_close_matches(name, self.names(), n=1)
        if close:
            return f"did you mean '{close[0]}'? (`osiris components list` shows all)"
        return "`osiris components list` shows the available components"

    def load_entry_points(self, group: str = ENTRY_POINT_GROUP) -> None:
        """Add the components that installed distributions declare under `group`."""
        for entry_point in entry_points(group=group):
            try:
                provider = entry_point.load()
                provided = list(provider())
            except Exception as exc:
                raise SpecError(
                    f"entry point '{entry_point.name}' ({entry_point.value}) failed to load: {exc}",
                    hint="fix or uninstall the package that declares it",
                ) from None
            for component in provided:
                if not isinstance(component, Component):
                    raise SpecError(
                        f"entry point '{entry_point.name}' returned {type(component).__name__}, not a Component",
                        hint="return osiris_core.registry.Component instances",
                    )
                self.add(component)


def load_driver(path: str, *, origin: str) -> type[Driver[Any]]:
    """Import the driver class a spec names (`module:QualName`); a problem is a `SpecError` naming `origin`."""
    module_name, _, qualname = path.partition(":")
    try:
        found: object = importlib.import_module(module_name)
        for part in qualname.split("."):
            found = getattr(found, part)
    except Exception as exc:
        raise SpecError(f"{origin}: driver '{path}' cannot be imported: {type(exc).__name__}: {exc}",
                        hint="ship the driver's package with its spec") from None
    if not (isinstance(found, type) and issubclass(found, Driver)):
        raise SpecError(f"{origin}: '{path}' is not an osiris_core.driver.Driver subclass",
                        hint="point the spec's `driver` at the driver class")
    return found


def component_of(spec: ComponentSpec, *, origin: str) -> Component:
    """The component of a parsed spec: the driver it names imported and checked against it."""
    component = Component(spec=spec, driver=load_driver(spec.driver, origin=origin))
    component.check_agreement()
    return component


def load_component(spec_text: str, *, origin: str) -> Component:
    """A component from its spec file's text alone: the spec parsed, the driver it names imported and checked."""
    return component_of(parse_spec(spec_text, origin=origin), origin=origin)
