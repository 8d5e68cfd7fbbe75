"""`osiris connections doctor`: one real round trip per connection, with a masked, actionable verdict."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from osiris_core.errors import ConnectionConfigError, OsirisError
from osiris_core.masking import Masker, masked_logging

Check = Callable[[Mapping[str, Any]], str]


@dataclass(frozen=True)
class Verdict:
    reference: str
    ok: bool
    message: str


def _check_mysql(fields: Mapping[str, Any]) -> str:
    from osiris_drivers.mysql.connection import check_mysql

    return check_mysql(fields)


def _check_postgres(fields: Mapping[str, Any]) -> str:
    from pydantic import ValidationError

    from osiris_drivers.postgres.connection import PostgresConnectionFields, check_postgres

    try:
        settings = PostgresConnectionFields.model_validate({k: v for k, v in fields.items() if k != "default"})
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(p) for p in first["loc"])
        raise ConnectionConfigError(f"postgres connection field '{key}': {first['msg']}",
                                    hint="fields: host, port, database, user, password, sslmode, sslrootcert") \
            from None
    return check_postgres(settings.dsn)


def _check_supabase(fields: Mapping[str, Any]) -> str:
    """PostgREST (a read of a table that should not exist: 'unknown table' proves reach and auth), the DDL
    channel (`select 1` over HTTP SQL with the service role key), and pg_dsn when set."""
    from postgrest.exceptions import APIError

    from osiris_drivers.postgres.connection import check_postgres
    from osiris_drivers.postgres.ddl_channel import DdlError, HttpSqlChannel
    from osiris_drivers.supabase.connection import rest_client, sql_endpoint

    url = str(fields["url"])
    key = fields.get("service_role_key") or fields.get("anon_key")
    if not key:
        raise ConnectionError("no service_role_key or anon_key — add one to the connection")
    parts = []
    try:
        rest_client(url, str(key), "public").table("_osiris_doctor_probe").select("*").limit(1).execute()
        parts.append("PostgREST ok")
    except APIError as exc:
        if str(exc.code) in {"PGRST205", "42P01"}:
            parts.append("PostgREST ok")
        else:
            raise ConnectionError(f"PostgREST answered {exc.code}: {exc.message} — check url and key") from None
    if fields.get("service_role_key"):
        try:
            HttpSqlChannel(sql_endpoint(url, fields.get("sql_url")), str(fields["service_role_key"])).run(
                "select 1 as ok")
            parts.append("HTTP SQL ok")
        except DdlError as exc:
            parts.append(f"HTTP SQL unavailable ({exc}); DDL needs pg_dsn")
    if fields.get("pg_dsn"):
        parts.append("pg_dsn: " + check_postgres(str(fields["pg_dsn"])))
    return "; ".join(parts)


CHECKS: dict[str, Check] = {"mysql": _check_mysql, "postgres": _check_postgres, "supabase": _check_supabase}
"""Connection family → its check. Families without one are reported as not checkable."""


def check_connection(reference: str, family: str, fields: Mapping[str, Any]) -> Verdict:
    """Run the family's check; its verdict, and anything a library logs meanwhile, masked with the connection's
    secrets (secret-named fields whole, credentials inside any URL-valued field)."""
    check = CHECKS.get(family)
    if check is None:
        return Verdict(reference, False, f"no check for family '{family}' (known: {sorted(CHECKS)})")
    masker = Masker()
    masker.add_connection_fields(fields)
    with masked_logging(masker):
        try:
            return Verdict(reference, True, masker.mask(check(fields)))
        except OsirisError as exc:
            return Verdict(reference, False, masker.mask(exc.render()))
        except ConnectionError as exc:
            return Verdict(reference, False, masker.mask(" ".join(str(exc).split())))
        except Exception as exc:
            return Verdict(reference, False, masker.mask(" ".join(f"{type(exc).__name__}: {exc}".split())))
