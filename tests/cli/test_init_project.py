"""`osiris init`: a skeleton that runs at once, connections for every family, and no file ever overwritten."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from osiris_cli.init_project import SKELETON
from osiris_cli.main import main
from osiris_core.connections import CONNECTIONS_FILE
from osiris_core.registry import ComponentRegistry
from tests.support.databases import MySQLDatabase, PostgresDatabase
from tests.support.postgrest_server import PostgrestServer

ALL_FILES = sorted([target for target, _ in SKELETON] + [CONNECTIONS_FILE])


def _snapshot(root: Path) -> dict[str, tuple[bytes, int]]:
    return {str(p.relative_to(root)): (p.read_bytes(), p.stat().st_mtime_ns) for p in root.rglob("*") if p.is_file()}


def test_init_twice_changes_nothing_and_the_pipeline_runs(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["init", "demo", "--json"]) == 0
    first = json.loads(capsys.readouterr().out)
    assert sorted(first["created"]) == ALL_FILES and first["kept"] == []
    before = _snapshot(project / "demo")
    assert main(["init", "demo"]) == 0
    out = capsys.readouterr().out
    assert "Created" not in out and "Kept (already there, not overwritten): pipelines/director_stats.yaml" in out
    assert _snapshot(project / "demo") == before

    os.chdir(project / "demo")
    assert main(["run", "pipelines/director_stats.yaml", "--json"]) == 0
    card = json.loads(capsys.readouterr().out)
    assert card["status"] == "succeeded" and len(card["steps"]) == 5
    lines = (project / "demo/output/director_stats.csv").read_text(encoding="utf-8").splitlines()
    assert lines[0].startswith("director_id,director_name,movie_count") and len(lines) == 11
    assert main(["connections", "list"]) == 0  # the generated connections file loads
    ignored = (project / "demo/.gitignore").read_text(encoding="utf-8").split()
    assert {"logs/", "output/", ".env"} <= set(ignored)


def test_init_keeps_what_is_there_and_never_writes_through_links(project: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    (project / "README.md").write_text("mine\n", encoding="utf-8")
    (project / "pipelines").mkdir()
    os.symlink(project / "elsewhere.yaml", project / "pipelines/director_stats.yaml")  # dangling
    assert main(["init", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert sorted(result["kept"]) == ["README.md", "pipelines/director_stats.yaml"]
    assert (project / "README.md").read_text(encoding="utf-8") == "mine\n"
    assert not (project / "elsewhere.yaml").exists()
    assert (project / CONNECTIONS_FILE).is_file() and result["next"] == "osiris run pipelines/director_stats.yaml"


def test_init_into_a_file_is_a_one_line_error(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "taken").write_text("x", encoding="utf-8")
    assert main(["init", "taken"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: taken exists and is not a directory") and err.count("\n") == 1
    (project / "p").mkdir()
    (project / "p/data").write_text("a file where a folder is needed", encoding="utf-8")
    assert main(["init", "p"]) == 2
    assert "cannot create p/data/movies.csv" in capsys.readouterr().err


def test_connections_cover_every_family_and_field_the_specs_declare(project: Path, registry: ComponentRegistry,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["init"]) == 0
    text = (project / CONNECTIONS_FILE).read_text(encoding="utf-8")
    families = re.split(r"^  (?=[a-z])", text, flags=re.MULTILINE)[1:]
    by_family = {block.split(":", 1)[0]: block for block in families}
    declared = {c.spec.connection.family: c.spec.connection.fields for c in registry if c.spec.connection}
    assert set(by_family) == set(declared) and {"mysql", "postgres", "supabase"} <= set(declared)
    for family, fields in declared.items():
        for field in fields:
            variable = f"{family}_{field}".upper()
            line = rf"^      (# )?{field}: \$\{{{variable}(:-[^}}]*)?\}}$"
            assert re.search(line, by_family[family], re.MULTILINE), (family, field)


def test_the_generated_connections_work_against_real_servers(
        project: Path, mysql_db: MySQLDatabase, pg_db: PostgresDatabase, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Only environment variables are set: the template's fields and defaults are what the drivers need."""
    server = PostgrestServer(pg_db.dsn, api_key="init-service-key")
    try:
        env = {"MYSQL_HOST": mysql_db.host, "MYSQL_PORT": str(mysql_db.port), "MYSQL_DATABASE": mysql_db.database,
               "MYSQL_USER": mysql_db.user, "MYSQL_PASSWORD": mysql_db.password,
               "POSTGRES_HOST": pg_db.host, "POSTGRES_PORT": str(pg_db.port), "POSTGRES_DATABASE": pg_db.database,
               "POSTGRES_USER": pg_db.user, "POSTGRES_PASSWORD": pg_db.password, "SUPABASE_URL": server.url,
               "SUPABASE_SERVICE_ROLE_KEY": "init-service-key", "SUPABASE_SQL_URL": server.sql_url}
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        assert main(["init"]) == 0
        capsys.readouterr()
        assert main(["connections", "doctor", "--json"]) == 0, capsys.readouterr()
        verdicts = json.loads(capsys.readouterr().out)
        assert {v["connection"] for v in verdicts if v["ok"]} == {"@mysql.main", "@postgres.main", "@supabase.main"}
        assert "init-service-key" not in json.dumps(verdicts)
    finally:
        server.stop()
