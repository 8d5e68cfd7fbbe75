"""The privileges Supabase's Data API needs on what the writer creates.

PostgREST runs each request as the role of its key (`service_role` for the service key, `anon` for the anon
key) and, since Supabase's 2026 change, tables created in `public` are granted to no API role. So, in the same
transaction that creates them:

- the staging table (PostgREST data path): SELECT, INSERT, DELETE to the role of the writer's key;
- a target table the writer creates: USAGE on its schema and SELECT, INSERT, UPDATE, DELETE to `service_role`,
  so `supabase.extractor` (and anything else with the service key) reads it through PostgREST. `anon` and
  `authenticated` get nothing: the new table has no row-level security, so a grant to them would publish every
  row to whoever holds the (public) anon key. Grant them yourself together with RLS policies.

Roles that do not exist (plain PostgreSQL behind a self-hosted PostgREST) are skipped.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable
from dataclasses import dataclass

from osiris_drivers.postgres.dialect import POSTGRES, quote_literal

API_ROLES = ("anon", "authenticated", "service_role")
SERVICE_ROLE = "service_role"
ROLES_SQL = ("SELECT rolname FROM pg_roles WHERE rolname IN ("
             + ", ".join(quote_literal(r) for r in API_ROLES) + ") ORDER BY rolname")
"""Which of the API roles exist (`rolname` rows)."""


def key_role(key: str, *, service: bool) -> str:
    """The database role PostgREST runs a request with this key as: a JWT's `role` claim (Supabase's legacy
    keys), `service_role` for `sb_secret_…` keys, `anon` for `sb_publishable_…`; otherwise what the field says
    (`service`: it came from service_role_key)."""
    if key.startswith("sb_secret_"):
        return SERVICE_ROLE
    if key.startswith("sb_publishable_"):
        return "anon"
    parts = key.split(".")
    if len(parts) == 3:
        try:
            claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
        except (ValueError, binascii.Error):
            claims = None
        role = claims.get("role") if isinstance(claims, dict) else None
        if isinstance(role, str) and role:
            return role
    return SERVICE_ROLE if service else "anon"


@dataclass(frozen=True)
class Grants:
    """GRANT statements for the roles that exist in this database."""

    existing: frozenset[str]
    """The API roles present (from `ROLES_SQL`)."""
    key_role: str
    """The role the writer's PostgREST requests run as."""

    @classmethod
    def from_rows(cls, rows: Iterable[object], key_role: str) -> Grants:
        return cls(frozenset(str(r) for r in rows), key_role)

    def stage_sql(self, stage: str) -> list[str]:
        """What the key's role needs to insert batches into `stage` (quoted) and delete a retried batch."""
        if self.key_role not in self.existing:
            return []
        return [f"GRANT SELECT, INSERT, DELETE ON {stage} TO {POSTGRES.quote_ident(self.key_role)}"]

    def created_sql(self, schema: str, table: str) -> list[str]:
        """What `service_role` needs to read and write a table the writer created (`table` quoted)."""
        if SERVICE_ROLE not in self.existing:
            return []
        role = POSTGRES.quote_ident(SERVICE_ROLE)
        return [f"GRANT USAGE ON SCHEMA {POSTGRES.quote_ident(schema)} TO {role}",
                f"GRANT SELECT, INSERT, UPDATE, DELETE ON {table} TO {role}"]

    def private_sql(self, table: str) -> list[str]:
        """Keep `table` (quoted) away from the public API roles, whatever the schema's default privileges."""
        public = [POSTGRES.quote_ident(r) for r in ("anon", "authenticated") if r in self.existing]
        return [f"REVOKE ALL ON {table} FROM {', '.join(public)}"] if public else []
