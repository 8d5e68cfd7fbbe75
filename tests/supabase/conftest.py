"""Fixtures for the Supabase components: the PostgREST-compatible test server on the real PostgreSQL, as strict
as a Supabase project (requests run as the key's role with real grants, asynchronous schema reloads, max-rows,
statement timeouts)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.databases import PostgresDatabase
from tests.support.postgrest_server import PostgrestServer
from tests.support.supabase_platform import sign_jwt

JWT_SECRET = "test-jwt-secret-with-at-least-32-characters"
SERVICE_KEY = sign_jwt(JWT_SECRET, {"iss": "supabase", "ref": "osiristest", "role": "service_role"})
"""A service_role key as Supabase issues them (an HS256 JWT whose `role` claim PostgREST switches to)."""
ANON_KEY = sign_jwt(JWT_SECRET, {"iss": "supabase", "ref": "osiristest", "role": "anon"})


@pytest.fixture(scope="module")
def postgrest(pg_db: PostgresDatabase) -> Iterator[PostgrestServer]:
    server = PostgrestServer(pg_db.dsn, jwt_secret=JWT_SECRET)
    try:
        yield server
    finally:
        server.stop()
