"""Fixtures for the driver tests that need MariaDB."""

from __future__ import annotations

from pathlib import Path

import pytest

from osiris_core.registry import ComponentRegistry
from tests.support.databases import MySQLDatabase
from tests.support.mysql_env import Env, build_registry


@pytest.fixture(scope="module")
def mysql_registry() -> ComponentRegistry:
    return build_registry()


@pytest.fixture
def env(mysql_registry: ComponentRegistry, project: Path, mysql_db: MySQLDatabase) -> Env:
    return Env(mysql_registry, project, mysql_db)
