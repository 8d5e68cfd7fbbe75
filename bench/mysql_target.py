"""Benchmark MySQL as the target: `mysql.writer` by LOAD DATA LOCAL and by multi-row INSERTs, against the raw pipe.

Run from the repository root, with MariaDB and PostgreSQL running as `.ci/run` starts them:

    PYTHONPATH=src/python:. python bench/mysql_target.py --rows 1000000

It generates N movie-like rows (`bench/copy_bench.py`) in MariaDB and copies them once into PostgreSQL (the
source), then times, best of --repeat (rotating which goes first), each a cold process:

- (a) the raw pipe: `psql -c '\\copy (SELECT …) TO STDOUT' | mariadb -e "LOAD DATA LOCAL INFILE '/dev/stdin' …"`;
- (b) `osiris run` of `postgres.extractor` → `mysql.writer` (`replace`): the writer streams the rows through
  LOAD DATA LOCAL (the server allows it);
- (c) the same run with the server's `local_infile` off (`SET GLOBAL`, restored afterwards): the writer falls back
  to multi-row INSERTs, as it does on servers that refuse LOAD DATA.

It prints wall seconds, rows/s, peak RSS, CPU of the process tree and the ratio to (a). Nothing here runs in CI.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pymysql
import yaml

from bench.copy_bench import (
    COLUMNS,
    MYSQL_DATABASE,
    MYSQL_HOST,
    MYSQL_PORT,
    MYSQL_USER,
    PG_DSN,
    clients_on_path,
    generate,
    reset_postgres,
)
from bench.copy_bench import write_connections as write_bench_connections
from bench.p1 import HEADER, Run, best, line, osiris, osiris_env, pipe_copy, timed

SELECT = ("SELECT id, title, director_id, release_year, genre, runtime_minutes, budget_usd, box_office_usd, rating, "
          "released, updated_at AT TIME ZONE 'UTC' FROM movies_pipe")


def mysql(sql: str) -> list[tuple[object, ...]]:
    connection = pymysql.connect(host=MYSQL_HOST, port=MYSQL_PORT, user=MYSQL_USER, password="",
                                 database=MYSQL_DATABASE, autocommit=True)
    with connection, connection.cursor() as cursor:
        cursor.execute(sql)
        return list(cursor.fetchall())


def pipe() -> str:
    """psql's text COPY output (tab-separated, `\\N` for NULL) is what LOAD DATA reads by default."""
    load = "LOAD DATA LOCAL INFILE '/dev/stdin' INTO TABLE movies_mysql_pipe"
    return (shlex.join(["psql", "-q", "-v", "ON_ERROR_STOP=1", PG_DSN, "-c", f"\\copy ({SELECT}) TO STDOUT"])
            + " | " + shlex.join(["mariadb", "--local-infile=1", "-h", MYSQL_HOST, "-u", MYSQL_USER, MYSQL_DATABASE,
                                  "-e", load]))


def write_pipeline(workdir: Path) -> Path:
    steps = [{"id": "extract", "component": "postgres.extractor", "mode": "read",
              "config": {"connection": "@postgres.bench", "table": "movies_pipe"}},
             {"id": "load", "component": "mysql.writer", "mode": "write", "needs": ["extract"],
              "config": {"connection": "@mysql.bench", "table": "movies_mysql_copy", "write_mode": "replace",
                         "primary_key": ["id"], "create_if_missing": True}}]
    path = workdir / "to_mysql.yaml"
    path.write_text(yaml.safe_dump({"oml_version": "0.1.0", "name": "to_mysql", "steps": steps}))
    return path


@contextmanager
def local_infile(on: bool) -> Iterator[None]:
    """The server's `local_infile` for the block, restored after it."""
    (before,) = mysql("SELECT @@GLOBAL.local_infile")[0]
    mysql(f"SET GLOBAL local_infile = {int(on)}")
    try:
        yield
    finally:
        mysql(f"SET GLOBAL local_infile = {int(str(before))}")


def count(table: str) -> int:
    return int(str(mysql(f"SELECT count(*) FROM {table}")[0][0]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows (default 1000000)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each contender; the best counts (default 3)")
    args = parser.parse_args()
    if not clients_on_path():
        return 2
    print(f"# {os.cpu_count()} cores; load average {os.getloadavg()[0]:.1f} at start")
    workdir = Path(tempfile.mkdtemp(prefix="osiris-mysql-target-"))
    write_bench_connections(workdir)
    pipeline = write_pipeline(workdir)
    generate(args.rows)
    reset_postgres()
    subprocess.run(["bash", "-c", " ".join(pipe_copy("movies_pipe"))], check=True)  # the source, once
    mysql("DROP TABLE IF EXISTS movies_mysql_pipe, movies_mysql_copy")
    mysql(f"CREATE TABLE movies_mysql_pipe ({COLUMNS}) ENGINE=InnoDB")
    timed(osiris("compile", str(pipeline)), cwd=workdir, env=osiris_env())  # bytecode, as installed
    runs: dict[str, list[Run]] = {"a": [], "b": [], "c": []}
    order = list(runs)
    for attempt in range(args.repeat):
        for which in order[attempt % 3:] + order[:attempt % 3]:
            if which == "a":
                mysql("TRUNCATE movies_mysql_pipe")
                runs["a"].append(timed(["bash", "-o", "pipefail", "-c", pipe()], cwd=workdir))
                assert count("movies_mysql_pipe") == args.rows, "the pipe did not copy every row"
                continue
            with local_infile(which == "b"):
                runs[which].append(timed(osiris("run", str(pipeline), "--progress", "none"), cwd=workdir,
                                         env=osiris_env()))
            assert count("movies_mysql_copy") == args.rows, "osiris did not copy every row"
    print(f"\n## {args.rows:,} rows, PostgreSQL → MySQL\n{HEADER}")
    print(line("(a) pipe: psql \\copy | mariadb LOAD DATA", args.rows, runs["a"], None))
    print(line("(b) osiris run, LOAD DATA LOCAL", args.rows, runs["b"], best(runs["a"])))
    print(line("(c) osiris run, INSERTs (local_infile off)", args.rows, runs["c"], best(runs["a"])))
    print(f"# load average {os.getloadavg()[0]:.1f} at the end")
    shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
