"""Benchmark: an incremental run against the full run, MySQL → PostgreSQL upsert, 1% of the rows changed.

Run from the repository root (MariaDB and PostgreSQL running as `.ci/run` starts them):

    ./pants run bench/incremental_bench.py -- --rows 1000000 --changed 0.01

It loads N movie-like rows into MariaDB (`updated_at DATETIME(6)`, indexed), runs the pipeline once with no state
(the full run: every row read and upserted into PostgreSQL), changes a fraction of the rows (their `updated_at`
moves past the last cursor), and runs it again (the incremental run). It prints, for both runs, the rows the
extractor read (from the run card) and the wall time, and checks the targets: the incremental run reads at most
1.05 x the changed rows and takes at most 10% of the full run's time; the target equals the source after it.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg2
import pymysql
import yaml

from osiris_core.compiler import compile_file
from osiris_core.connections import Connections
from osiris_core.execution import ExecutionSettings
from osiris_core.manifest import load_compiled
from osiris_core.runner import LocalExecutor
from osiris_drivers.registry import default_registry

MYSQL_HOST, MYSQL_PORT, MYSQL_USER, MYSQL_DATABASE = "127.0.0.1", 3306, "root", "osiris_bench_incremental"
PG_DATABASE = "osiris_bench_incremental"
PG_DSN = f"postgresql://root@127.0.0.1:5432/{PG_DATABASE}"
COLUMNS = ("id BIGINT PRIMARY KEY, title VARCHAR(200), director_id INT, genre VARCHAR(20), "
           "budget_usd DECIMAL(14,2), rating DOUBLE, updated_at DATETIME(6) NOT NULL, KEY (updated_at)")
STEPS: list[dict[str, Any]] = [
    {"id": "extract", "component": "mysql.extractor", "mode": "read",
     "config": {"connection": "@mysql.bench", "table": "movies", "incremental": {"cursor": "updated_at"}}},
    {"id": "load", "component": "postgres.writer", "mode": "write", "needs": ["extract"],
     "config": {"connection": "@postgres.bench", "table": "movies", "write_mode": "upsert", "primary_key": ["id"]}},
]


def mysql(*statements: str) -> list[tuple[Any, ...]]:
    connection = pymysql.connect(host=MYSQL_HOST, port=MYSQL_PORT, user=MYSQL_USER, password="", autocommit=True)
    rows: list[tuple[Any, ...]] = []
    with connection, connection.cursor() as cursor:
        for statement in statements:
            cursor.execute(statement)
            rows = list(cursor.fetchall())
    return rows


def prepare(rows: int) -> None:
    """The source with N rows (made by the server: the Sequence engine), an empty PostgreSQL database."""
    mysql(f"DROP DATABASE IF EXISTS {MYSQL_DATABASE}", f"CREATE DATABASE {MYSQL_DATABASE}",
          f"CREATE TABLE {MYSQL_DATABASE}.movies ({COLUMNS}) ENGINE=InnoDB", f"USE {MYSQL_DATABASE}",
          f"INSERT INTO {MYSQL_DATABASE}.movies SELECT seq, CONCAT('Movie number ', seq), seq % 5000, "
          "ELT(1 + seq % 4, 'Drama', 'Sci-Fi', 'Comedy', 'Action'), (seq % 200) * 1000000.25, (seq % 100) / 10, "
          f"TIMESTAMP('2024-01-01 00:00:00') + INTERVAL seq SECOND FROM seq_1_to_{rows}")
    admin = psycopg2.connect("postgresql://root@127.0.0.1:5432/postgres")
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{PG_DATABASE}" WITH (FORCE)')
        cursor.execute(f'CREATE DATABASE "{PG_DATABASE}"')
    admin.close()


def change(rows: int, fraction: float) -> int:
    """Move `updated_at` of every k-th row past the last cursor (and change its title); how many changed."""
    step = max(1, round(1 / fraction))
    mysql(f"UPDATE {MYSQL_DATABASE}.movies SET title = CONCAT(title, ' (changed)'), "
          f"updated_at = TIMESTAMP('2030-01-01 00:00:00') + INTERVAL id MICROSECOND WHERE id % {step} = 0")
    return rows // step


def run(workdir: Path) -> tuple[float, int]:
    """One run as `osiris run` does it: wall seconds and the rows the extractor read (its card)."""
    registry = default_registry(entry_points=False)
    connections = Connections.load(workdir / "osiris_connections.yaml")
    path = workdir / "incremental.yaml"
    path.write_text(yaml.safe_dump({"oml_version": "0.1.0", "name": "incremental-bench", "steps": STEPS}))
    compiled = compile_file(path, registry, connections, workdir / "logs")
    assert compiled.manifest_path is not None
    settings = ExecutionSettings(registry, connections, workdir / "logs", progress_every_s=None)
    start = time.perf_counter()
    result = LocalExecutor(settings).run(load_compiled(compiled.manifest_path))
    seconds = time.perf_counter() - start
    if result.exit_code != 0:
        raise SystemExit(f"the run failed: {result.card.error}")
    card = next(s for s in result.card.steps if s.step_id == "extract")
    assert card.incremental is not None and card.incremental.rows_read is not None
    return seconds, card.incremental.rows_read


def same_rows() -> bool:
    source = mysql(f"SELECT count(*), SUM(CRC32(CONCAT(id, title, updated_at))) FROM {MYSQL_DATABASE}.movies")
    with psycopg2.connect(PG_DSN) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT count(*), count(*) FILTER (WHERE title LIKE '%(changed)') FROM movies")
        target = cursor.fetchone()
    changed = mysql(f"SELECT count(*) FROM {MYSQL_DATABASE}.movies WHERE title LIKE '%(changed)'")
    return target is not None and (int(target[0]), int(target[1])) == (int(source[0][0]), int(changed[0][0]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--changed", type=float, default=0.01, help="fraction of rows changed (default 0.01)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="osiris-incremental-bench-") as tmp:
        workdir = Path(tmp)
        (workdir / "osiris_connections.yaml").write_text(yaml.safe_dump({"connections": {
            "mysql": {"bench": {"host": MYSQL_HOST, "port": MYSQL_PORT, "user": MYSQL_USER, "password": "",
                                "database": MYSQL_DATABASE}},
            "postgres": {"bench": {"host": "127.0.0.1", "port": 5432, "database": PG_DATABASE, "user": "root"}},
        }}))
        os.chdir(workdir)
        print(f"loading {args.rows:,} rows into MariaDB …", file=sys.stderr)
        prepare(args.rows)
        full_s, full_rows = run(workdir)
        changed = change(args.rows, args.changed)
        incremental_s, incremental_rows = run(workdir)
        exact = same_rows()
    print(f"{'run':<13} {'rows read':>10} {'wall s':>8}")
    print(f"{'full':<13} {full_rows:>10,} {full_s:>8.2f}")
    print(f"{'incremental':<13} {incremental_rows:>10,} {incremental_s:>8.2f}   ({changed:,} rows changed)")
    reads = incremental_rows / max(changed, 1)
    share = incremental_s / full_s
    print(f"reads: {reads:.3f} x the changed rows (target ≤ 1.05); time: {share:.1%} of the full run "
          f"(target ≤ 10%); target equals source: {exact}")
    return 0 if reads <= 1.05 and share <= 0.10 and exact else 1


if __name__ == "__main__":
    sys.exit(main())
