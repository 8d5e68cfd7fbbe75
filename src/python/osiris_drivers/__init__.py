"""Osiris components: one folder per connection family (`connection.py`, then one subfolder per
component with its `spec.yaml` and `driver.py`), the shared SQL core, and the explicit registry.

Public API: the names in `__all__` are what other libraries and users may import (from this package, or from
the module named in `_PUBLIC`); they are imported on first use, so importing the package is cheap.
"""

from __future__ import annotations

from osiris_core.public_api import lazy_attributes

__version__ = "0.1.0"

_PUBLIC: dict[str, str] = {
    "Catalog": "osiris_drivers.catalog",
    "FamilyCatalog": "osiris_drivers.catalog",
    "Relation": "osiris_drivers.catalog",
    "ConnectionSettings": "osiris_drivers.connection",
    "discover_connection": "osiris_drivers.discovery",
    "Verdict": "osiris_drivers.doctor",
    "check_connection": "osiris_drivers.doctor",
    "plan_step": "osiris_drivers.dry_run",
    "BUILTIN_DRIVERS": "osiris_drivers.registry",
    "builtin_components": "osiris_drivers.registry",
    "connection_families": "osiris_drivers.registry",
    "default_registry": "osiris_drivers.registry",
    "family_catalogs": "osiris_drivers.registry",
}
"""Public name → the module that defines it."""

__all__ = [
    "BUILTIN_DRIVERS",
    "Catalog",
    "ConnectionSettings",
    "FamilyCatalog",
    "Relation",
    "Verdict",
    "builtin_components",
    "check_connection",
    "connection_families",
    "default_registry",
    "discover_connection",
    "family_catalogs",
    "plan_step",
]


__getattr__ = lazy_attributes(__name__, _PUBLIC)
