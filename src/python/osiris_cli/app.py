"""Shared CLI state: where logs and connections live, and the component registry."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from osiris_core.connections import Connections, find_connections_file
from osiris_core.registry import ComponentRegistry
from osiris_drivers.registry import default_registry


@dataclass(frozen=True)
class App:
    logs_dir: Path
    connections_path: Path | None
    json: bool
    verbose: bool

    @cached_property
    def _registry(self) -> ComponentRegistry:
        return default_registry()

    def registry(self) -> ComponentRegistry:
        """The installed components, loaded once per command (specs parsed, entry points read)."""
        return self._registry

    def connections(self, *near: Path) -> Connections:
        return Connections.load(find_connections_file(self.connections_path, search_dirs=near))
