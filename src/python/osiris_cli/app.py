"""Shared CLI state: where logs and connections live, and the component registry.

Light on purpose: the registry, the connections file and their libraries are imported when a command first asks
for them, so `osiris --help` and `--version` load no driver, pyarrow, DuckDB or pydantic.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from osiris_core.connections import Connections
    from osiris_core.registry import ComponentRegistry


def default_registry() -> ComponentRegistry:
    """The built-in components plus those installed wheels declare (`osiris_drivers.registry.default_registry`)."""
    from osiris_drivers.registry import default_registry as load

    return load()


@dataclass(frozen=True)
class App:
    logs_dir: Path
    connections_path: Path | None
    json: bool
    verbose: bool
    owns_process: bool = False
    """The command is the process (`osiris` on a shell), not a call of `main` inside another program: once a run's
    card is printed, late SIGINT/SIGTERM are ignored so the exit code stays the run's."""

    @cached_property
    def _registry(self) -> ComponentRegistry:
        return default_registry()

    def registry(self) -> ComponentRegistry:
        """The installed components, loaded once per command (specs parsed, entry points read)."""
        return self._registry

    def connections(self, *near: Path) -> Connections:
        from osiris_core.connections import Connections, find_connections_file

        return Connections.load(find_connections_file(self.connections_path, search_dirs=near))
