"""The seed's demo end to end: MySQL → DuckDB → Supabase (replace), locally and in the sandbox."""

from __future__ import annotations

import csv
import shutil
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from osiris_cli.main import main
from tests.conftest import REPO_ROOT
from tests.supabase.conftest import SERVICE_KEY
from tests.support.databases import MySQLDatabase, PostgresDatabase
from tests.support.demo_data import load_movies
from tests.support.postgrest_server import PostgrestServer

TABLE = "director_stats_replace"


@pytest.fixture
def demo(project: Path, mysql_db: MySQLDatabase) -> Path:
    shutil.copytree(REPO_ROOT / "examples", project / "examples")
    load_movies(mysql_db, project / "examples")
    return project / "examples/mysql_duckdb_supabase_demo.yaml"


def connections_file(project: Path, mysql_db: MySQLDatabase, pg_db: PostgresDatabase, server: PostgrestServer,
                     *, with_pg_dsn: bool) -> Path:
    supabase: dict[str, Any] = {"url": server.url, "service_role_key": SERVICE_KEY, "sql_url": server.sql_url}
    if with_pg_dsn:
        supabase["pg_dsn"] = pg_db.dsn
    path = project / f"connections_{with_pg_dsn}.yaml"
    path.write_text(yaml.safe_dump({"connections": {"mysql": {"demo": mysql_db.fields},
                                                    "supabase": {"demo": supabase}}}))
    return path


def expected_rows(project: Path) -> list[tuple[Any, ...]]:
    """The same statistics computed by the embedded demo from the CSV files."""
    assert main(["run", str(project / "examples/movies_local.yaml")]) == 0
    with (project / "output/director_stats.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    return [(int(r["director_id"]), r["director_name"], int(r["movie_count"]), int(r["unique_genres"]),
             Decimal(r["avg_runtime_minutes"]), Decimal(r["total_box_office_usd"]),
             Decimal(r["avg_roi"]) if r["avg_roi"] else None) for r in rows]


def target_rows(pg_db: PostgresDatabase) -> list[tuple[Any, ...]]:
    with pg_db.connect() as connection, connection.cursor() as cursor:
        cursor.execute(f"SELECT director_id, director_name, movie_count, unique_genres, "
                       f"avg_runtime_minutes::numeric, total_box_office_usd::numeric, avg_roi::numeric "
                       f"FROM {TABLE} ORDER BY director_id")
        return [tuple(row) for row in cursor.fetchall()]


@pytest.mark.parametrize("with_pg_dsn", [True, False], ids=["copy", "postgrest"])
def test_seed_demo_writes_exactly_the_expected_rows(demo: Path, project: Path, mysql_db: MySQLDatabase,
                                                    pg_db: PostgresDatabase, postgrest: PostgrestServer,
                                                    with_pg_dsn: bool, capsys: pytest.CaptureFixture[str]) -> None:
    expected = expected_rows(project)
    assert len(expected) == 10
    connections = connections_file(project, mysql_db, pg_db, postgrest, with_pg_dsn=with_pg_dsn)
    for _ in range(2):
        assert main(["run", str(demo), "--connections", str(connections)]) == 0, capsys.readouterr().err
        out = capsys.readouterr().out
        assert "Status: succeeded (3 succeeded)" in out
        assert "write-director-stats wrote 10 rows" in out
        assert target_rows(pg_db) == expected


def test_seed_demo_parity_in_the_sandbox(demo: Path, project: Path, mysql_db: MySQLDatabase,
                                         pg_db: PostgresDatabase, postgrest: PostgrestServer,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    connections = connections_file(project, mysql_db, pg_db, postgrest, with_pg_dsn=True)
    assert main(["parity", str(demo), "--connections", str(connections)]) == 0, capsys.readouterr().out
    assert "Parity: identical" in capsys.readouterr().out
    assert len(target_rows(pg_db)) == 10
