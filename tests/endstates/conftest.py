"""Fixtures for the end-state tests that need MariaDB."""

from __future__ import annotations

from pathlib import Path

import pytest

from osiris_core.registry import ComponentRegistry
from tests.support.databases import MySQLDatabase
from tests.support.mysql_env import Env


@pytest.fixture
def env(registry: ComponentRegistry, project: Path, mysql_db: MySQLDatabase) -> Env:
    return Env(registry, project, mysql_db)
