"""The explicit registry of built-in components and connection families; installed wheels add components through
entry points.

Everything is listed by `module:Class` path and imported when first needed: a run imports only the drivers (and
their clients) its steps use, and `osiris --help` none.
"""

from __future__ import annotations

import importlib
from functools import partial
from typing import TYPE_CHECKING, Any

from osiris_core.registry import ComponentRegistry
from osiris_drivers.spec_loader import component_for

if TYPE_CHECKING:
    from osiris_core.driver import Driver
    from osiris_core.registry import Component
    from osiris_drivers.catalog import FamilyCatalog
    from osiris_drivers.connection import ConnectionSettings

BUILTIN_DRIVERS: tuple[str, ...] = (
    "osiris_drivers.filesystem.csv_extractor.driver:CsvExtractor",
    "osiris_drivers.filesystem.csv_writer.driver:CsvWriter",
    "osiris_drivers.duckdb.processor.driver:DuckDBProcessor",
    "osiris_drivers.duckdb.writer.driver:DuckDBWriter",
    "osiris_drivers.mysql.extractor.driver:MySQLExtractor",
    "osiris_drivers.mysql.writer.driver:MySQLWriter",
    "osiris_drivers.postgres.extractor.driver:PostgresExtractor",
    "osiris_drivers.postgres.writer.driver:PostgresWriter",
    "osiris_drivers.supabase.extractor.driver:SupabaseExtractor",
    "osiris_drivers.supabase.writer.driver:SupabaseWriter",
)
"""Each built-in component's driver class; the component is named after its folder (`<family>.<component>`) and
its spec is the `spec.yaml` beside the driver module."""

BUILTIN_FAMILIES: tuple[str, ...] = (
    "osiris_drivers.duckdb.connection:DuckDBSettings",
    "osiris_drivers.filesystem.connection:FileSettings",
    "osiris_drivers.mysql.connection:MySQLSettings",
    "osiris_drivers.postgres.connection:PostgresSettings",
    "osiris_drivers.supabase.connection:SupabaseSettings",
)
"""Each family's settings class: its fields, its doctor check and its error translation."""

BUILTIN_CATALOGS: tuple[str, ...] = (
    "osiris_drivers.duckdb.discover:DuckDBCatalog",
    "osiris_drivers.filesystem.discover:FileCatalog",
    "osiris_drivers.mysql.discover:MySQLCatalog",
    "osiris_drivers.postgres.discover:PostgresCatalog",
    "osiris_drivers.supabase.discover:SupabaseCatalog",
)
"""Each family's discovery and dry-run plans (`osiris_drivers.catalog`)."""


def _resolve(path: str) -> Any:
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


def component_name(path: str) -> str:
    """`osiris_drivers.mysql.extractor.driver:MySQLExtractor` → `mysql.extractor`."""
    return path.partition(":")[0].removeprefix("osiris_drivers.").rsplit(".", 1)[0]


def builtin_drivers() -> list[type[Driver[Any]]]:
    """The built-in driver classes (imports every driver)."""
    return [_resolve(path) for path in BUILTIN_DRIVERS]


def _load_builtin(path: str) -> Component:
    return component_for(_resolve(path))


def builtin_components() -> list[Component]:
    """Every built-in component, loaded (specs parsed, drivers imported)."""
    return [_load_builtin(path) for path in BUILTIN_DRIVERS]


def connection_families() -> dict[str, type[ConnectionSettings]]:
    """Family name (as in `@family.alias`) → its settings class."""
    families: list[type[ConnectionSettings]] = [_resolve(path) for path in BUILTIN_FAMILIES]
    return {family.family: family for family in families}


def family_catalogs() -> dict[str, FamilyCatalog[Any]]:
    """Family name → its catalog (`osiris discover`, `osiris run --dry-run`)."""
    catalogs: list[FamilyCatalog[Any]] = [_resolve(path)() for path in BUILTIN_CATALOGS]
    return {catalog.settings.family: catalog for catalog in catalogs}


def default_registry(*, entry_points: bool = True) -> ComponentRegistry:
    """Built-in components (each loaded when first used) plus, unless disabled, those installed wheels declare
    as entry points."""
    registry = ComponentRegistry(deferred={component_name(path): partial(_load_builtin, path)
                                           for path in BUILTIN_DRIVERS})
    if entry_points:
        registry.load_entry_points()
    return registry
