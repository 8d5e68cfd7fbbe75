"""How each Osiris library's `__init__` serves its public API: names imported from their modules on first use.

Standard library only and Python 3.9-compatible: the Pants bundle plugin imports `osiris_remote` (and so this)
under Pants' own interpreter.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any


def lazy_attributes(package: str, public: Mapping[str, str]) -> Callable[[str], Any]:
    """A module `__getattr__` for `package`: `public` maps each name to the module that defines it; a resolved
    name is cached in the package so the next access costs nothing."""

    def resolve(name: str) -> Any:
        module = public.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        setattr(sys.modules[package], name, value)
        return value

    return resolve
