"""Fixtures of the conformance suite: the resources every connector may use."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conformance.connectors import Resources
from tests.supabase.conftest import postgrest
from tests.support.databases import MySQLDatabase, PostgresDatabase

__all__ = ["postgrest"]


@pytest.fixture
def resources(pg_db: PostgresDatabase, mysql_db: MySQLDatabase, tmp_path: Path,
              request: pytest.FixtureRequest) -> Resources:
    return Resources(pg_db, mysql_db, tmp_path, request)
