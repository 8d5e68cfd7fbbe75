"""Sandbox runs read and write the same state as local runs: it lives in the target, and the worker runs the same
engine (the local E2B-compatible sandbox server, as tests/remote/test_remote_run.py uses it)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from osiris_cli.main import main
from tests.incremental.support import Project, pg_extract, pg_write


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    capsys.readouterr()
    assert main(["run", "inc.yaml", "--json", *args]) == 0
    card: dict[str, Any] = json.loads(capsys.readouterr().out)
    return next(s for s in card["steps"] if s["step_id"] == "read")["incremental"]  # type: ignore[no-any-return]


def test_local_and_sandbox_runs_share_the_state(proj: Project, capsys: pytest.CaptureFixture[str]) -> None:
    proj.pg_exec(f"CREATE SCHEMA IF NOT EXISTS {proj.schema}",
                 f"CREATE TABLE {proj.schema}.src (id int PRIMARY KEY, v text, updated_at bigint)",
                 f"INSERT INTO {proj.schema}.src SELECT g, 'v', g FROM generate_series(1, 10) g")
    proj.write_pipeline([pg_extract("read", proj.schema, "src"), pg_write("load", "read", proj.schema, "dst")])
    assert _run(capsys)["rows_read"] == 10
    proj.pg_exec(f"INSERT INTO {proj.schema}.src VALUES (11, 'v', 11)")
    remote = _run(capsys, "--sandbox", "local")
    assert (remote["cursor_before"], remote["cursor_after"], remote["rows_read"]) == (
        '[["int","10"]]', '[["int","11"]]', 2)
    refreshed = _run(capsys, "--sandbox", "local", "--full-refresh")
    assert refreshed["full_refresh"] is True and refreshed["rows_read"] == 11
    local = _run(capsys)
    assert (local["cursor_before"], local["rows_read"]) == ('[["int","11"]]', 1)
    assert proj.pg_exec(f"SELECT count(*) FROM {proj.schema}.dst") == [(11,)]
