"""PostgreSQL connections: DSNs no field can inject parameters into, and TLS modes honoured or refused clearly
(against the real PostgreSQL, which runs without TLS here)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg2.extensions
import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from osiris_core.connections import Connections
from osiris_core.registry import ComponentRegistry
from osiris_drivers.doctor import check_connection
from osiris_drivers.postgres.connection import (
    PostgresSettings,
    TlsUnsupported,
    connectorx_url,
    dsn_from_fields,
)
from tests.support.databases import PostgresDatabase
from tests.support.runs import assert_succeeded, failed_error, run_pipeline

HOSTILE = ["h sslmode=disable", "h/db?sslmode=disable&application_name=", "x' sslmode='disable", "a@b:1/c#d",
           "back\\slash 'quote' \"dq\"", "percent%20and%2F", "ünï cødé", "=", "&", "?", "#"]


@pytest.mark.parametrize("value", HOSTILE)
def test_no_field_can_add_or_override_a_libpq_parameter(value: str) -> None:
    """Every field is percent-encoded: libpq reads back exactly the fields, and the sslmode configured."""
    dsn = dsn_from_fields(host=value, port=5432, database=value, user=value, password=value, sslmode="verify-full",
                          sslrootcert=value)
    assert psycopg2.extensions.parse_dsn(dsn) == {
        "host": value, "port": "5432", "dbname": value, "user": value, "password": value, "sslmode": "verify-full",
        "sslrootcert": value}


@given(st.text(min_size=1, max_size=30).filter(lambda s: "\x00" not in s))
def test_any_user_password_and_database_round_trip(value: str) -> None:
    dsn = dsn_from_fields(host="db.internal", port=6543, database=value, user=value, password=value,
                          sslmode="require")
    parsed = psycopg2.extensions.parse_dsn(dsn)
    assert (parsed["user"], parsed["password"], parsed["dbname"], parsed["sslmode"]) == (value, value, value,
                                                                                         "require")


@pytest.mark.parametrize("host", ["h sslmode=disable", "h/db?sslmode=disable", "h:5433", "h#x", "u@h", "", "h\n"])
def test_a_host_field_that_is_not_a_host_is_refused(host: str) -> None:
    with pytest.raises(ValidationError, match="host"):
        PostgresSettings.model_validate({"host": host, "database": "d", "user": "u"})


@pytest.mark.parametrize("host", ["db.internal", "10.0.0.7", "::1", "fe80::1%eth0", "/var/run/postgresql"])
def test_host_names_addresses_and_socket_directories_are_accepted(host: str) -> None:
    fields = PostgresSettings.model_validate({"host": host, "database": "d", "user": "u"})
    assert psycopg2.extensions.parse_dsn(fields.dsn)["host"] == host


def test_connectorx_gets_the_tls_mode_it_can_honour() -> None:
    base = "postgresql://u:p%40w@h:5432/d"
    assert connectorx_url(f"{base}?sslmode=verify-ca&sslrootcert=%2Fca.pem") == \
        f"{base}?sslmode=require&sslrootcert=%2Fca.pem"
    assert connectorx_url(f"{base}?sslmode=allow") == f"{base}?sslmode=prefer"
    assert connectorx_url(f"{base}?sslmode=require") == f"{base}?sslmode=require"
    with pytest.raises(TlsUnsupported, match="host name"):
        connectorx_url(f"{base}?sslmode=verify-full&sslrootcert=%2Fca.pem")
    with pytest.raises(TlsUnsupported, match="needs sslrootcert"):
        connectorx_url(f"{base}?sslmode=verify-ca")


def write_connection(project: Path, pg_db: PostgresDatabase, **tls: Any) -> Connections:
    path = project / "osiris_connections.yaml"
    fields = {"host": pg_db.host, "port": pg_db.port, "database": pg_db.database, "user": pg_db.user, **tls}
    path.write_text(yaml.safe_dump({"connections": {"postgres": {"main": fields}}}), encoding="utf-8")
    return Connections.load(path)


def pipeline(table: str) -> list[dict[str, Any]]:
    return [
        {"id": "gen", "component": "duckdb.processor", "mode": "transform",
         "config": {"query": "SELECT * FROM (VALUES (1, 'a'), (2, 'b')) AS t(id, name)"}},
        {"id": "write", "component": "postgres.writer", "mode": "write", "needs": ["gen"],
         "config": {"connection": "@postgres.main", "table": table, "create_if_missing": True,
                    "write_mode": "replace"}},
    ]


def server_has_tls(pg_db: PostgresDatabase) -> bool:
    with pg_db.connect() as connection, connection.cursor() as cursor:
        cursor.execute("SHOW ssl")
        row = cursor.fetchone()
    return bool(row and row[0] == "on")


def test_tls_required_against_a_server_without_tls_fails_with_a_clear_error(
        project: Path, registry: ComponentRegistry, pg_db: PostgresDatabase) -> None:
    tls = server_has_tls(pg_db)
    run = run_pipeline(registry, project, pipeline("tls_target"),
                       connections=write_connection(project, pg_db, sslmode="require"))
    verdict = check_connection("@postgres.main", "postgres", {"host": pg_db.host, "port": pg_db.port,
                                                                "database": pg_db.database, "user": pg_db.user,
                                                                "sslmode": "require"})
    if tls:  # a server with TLS: require works
        assert_succeeded(run)
        return
    error = failed_error(run, "write")
    assert "server does not support SSL, but SSL was required" in error and "enable ssl on it" in error
    assert not verdict.ok and "does not support SSL" in verdict.message
    plain = run_pipeline(registry, project, pipeline("tls_target"),
                         connections=write_connection(project, pg_db, sslmode="disable"), name="plain")
    assert_succeeded(plain)


@pytest.mark.parametrize(("tls", "message"), [
    ({"sslmode": "verify-full", "sslrootcert": "/nonexistent/ca.pem"}, "cannot check the server's host name"),
    ({"sslmode": "verify-ca"}, "verify-ca needs sslrootcert"),
])
def test_the_extractor_refuses_tls_modes_its_row_stream_cannot_honour(
        project: Path, registry: ComponentRegistry, pg_db: PostgresDatabase, tls: dict[str, str],
        message: str) -> None:
    run = run_pipeline(registry, project, [
        {"id": "read", "component": "postgres.extractor", "mode": "read",
         "config": {"connection": "@postgres.main", "query": "SELECT 1 AS x"}}],
        connections=write_connection(project, pg_db, **tls))
    assert message in failed_error(run, "read")


def test_an_injected_host_stops_the_run_before_any_connection(
        project: Path, registry: ComponentRegistry, pg_db: PostgresDatabase) -> None:
    write_connection(project, pg_db, sslmode="verify-full")
    path = project / "osiris_connections.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data["connections"]["postgres"]["main"]["host"] = f"{pg_db.host} sslmode=disable"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    run = run_pipeline(registry, project, pipeline("t"), connections=Connections.load(path))
    assert run.exit_code == 2
    error = next(card.error for card in run.card.steps if card.step_id == "write")
    assert error is not None and "config 'host'" in error and "is not a host name" in error
