"""The explicit registry of built-in components and connection families; installed wheels add components through
entry points."""

from __future__ import annotations

from typing import Any

from osiris_core.driver import Driver
from osiris_core.registry import Component, ComponentRegistry
from osiris_drivers.catalog import FamilyCatalog
from osiris_drivers.connection import ConnectionSettings
from osiris_drivers.duckdb.connection import DuckDBSettings
from osiris_drivers.duckdb.discover import DuckDBCatalog
from osiris_drivers.duckdb.processor.driver import DuckDBProcessor
from osiris_drivers.duckdb.writer.driver import DuckDBWriter
from osiris_drivers.filesystem.connection import FileSettings
from osiris_drivers.filesystem.csv_extractor.driver import CsvExtractor
from osiris_drivers.filesystem.csv_writer.driver import CsvWriter
from osiris_drivers.filesystem.discover import FileCatalog
from osiris_drivers.mysql.connection import MySQLSettings
from osiris_drivers.mysql.discover import MySQLCatalog
from osiris_drivers.mysql.extractor.driver import MySQLExtractor
from osiris_drivers.mysql.writer.driver import MySQLWriter
from osiris_drivers.postgres.connection import PostgresSettings
from osiris_drivers.postgres.discover import PostgresCatalog
from osiris_drivers.postgres.extractor.driver import PostgresExtractor
from osiris_drivers.postgres.writer.driver import PostgresWriter
from osiris_drivers.spec_loader import component_for
from osiris_drivers.supabase.connection import SupabaseSettings
from osiris_drivers.supabase.discover import SupabaseCatalog
from osiris_drivers.supabase.extractor.driver import SupabaseExtractor
from osiris_drivers.supabase.writer.driver import SupabaseWriter

BUILTIN_DRIVERS: tuple[type[Driver[Any]], ...] = (
    CsvExtractor,
    CsvWriter,
    DuckDBProcessor,
    DuckDBWriter,
    MySQLExtractor,
    MySQLWriter,
    PostgresExtractor,
    PostgresWriter,
    SupabaseExtractor,
    SupabaseWriter,
)

BUILTIN_FAMILIES: tuple[type[ConnectionSettings], ...] = (
    DuckDBSettings,
    FileSettings,
    MySQLSettings,
    PostgresSettings,
    SupabaseSettings,
)
"""Each family's settings class: its fields, its doctor check and its error translation."""

BUILTIN_CATALOGS: tuple[FamilyCatalog[Any], ...] = (
    DuckDBCatalog(),
    FileCatalog(),
    MySQLCatalog(),
    PostgresCatalog(),
    SupabaseCatalog(),
)
"""Each family's discovery and dry-run plans (`osiris_drivers.catalog`)."""


def builtin_components() -> list[Component]:
    return [component_for(driver) for driver in BUILTIN_DRIVERS]


def connection_families() -> dict[str, type[ConnectionSettings]]:
    """Family name (as in `@family.alias`) → its settings class."""
    return {family.family: family for family in BUILTIN_FAMILIES}


def family_catalogs() -> dict[str, FamilyCatalog[Any]]:
    """Family name → its catalog (`osiris discover`, `osiris run --dry-run`)."""
    return {catalog.settings.family: catalog for catalog in BUILTIN_CATALOGS}


def default_registry(*, entry_points: bool = True) -> ComponentRegistry:
    """Built-in components plus, unless disabled, those installed wheels declare as entry points."""
    registry = ComponentRegistry(builtin_components())
    if entry_points:
        registry.load_entry_points()
    return registry
