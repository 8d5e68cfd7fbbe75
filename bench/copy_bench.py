"""Benchmark: MySQL → PostgreSQL copies, timed against a raw `mariadb | psql \\copy` pipe in the same run.

Run from the repository root (MariaDB and PostgreSQL running as `.ci/run` starts them):

    ./pants run bench/copy_bench.py -- --rows 1000000 --rows 5000000

For each size it loads N generated movie-like rows (11 mixed columns) into MariaDB, then times
(a) the baseline pipe, (b) an Osiris pipeline copying the table MySQL → Postgres (replace), and
(c) the demo-shaped pipeline (extract all rows → DuckDB aggregate → Supabase writer over pg_dsn).
It prints wall seconds, rows/s, the peak RSS of the process that did the work, and ratios to (a).

With --progress-overhead it times (b) instead with live progress off (no `step_progress` events, no display)
and on (events once a second, and the live `rich` view rendering to a terminal-like sink), alternating
--repeat times, and prints the median of each and their ratio:

    ./pants run bench/copy_bench.py -- --progress-overhead --rows 1000000 --repeat 7
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import psycopg2
import pymysql
import yaml

from osiris_cli.progress import LiveDisplay
from osiris_core.compiler import compile_file
from osiris_core.connections import Connections
from osiris_core.execution import ExecutionSettings
from osiris_core.manifest import load_compiled
from osiris_core.runner import LocalExecutor
from osiris_drivers.registry import default_registry

BENCH_DATABASE = os.environ.get("OSIRIS_BENCH_DATABASE", "osiris_bench")
"""The MariaDB and PostgreSQL database the benchmarks use (set it so parallel benchmark runs do not collide)."""
MYSQL_HOST, MYSQL_PORT, MYSQL_USER, MYSQL_DATABASE = "127.0.0.1", 3306, "root", BENCH_DATABASE
MYSQL: dict[str, str | int] = {"host": MYSQL_HOST, "port": MYSQL_PORT, "user": MYSQL_USER, "password": "",
                               "database": MYSQL_DATABASE}
PG_DATABASE = BENCH_DATABASE
PG_DSN = f"postgresql://root@127.0.0.1:5432/{PG_DATABASE}"
COLUMNS = ("id BIGINT PRIMARY KEY, title VARCHAR(200), director_id INT, release_year SMALLINT, genre VARCHAR(20), "
           "runtime_minutes SMALLINT, budget_usd DECIMAL(14,2), box_office_usd DECIMAL(14,2), rating DOUBLE, "
           "released DATE, updated_at DATETIME(6)")
PG_COLUMNS = ("id BIGINT PRIMARY KEY, title TEXT, director_id INTEGER, release_year SMALLINT, genre TEXT, "
              "runtime_minutes SMALLINT, budget_usd NUMERIC(14,2), box_office_usd NUMERIC(14,2), "
              "rating DOUBLE PRECISION, released DATE, updated_at TIMESTAMPTZ")
DEMO_SQL = """
SELECT director_id, COUNT(*) AS movie_count, COUNT(DISTINCT genre) AS unique_genres,
       ROUND(AVG(runtime_minutes), 1) AS avg_runtime_minutes, MIN(release_year) AS first_movie_year,
       MAX(release_year) AS latest_movie_year, ROUND(AVG(budget_usd), 2) AS avg_budget_usd,
       ROUND(AVG(box_office_usd), 2) AS avg_box_office_usd, SUM(box_office_usd) AS total_box_office_usd,
       ROUND(AVG(box_office_usd / NULLIF(budget_usd, 0)), 2) AS avg_roi
FROM input_df GROUP BY director_id ORDER BY director_id
"""


@dataclass(frozen=True)
class Timing:
    name: str
    seconds: float
    rows: int
    peak_rss_mb: float
    cpu_seconds: float
    """User + system CPU time of the process that did the work (not of the database servers)."""


def clients_on_path() -> bool:
    """Whether the baselines' `mariadb` and `psql` clients are on PATH; if not, says so on stderr."""
    if shutil.which("mariadb") and shutil.which("psql"):
        return True
    print("error: the baseline needs the mariadb and psql clients on PATH", file=sys.stderr)
    return False


def generate(rows: int) -> None:
    """N rows in MariaDB, made by the server itself (the Sequence engine) so generation is not timed I/O."""
    admin = pymysql.connect(host=MYSQL_HOST, port=MYSQL_PORT, user=MYSQL_USER, password="", autocommit=True)
    with admin, admin.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE IF NOT EXISTS {MYSQL_DATABASE}")
        cursor.execute(f"USE {MYSQL_DATABASE}")
        cursor.execute(f"DROP TABLE IF EXISTS {MYSQL_DATABASE}.movies_big")
        cursor.execute(f"CREATE TABLE {MYSQL_DATABASE}.movies_big ({COLUMNS}) ENGINE=InnoDB")
        cursor.execute(
            f"INSERT INTO {MYSQL_DATABASE}.movies_big SELECT seq, CONCAT('Movie number ', seq), seq % 5000, "
            "1950 + seq % 75, ELT(1 + seq % 7, 'Drama', 'Sci-Fi', 'Thriller', 'Comedy', 'Animation', 'Horror', "
            "'Action'), 80 + seq % 100, (seq % 200) * 1000000.25, (seq % 900) * 1234567.5, (seq % 100) / 10, "
            "DATE_ADD('1950-01-01', INTERVAL seq % 27000 DAY), "
            "TIMESTAMP('2024-01-01 00:00:00') + INTERVAL seq SECOND "
            f"FROM seq_1_to_{rows}")


def reset_postgres() -> None:
    admin = psycopg2.connect("postgresql://root@127.0.0.1:5432/postgres")
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute(f"SELECT 1 FROM pg_database WHERE datname = '{PG_DATABASE}'")
        if cursor.fetchone() is None:
            cursor.execute(f"CREATE DATABASE {PG_DATABASE}")
    admin.close()
    with psycopg2.connect(PG_DSN) as connection, connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS movies_copy, movies_pipe, director_stats")
        cursor.execute(f"CREATE TABLE movies_pipe ({PG_COLUMNS})")


def measure(name: str, rows: int, work: Callable[[], None]) -> Timing:
    """Run `work` in a forked child; wall time and that child's own peak RSS."""
    start = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        try:
            work()
            os._exit(0)
        except BaseException as exc:  # the child reports and exits; the parent sees the status
            print(f"{name} failed: {exc}", file=sys.stderr)
            os._exit(1)
    _, status, usage = os.wait4(pid, 0)
    seconds = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{name} failed")
    return Timing(name, seconds, rows, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime)


def baseline() -> None:
    select = "SELECT * FROM movies_big"
    mariadb = subprocess.Popen(["mariadb", "--quick", "-B", "-N", "-h", MYSQL_HOST, "-u", MYSQL_USER,
                                MYSQL_DATABASE, "-e", select], stdout=subprocess.PIPE)
    psql = subprocess.run(["psql", "-q", "-v", "ON_ERROR_STOP=1", PG_DSN, "-c", "\\copy movies_pipe FROM STDIN"],
                          stdin=mariadb.stdout, check=True)
    assert mariadb.wait() == 0 and psql.returncode == 0


def osiris_pipeline(workdir: Path, steps: list[dict[str, object]], *,
                    progress: bool | None = None) -> Callable[[], None]:
    """The pipeline as `osiris run` runs it; `progress` False: no progress events, True: events and a live view
    (rendered to /dev/null as to a terminal), None: events only (the engine's default)."""

    def work() -> None:
        os.chdir(workdir)
        registry = default_registry(entry_points=False)
        connections = Connections.load(workdir / "osiris_connections.yaml")
        path = workdir / "bench.yaml"
        path.write_text(yaml.safe_dump({"oml_version": "0.1.0", "name": "bench", "steps": steps}))
        compiled = compile_file(path, registry, connections, workdir / "logs")
        assert compiled.manifest_path is not None
        with open(os.devnull, "w", encoding="utf-8") as sink:
            display = LiveDisplay(sink, workdir / "logs", force_terminal=True)
            settings = ExecutionSettings(registry, connections, workdir / "logs",
                                         listeners=(display.listen,) if progress else (),
                                         progress_every_s=None if progress is False else 1.0)
            with display.open() if progress else nullcontext():
                result = LocalExecutor(settings).run(load_compiled(compiled.manifest_path))
        if result.exit_code != 0:
            raise RuntimeError(result.card.error)

    return work


def scenarios(workdir: Path) -> dict[str, list[dict[str, object]]]:
    extract: dict[str, object] = {"id": "extract", "component": "mysql.extractor", "mode": "read",
               "config": {"connection": "@mysql.bench", "table": "movies_big"}}
    return {
        "b": [extract, {"id": "load", "component": "postgres.writer", "mode": "write", "needs": ["extract"],
                        "config": {"connection": "@postgres.bench", "table": "movies_copy", "write_mode": "replace",
                                   "primary_key": ["id"], "create_if_missing": True}}],
        "c": [extract,
              {"id": "stats", "component": "duckdb.processor", "mode": "transform", "needs": ["extract"],
               "config": {"query": DEMO_SQL}},
              {"id": "load", "component": "supabase.writer", "mode": "write", "needs": ["stats"],
               "config": {"connection": "@supabase.bench", "table": "director_stats", "write_mode": "replace",
                          "primary_key": ["director_id"], "create_if_missing": True}}],
    }


def write_connections(workdir: Path) -> None:
    (workdir / "osiris_connections.yaml").write_text(yaml.safe_dump({"connections": {
        "mysql": {"bench": MYSQL},
        "postgres": {"bench": {"host": "127.0.0.1", "port": 5432, "database": PG_DATABASE, "user": "root"}},
        "supabase": {"bench": {"url": "http://127.0.0.1:9", "pg_dsn": PG_DSN}},
    }}))


def row_count(table: str) -> int:
    with psycopg2.connect(PG_DSN) as connection, connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {table}")
        row = cursor.fetchone()
    return int(row[0]) if row else 0


def report(timings: list[Timing]) -> None:
    base = timings[0]
    print(f"{'scenario':<44} {'rows':>9} {'wall s':>8} {'rows/s':>11} {'peak RSS MB':>12} {'vs (a) time':>11}")
    for t in timings:
        print(f"{t.name:<44} {t.rows:>9} {t.seconds:>8.2f} {t.rows / t.seconds:>11,.0f} {t.peak_rss_mb:>12.1f} "
              f"{t.seconds / base.seconds:>11.2f}")


def progress_overhead(workdir: Path, rows: int, repeats: int) -> None:
    """(b) with progress off and on, alternating which goes first; medians and their ratio."""
    steps = scenarios(workdir)["b"]
    timings: dict[bool, list[Timing]] = {False: [], True: []}
    for attempt in range(repeats):
        for flag in ((False, True) if attempt % 2 == 0 else (True, False)):
            timings[flag].append(measure(f"(b) progress {'on' if flag else 'off'}", rows,
                                         osiris_pipeline(workdir, steps, progress=flag)))
            assert row_count("movies_copy") == rows, "pipeline (b) did not copy every row"
    print(f"{'scenario':<40} {'runs':>4} {'median wall s':>13} {'min':>6} {'max':>6} {'median CPU s':>12}")
    stats = {}
    for flag, name in ((False, "(b) progress off"), (True, "(b) progress on: events + live view")):
        wall = [t.seconds for t in timings[flag]]
        cpu = [t.cpu_seconds for t in timings[flag]]
        stats[flag] = (statistics.median(wall), min(wall), statistics.median(cpu))
        print(f"{name:<40} {len(wall):>4} {stats[flag][0]:>13.2f} {min(wall):>6.2f} {max(wall):>6.2f} "
              f"{stats[flag][2]:>12.2f}")
    on, off = stats[True], stats[False]
    print(f"progress on / off: wall {on[0] / off[0]:.3f} (medians), {on[1] / off[1]:.3f} (best runs); "
          f"CPU {on[2] / off[2]:.3f} (medians)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, action="append", help="rows to copy (repeatable; default 1000000)")
    parser.add_argument("--progress-overhead", action="store_true",
                        help="time (b) with live progress off and on instead of the scenarios")
    parser.add_argument("--repeat", type=int, default=5, help="runs of each variant for --progress-overhead")
    args = parser.parse_args()
    if not clients_on_path():
        return 2
    print(f"# resource limit check: {resource.getpagesize()}-byte pages; {os.cpu_count()} cores")
    workdir = Path(tempfile.mkdtemp(prefix="osiris-bench-"))
    write_connections(workdir)
    for rows in args.rows or [1_000_000]:
        print(f"\n## {rows:,} rows")
        generate(rows)
        reset_postgres()
        if args.progress_overhead:
            progress_overhead(workdir, rows, args.repeat)
            continue
        timings = [measure("(a) mariadb --quick -B | psql \\copy", rows, baseline)]
        steps = scenarios(workdir)
        timings.append(measure("(b) osiris mysql.extractor → postgres.writer", rows,
                               osiris_pipeline(workdir, steps["b"])))
        assert row_count("movies_copy") == rows, "pipeline (b) did not copy every row"
        timings.append(measure("(c) osiris extract → duckdb aggregate → supabase", rows,
                               osiris_pipeline(workdir, steps["c"])))
        report(timings)
    shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
