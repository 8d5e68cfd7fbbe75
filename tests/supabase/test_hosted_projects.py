"""Hosted Supabase has no HTTP SQL endpoint: a hosted-shaped connection without pg_dsn (or sql_url) is refused
before the writer reads anything, and the doctor says what to add; a gateway without the endpoint (404 "no Route
matched") is explained the same way, never retried or reported as a bad key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from osiris_core.connections import Connections
from osiris_core.errors import ConnectionConfigError
from osiris_core.registry import ComponentRegistry
from osiris_drivers.doctor import check_connection
from tests.supabase.conftest import JWT_SECRET, SERVICE_KEY
from tests.supabase.pipelines import SAMPLE, pipeline, run, stage_tables
from tests.support.databases import PostgresDatabase
from tests.support.postgrest_server import PostgrestServer

HOSTED = "https://abcdefghijklmnopqrst.supabase.co"
POOLER = ("postgresql://postgres.abcdefghijklmnopqrst:<database password>@aws-0-<region>.pooler.supabase.com:5432"
          "/postgres")


def connections(project: Path, **fields: Any) -> Connections:
    path = project / "osiris_connections.yaml"
    path.write_text(yaml.safe_dump({"connections": {"supabase": {"main": {**fields, "default": True}}}}),
                    encoding="utf-8")
    return Connections.load(path)


@pytest.mark.parametrize("ddl_channel", ["auto", "http_sql"])
def test_a_hosted_url_without_pg_dsn_is_refused_before_anything_is_sent(
        project: Path, registry: ComponentRegistry, ddl_channel: str) -> None:
    conns = connections(project, url=HOSTED, service_role_key=SERVICE_KEY)
    config = {"table": "t", "create_if_missing": True, "ddl_channel": ddl_channel}
    result = run(pipeline(project, "hosted", SAMPLE, config), registry, conns, project / "logs")
    assert result.exit_code == 2  # bad input, not a run failure: nothing was tried
    error = result.card.steps[-1].error or ""
    assert "hosted Supabase projects have no HTTP SQL endpoint" in error, error
    assert f"add pg_dsn: {POOLER}" in error and "session pooler" in error
    assert "cannot reach" not in error and "Name or service" not in error  # no request was made
    events = (result.session.path / "events.jsonl").read_text()
    assert "write_plan" not in events  # refused before the writer planned, let alone read its input


def test_a_hosted_url_with_pg_dsn_is_fine_for_the_writer_config(project: Path) -> None:
    from osiris_drivers.supabase.connection import SupabaseSettings

    settings = SupabaseSettings(url=HOSTED, service_role_key=SERVICE_KEY, pg_dsn="postgresql://x@h:5432/postgres")
    assert settings.ddl_choice("auto") == "psycopg2"
    with pytest.raises(ConnectionConfigError) as explicit:
        settings.ddl_choice("http_sql", "load")
    assert explicit.value.render().startswith(f"step 'load': supabase connection at {HOSTED[8:]}: ddl_channel "
                                              "http_sql needs sql_url: hosted Supabase projects have no HTTP SQL")
    assert explicit.value.hint == "use ddl_channel: auto (psycopg2 over pg_dsn)"
    assert SupabaseSettings(url=HOSTED, service_role_key=SERVICE_KEY,
                            sql_url="https://my-proxy.example/pg/query").ddl_choice("auto") == "http_sql"
    # Only a URL that is not a hosted project's defaults to <url>/pg/query (self-hosted and local projects).
    local = SupabaseSettings(url="http://localhost:54321", service_role_key=SERVICE_KEY)
    assert local.ddl_choice("auto") == "http_sql" and local.sql_endpoint() == "http://localhost:54321/pg/query"


def test_the_doctor_explains_what_a_hosted_project_needs_without_a_request() -> None:
    verdict = check_connection("@supabase.main", "supabase", {"url": HOSTED, "service_role_key": SERVICE_KEY})
    assert not verdict.ok
    assert "writing needs pg_dsn: hosted Supabase projects have no HTTP SQL endpoint" in verdict.message
    assert POOLER in verdict.message
    assert SERVICE_KEY not in verdict.message


@pytest.fixture
def hosted_like(pg_db: PostgresDatabase) -> Any:
    """A gateway that routes no /pg/ path, as hosted Supabase's does."""
    with PostgrestServer(pg_db.dsn, jwt_secret=JWT_SECRET, sql_enabled=False) as server:
        yield server


def test_a_gateway_without_the_sql_endpoint_is_a_clear_error_not_a_retry(
        project: Path, registry: ComponentRegistry, pg_db: PostgresDatabase, hosted_like: PostgrestServer) -> None:
    conns = connections(project, url=hosted_like.url, service_role_key=SERVICE_KEY)
    result = run(pipeline(project, "noroute", SAMPLE, {"table": "noroute", "create_if_missing": True}), registry,
                 conns, project / "logs")
    assert result.exit_code == 1
    error = result.card.steps[-1].error or ""
    assert f"no HTTP SQL endpoint at {hosted_like.url}/pg/query (HTTP 404: no Route matched" in error, error
    assert "add pg_dsn: postgresql://postgres.<project-ref>:" in error
    assert [r for r in hosted_like.requests if r[1] == "/pg/query"] == [("POST", "/pg/query")]  # asked once
    assert stage_tables(pg_db) == []


def test_the_doctor_checks_each_channel_and_names_the_one_auto_uses(
        pg_db: PostgresDatabase, hosted_like: PostgrestServer, postgrest: PostgrestServer) -> None:
    without = check_connection("@supabase.a", "supabase", {"url": hosted_like.url, "service_role_key": SERVICE_KEY})
    assert not without.ok
    assert "no HTTP SQL endpoint at" in without.message and "add pg_dsn" in without.message
    with_dsn = check_connection("@supabase.b", "supabase", {"url": hosted_like.url, "service_role_key": SERVICE_KEY,
                                                            "pg_dsn": pg_db.dsn})
    assert with_dsn.ok, with_dsn.message
    assert "HTTP SQL unavailable (no HTTP SQL endpoint" in with_dsn.message
    assert with_dsn.message.endswith("writers use psycopg2 over pg_dsn (ddl_channel: auto)")
    served = check_connection("@supabase.c", "supabase", {"url": postgrest.url, "service_role_key": SERVICE_KEY})
    assert served.ok, served.message
    assert served.message.endswith(f"HTTP SQL ok; writers use http_sql at {postgrest.url}/pg/query "
                                   "(ddl_channel: auto)")
