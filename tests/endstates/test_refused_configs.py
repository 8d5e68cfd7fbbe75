"""`validate`/`compile` refuse writer configs that could only fail at run time (issue 9, finding 4). Extractors
given both `table` and `query`, upsert without `primary_key` and unknown write modes are refused by the specs'
rules and schemas already (tests/core/test_spec_rules.py); these are the cases that were missing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from osiris_cli.main import main

SQL_WRITERS = ("mysql.writer", "postgres.writer", "supabase.writer", "duckdb.writer")
CONNECTIONS = {"connections": {
    "mysql": {"main": {"host": "127.0.0.1", "database": "d", "user": "u"}},
    "postgres": {"main": {"host": "127.0.0.1", "database": "d", "user": "u"}},
    "supabase": {"main": {"url": "https://abc.supabase.co", "service_role_key": "${SUPABASE_KEY:-k}"}},
}}


def validate(project: Path, capsys: pytest.CaptureFixture[str], component: str, **config: Any) -> tuple[int, str]:
    where = {"path": "out.duckdb"} if component == "duckdb.writer" else {"connection": f"@{component.split('.')[0]}"}
    step = {"id": "s", "component": component, "mode": "write", "config": {**where, "table": "t", **config}}
    (project / "osiris_connections.yaml").write_text(yaml.safe_dump(CONNECTIONS))
    (project / "p.yaml").write_text(yaml.safe_dump({"oml_version": "0.1.0", "name": "rules", "steps": [step]},
                                                   sort_keys=False))
    capsys.readouterr()
    code = main(["validate", "p.yaml"])
    return code, capsys.readouterr().err


@pytest.mark.parametrize("component", SQL_WRITERS)
def test_a_key_column_listed_twice_is_refused(project: Path, capsys: pytest.CaptureFixture[str],
                                              component: str) -> None:
    """Before: valid, then CREATE TABLE failed at run time ('column "id" appears twice in primary key')."""
    code, error = validate(project, capsys, component, write_mode="upsert", primary_key=["id", "id"])
    assert code == 2 and "has non-unique elements" in error and error.startswith("error: p.yaml:"), error
    assert validate(project, capsys, component, write_mode="upsert", primary_key=["id", "name"])[0] == 0


@pytest.mark.parametrize("component", SQL_WRITERS)
@pytest.mark.parametrize("mode", [None, "append", "replace"])
def test_dedupe_without_upsert_is_refused(project: Path, capsys: pytest.CaptureFixture[str], component: str,
                                          mode: str | None) -> None:
    config: dict[str, Any] = {"dedupe": "keep_last"} | ({"write_mode": mode} if mode else {})
    code, error = validate(project, capsys, component, **config)
    assert code == 2 and "dedupe is not allowed when write_mode is" in error, error
    code, error = validate(project, capsys, component, write_mode="upsert", primary_key=["id"], dedupe="keep_first")
    assert code == 2 and "'keep_first' is not one of ['keep_last']" in error
    assert validate(project, capsys, component, write_mode="upsert", primary_key=["id"], dedupe="keep_last")[0] == 0
