"""End to end: credentials inside a connection's URLs (a query-string token, a userinfo password) never reach
events, metrics, step configs, run cards or log records (httpx logs every request URL)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
import yaml

from osiris_core.connections import Connections
from osiris_core.registry import ComponentRegistry
from osiris_drivers.doctor import check_connection
from tests.supabase.conftest import SERVICE_KEY
from tests.supabase.pipelines import pipeline, run
from tests.support.mysql_env import free_port
from tests.support.postgrest_server import PostgrestServer

TOKEN = "qs-Token-5f9c2e71"
PASSWORD = "userinfo-Pw-80d1"
ROWS = [("eu", 1, "o1", "A", Decimal("1.50"), "2024-01-01 00:00:00")]


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def log_lines() -> Iterator[_Lines]:
    handler = _Lines()
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def session_text(project: Path) -> str:
    return "\n".join(p.read_text(encoding="utf-8", errors="replace")
                     for p in sorted((project / "logs").rglob("*")) if p.is_file())


@pytest.mark.parametrize(("userinfo", "sql_reachable"), [(False, True), (True, True), (False, False)],
                         ids=["succeeds", "userinfo-in-url", "sql-url-unreachable"])
def test_url_credentials_never_reach_events_cards_configs_or_logs(
        project: Path, registry: ComponentRegistry, postgrest: PostgrestServer, log_lines: _Lines,
        userinfo: bool, sql_reachable: bool) -> None:
    """`sql_url` carries a token in its query string; `url` may carry a password in its userinfo (httpx then
    sends it as Basic auth, which PostgREST refuses: the run fails, and httpx has logged the URL)."""
    sql_base = postgrest.sql_url if sql_reachable else f"http://127.0.0.1:{free_port()}/pg/query"
    url = postgrest.url.replace("http://", f"http://osiris:{PASSWORD}@") if userinfo else postgrest.url
    fields = {"url": url, "service_role_key": SERVICE_KEY, "sql_url": f"{sql_base}?apikey={TOKEN}&x=1",
              "default": True}
    path = project / "osiris_connections.yaml"
    path.write_text(yaml.safe_dump({"connections": {"supabase": {"main": fields}}}), encoding="utf-8")
    result = run(pipeline(project, "secrets", list(ROWS), {"table": "url_secrets", "create_if_missing": True,
                                                           "write_mode": "replace", "ddl_channel": "http_sql"}),
                 registry, Connections.load(path), project / "logs")
    written = session_text(project)
    logged = "\n".join(log_lines.lines)
    for secret in (TOKEN, PASSWORD, SERVICE_KEY):
        assert secret not in written, secret
        assert secret not in logged, secret
        assert secret not in str(result.card.model_dump()), secret
    assert "apikey=***&x=1" in written  # masked where it appears (the step's config), not dropped
    requests = [line for line in log_lines.lines if line.startswith("HTTP Request: ")]
    if not sql_reachable:
        assert result.card.status == "failed"
        error = result.card.error or ""
        assert "cannot reach http://127.0.0.1" in error and "apikey=***" in error
    elif userinfo:
        assert result.card.status == "failed" and "Invalid API key" in (result.card.error or "")
        assert requests and all("osiris:***@" in line for line in requests)
    else:
        assert result.card.status == "succeeded" and requests


def test_the_doctor_masks_url_credentials_in_verdicts_and_logs(postgrest: PostgrestServer, log_lines: _Lines) -> None:
    fields = {"url": postgrest.url.replace("http://", f"http://osiris:{PASSWORD}@"), "service_role_key": SERVICE_KEY,
              "sql_url": f"http://127.0.0.1:{free_port()}/pg/query?apikey={TOKEN}"}
    verdict = check_connection("@supabase.main", "supabase", fields)
    assert not verdict.ok
    text = verdict.message + "\n".join(log_lines.lines)
    assert TOKEN not in text and PASSWORD not in text and SERVICE_KEY not in text
    assert any("osiris:***@" in line for line in log_lines.lines if line.startswith("HTTP Request"))
