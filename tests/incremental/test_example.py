"""examples/incremental_movies.yaml runs as the README says: MySQL into a DuckDB file, state in that file."""

from __future__ import annotations

import json
import shutil
from typing import Any

import duckdb
import pytest

from osiris_cli.main import main
from tests.conftest import REPO_ROOT
from tests.incremental.support import Project


def _read_step(capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    capsys.readouterr()
    assert main(["run", "examples/incremental_movies.yaml", "--json"]) == 0
    card = json.loads(capsys.readouterr().out)
    step: dict[str, Any] = next(s for s in card["steps"] if s["step_id"] == "extract-movies")
    return step


def test_the_incremental_example_reads_only_new_movies(proj: Project, capsys: pytest.CaptureFixture[str],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    shutil.copytree(REPO_ROOT / "examples", proj.path / "examples")
    monkeypatch.setenv("OSIRIS_CONNECTIONS", str(proj.path / "examples" / "osiris_connections.yaml"))
    for name, value in {"MYSQL_HOST": proj.mysql.host, "MYSQL_PORT": str(proj.mysql.port),
                        "MYSQL_DATABASE": proj.mysql.database, "MYSQL_USER": proj.mysql.user,
                        "MYSQL_PASSWORD": proj.mysql.password, "SUPABASE_URL": "https://example.supabase.co",
                        "SUPABASE_SERVICE_ROLE_KEY": "unused"}.items():
        monkeypatch.setenv(name, value)
    proj.my_exec("DROP TABLE IF EXISTS movies",
                 "CREATE TABLE movies (movie_id INT PRIMARY KEY, title VARCHAR(200), director_id INT)",
                 "INSERT INTO movies VALUES (1, 'One', 1), (2, 'Two', 1)")
    assert _read_step(capsys)["incremental"]["rows_read"] == 2
    proj.my_exec("INSERT INTO movies VALUES (3, 'Three', 2)")
    second = _read_step(capsys)["incremental"]
    assert (second["cursor_before"], second["cursor_after"], second["rows_read"]) == (
        '[["int","2"]]', '[["int","3"]]', 2)
    con = duckdb.connect(str(proj.path / "output" / "osiris.duckdb"))
    try:
        assert con.execute("SELECT movie_id FROM movies ORDER BY 1").fetchall() == [(1,), (2,), (3,)]
        assert con.execute('SELECT pipeline, step, "cursor" FROM _osiris_state').fetchall() == [
            ("movies-incremental", "extract-movies", '[["int","3"]]')]
    finally:
        con.close()
