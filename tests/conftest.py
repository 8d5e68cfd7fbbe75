"""Shared fixtures: a registry of the built-in components and a temporary project directory."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from osiris_core.registry import ComponentRegistry
from osiris_drivers.registry import default_registry
from tests.support.databases import (
    MySQLDatabase,
    PostgresDatabase,
    ServerUnavailable,
    drop_mysql_database,
    drop_postgres_database,
    fresh_mysql_database,
    fresh_postgres_database,
)

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


@pytest.fixture(scope="session")
def mysql_db() -> Iterator[MySQLDatabase]:
    """An empty MariaDB database private to this test process, dropped at the end."""
    try:
        database = fresh_mysql_database()
    except ServerUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)
    yield database
    drop_mysql_database(database)


@pytest.fixture(scope="session")
def pg_db() -> Iterator[PostgresDatabase]:
    """An empty PostgreSQL database private to this test process, dropped at the end."""
    try:
        database = fresh_postgres_database()
    except ServerUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)
    yield database
    drop_postgres_database(database)
