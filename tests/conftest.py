"""Shared fixtures: a registry of the built-in components and a temporary project directory."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from osiris_core.registry import ComponentRegistry
from osiris_drivers.registry import default_registry

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def registry() -> ComponentRegistry:
    return default_registry(entry_points=False)


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A temporary working directory (relative paths in pipelines resolve here)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("OSIRIS_CONNECTIONS", raising=False)
    yield tmp_path
