"""The last guard on what the CLI's reports and the MCP server hand out: every known secret value is masked."""

from __future__ import annotations

from typing import Any

from osiris_core.connections import ConnectionRef, Connections
from osiris_core.errors import OsirisError
from osiris_core.masking import Masker
from osiris_core.registry import ComponentRegistry
from osiris_core.run_session import registry_masker


def secrets_masker(registry: ComponentRegistry, connections: Connections) -> Masker:
    """A masker that knows the components' secret fields and the secret values of every connection that
    resolves in this environment (one that does not resolve contributes nothing: its values are unknown)."""
    masker = registry_masker(registry)
    for family, aliases in connections.families().items():
        secret_keys = {key for c in registry if c.spec.connection and c.spec.connection.family == family
                       for key in c.spec.secrets}
        for alias in aliases:
            try:
                fields = connections.resolve(ConnectionRef(family, alias))
            except OsirisError:
                continue
            masker.add_connection_fields(fields, secret_keys)
    return masker


def mask_strings(masker: Masker, value: Any) -> Any:
    """A copy of `value` with every string masked (known secret values, URL credentials); keys are kept, so
    a step or property that happens to be called `password` stays readable."""
    if isinstance(value, dict):
        return {key: mask_strings(masker, item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [mask_strings(masker, item) for item in value]
    if isinstance(value, str):
        return masker.mask(value)
    return value
