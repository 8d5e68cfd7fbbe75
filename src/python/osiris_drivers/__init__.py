"""Osiris components: one folder per connection family (`connection.py`, then one subfolder per
component with its `spec.yaml` and `driver.py`), the shared SQL core, and the explicit registry.

Public API: the names in `__all__` are what other libraries and users may import (from this package, or from
the module named in `_PUBLIC`); they are imported on first use, so importing the package is cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_PUBLIC: dict[str, str] = {
    "ConnectionSettings": "osiris_drivers.connection",
    "Verdict": "osiris_drivers.doctor",
    "check_connection": "osiris_drivers.doctor",
    "BUILTIN_DRIVERS": "osiris_drivers.registry",
    "builtin_components": "osiris_drivers.registry",
    "connection_families": "osiris_drivers.registry",
    "default_registry": "osiris_drivers.registry",
}
"""Public name → the module that defines it."""

__all__ = [
    "BUILTIN_DRIVERS",
    "ConnectionSettings",
    "Verdict",
    "builtin_components",
    "check_connection",
    "connection_families",
    "default_registry",
]


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
