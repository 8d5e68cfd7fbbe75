"""The `osiris` command.

Public API: the names in `__all__` are what other libraries and users may import (from this package, or from
the module named in `_PUBLIC`); they are imported on first use, so importing the package is cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_PUBLIC: dict[str, str] = {
    "run": "osiris_cli.main",
}
"""Public name → the module that defines it."""

__all__ = [
    "run",
]


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
