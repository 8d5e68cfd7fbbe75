"""What a Supabase project puts around PostgREST, for the test servers: the API roles and their grants, the API
keys (HS256 JWTs whose `role` claim picks the database role, or opaque secret keys), and the gateway's (Kong's)
error bodies, which carry no PostgREST `code`.

Grants follow Supabase's default since 2026: tables in `public` are no longer granted to the API roles when they
are created (`explicit`); `legacy` is the old default (every table of an exposed schema granted to all three).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
from collections.abc import Mapping, Sequence
from typing import Any, Final, Literal

import psycopg
from psycopg import sql

API_ROLES: Final = ("anon", "authenticated", "service_role")
"""The database roles PostgREST switches to (`SET ROLE`) by the key's `role` claim."""
Grants = Literal["explicit", "legacy"]

GATEWAY_BODIES: Final[Mapping[int, str]] = {
    429: "API rate limit exceeded",
    502: "An invalid response was received from the upstream server",
    503: "failure to get a peer from the ring-balancer",
    504: "The upstream server is timing out",
}
"""What Kong answers when PostgREST or pg-meta is not the one answering: `{"message": …}`, no code."""
NO_ROUTE: Final = "no Route matched with those values"
"""Kong's 404 for a path it does not route (hosted Supabase has no `/pg/` route)."""


def gateway_body(status: int) -> dict[str, str]:
    return {"message": GATEWAY_BODIES.get(status, "An unexpected error occurred")}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign_jwt(secret: str, claims: Mapping[str, Any]) -> str:
    """An HS256 JWT, as Supabase signs its anon and service_role keys."""
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    payload = _b64(json.dumps(dict(claims), separators=(",", ":")).encode())
    signature = hmac.new(secret.encode(), f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{_b64(signature)}"


def jwt_claims(token: str, secret: str) -> dict[str, Any] | None:
    """The claims of an HS256 JWT signed with `secret`; None for anything else."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    expected = hmac.new(secret.encode(), f"{parts[0]}.{parts[1]}".encode(), hashlib.sha256).digest()
    try:
        if not hmac.compare_digest(expected, _unb64(parts[2])):
            return None
        header, claims = json.loads(_unb64(parts[0])), json.loads(_unb64(parts[1]))
    except ValueError:
        return None
    if not isinstance(header, dict) or header.get("alg") != "HS256" or not isinstance(claims, dict):
        return None
    return claims


def ensure_api_roles(conn: psycopg.Connection[Any]) -> None:
    """Create `anon`, `authenticated` and `service_role` (NOLOGIN; service_role bypasses RLS) if missing.

    Roles belong to the cluster, which test processes share: a role another process creates meanwhile is fine.
    """
    for role in API_ROLES:
        options = " BYPASSRLS" if role == "service_role" else ""
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role]).fetchone()
        if exists:
            continue
        # created concurrently by another test process: fine
        with contextlib.suppress(psycopg.errors.DuplicateObject, psycopg.errors.UniqueViolation,
                                 psycopg.errors.InternalError_):
            conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN" + options).format(sql.Identifier(role)))


def apply_grants(conn: psycopg.Connection[Any], schemas: Sequence[str], grants: Grants) -> None:
    """Supabase's grants for the exposed `schemas` (`USAGE` on `public` is PostgreSQL's own default)."""
    if grants != "legacy":
        return
    roles = sql.SQL(", ").join(map(sql.Identifier, API_ROLES))
    for schema in schemas:
        if not conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", [schema]).fetchone():
            continue
        ident = sql.Identifier(schema)
        conn.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(ident, roles))
        conn.execute(sql.SQL("GRANT ALL ON ALL TABLES IN SCHEMA {} TO {}").format(ident, roles))
        conn.execute(sql.SQL("ALTER DEFAULT PRIVILEGES IN SCHEMA {} GRANT ALL ON TABLES TO {}").format(ident, roles))
