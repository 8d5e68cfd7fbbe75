"""Fixtures of the incremental tests: a project on the session's private PostgreSQL and MariaDB databases."""

from __future__ import annotations

from pathlib import Path

import pytest

from osiris_core.registry import ComponentRegistry
from tests.incremental.support import Project
from tests.support.databases import MySQLDatabase, PostgresDatabase


@pytest.fixture
def proj(registry: ComponentRegistry, project: Path, pg_db: PostgresDatabase, mysql_db: MySQLDatabase) -> Project:
    return Project(registry, project, pg_db, mysql_db)
