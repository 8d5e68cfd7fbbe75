"""Fixtures for the Supabase components: the PostgREST-compatible test server on the real PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.databases import PostgresDatabase
from tests.support.postgrest_server import PostgrestServer

SERVICE_KEY = "test-service-role-key"


@pytest.fixture(scope="module")
def postgrest(pg_db: PostgresDatabase) -> Iterator[PostgrestServer]:
    server = PostgrestServer(pg_db.dsn, api_key=SERVICE_KEY)
    try:
        yield server
    finally:
        server.stop()
