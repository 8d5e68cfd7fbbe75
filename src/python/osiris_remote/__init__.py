"""Osiris remote execution: the driver bundle, the sandbox executor and backends, the local sandbox
server, and the worker that runs inside the sandbox.

Public API: the names in `__all__` are what other libraries and users may import (from this package, or from
the module named in `_PUBLIC`); they are imported on first use, so importing the package is cheap.
"""

from __future__ import annotations

from osiris_core.public_api import lazy_attributes

__version__ = "0.1.0"

_PUBLIC: dict[str, str] = {
    "BACKENDS": "osiris_remote.backends",
    "SandboxOptions": "osiris_remote.backends",
    "MAX_LIFETIME_S": "osiris_remote.backends.e2b",
    "check_sandbox_env": "osiris_remote.bootstrap",
    "Bundle": "osiris_remote.bundle",
    "bundle_for": "osiris_remote.bundle",
    "load_bundle": "osiris_remote.bundle",
    "ship": "osiris_remote.bundle",
    "Shipment": "osiris_remote.bundle",
    "SandboxExecutor": "osiris_remote.proxy",
    "serve": "osiris_remote.sandbox_server",
}
"""Public name → the module that defines it."""

__all__ = [
    "BACKENDS",
    "Bundle",
    "MAX_LIFETIME_S",
    "SandboxExecutor",
    "SandboxOptions",
    "Shipment",
    "bundle_for",
    "check_sandbox_env",
    "load_bundle",
    "serve",
    "ship",
]


__getattr__ = lazy_attributes(__name__, _PUBLIC)
