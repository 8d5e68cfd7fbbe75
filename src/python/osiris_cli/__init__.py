"""The `osiris` command.

Public API: the names in `__all__` are what other libraries and users may import (from this package, or from
the module named in `_PUBLIC`); they are imported on first use, so importing the package is cheap.
"""

from __future__ import annotations

from osiris_core.public_api import lazy_attributes

__version__ = "0.1.0"

_PUBLIC: dict[str, str] = {
    "run": "osiris_cli.main",
}
"""Public name → the module that defines it."""

__all__ = [
    "run",
]


__getattr__ = lazy_attributes(__name__, _PUBLIC)
