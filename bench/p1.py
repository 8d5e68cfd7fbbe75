"""Benchmark P1 as a user runs it: a cold `osiris run` process against the raw pipe, in the same run.

Run from the repository root, with MariaDB and PostgreSQL running as `.ci/run` starts them:

    PYTHONPATH=src/python:. python bench/p1.py --rows 1000000 --rows 10000000

For each size it generates N movie-like rows (11 columns, `bench/copy_bench.py`) in MariaDB, then times, best of
--repeat (alternating the order of the contenders in each round):

- **copy**: (a) `mariadb --quick -B -N -e 'SELECT * …' | psql -c '\\copy … FROM STDIN'` against (b) a fresh
  `python -m osiris_cli.main run p1_copy.yaml` process (`mysql.extractor` → `postgres.writer`, `replace`);
- **upsert**: the same N rows into a table already holding them: (a) the hand-written SQL — the text pipe into
  an unlogged staging table, then `INSERT … ON CONFLICT (id) DO UPDATE` in one psql session — against (b)
  `osiris run` with `write_mode: upsert`;
- with `--startup`: `osiris --help`, `osiris --version` and the embedded demo (`examples/movies_local.yaml`),
  here and with `--sandbox local` (the difference is the local sandbox's overhead).

It prints wall seconds, rows/s, the peak RSS of the Osiris process (for the pipe: its largest process) and the
ratio (b)/(a) of the best runs. Nothing here runs in CI.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from bench.copy_bench import (
    MYSQL_DATABASE,
    MYSQL_HOST,
    MYSQL_USER,
    PG_COLUMNS,
    PG_DSN,
    generate,
    reset_postgres,
    row_count,
)
from bench.copy_bench import write_connections as write_bench_connections

REPO = Path(__file__).resolve().parents[1]
COLUMN_NAMES = ("id", "title", "director_id", "release_year", "genre", "runtime_minutes", "budget_usd",
                "box_office_usd", "rating", "released", "updated_at")


@dataclass(frozen=True)
class Run:
    seconds: float
    peak_rss_mb: float
    cpu_seconds: float


def timed(argv: Sequence[str], *, cwd: Path, env: dict[str, str] | None = None) -> Run:
    """Run a command to completion: wall time, the peak RSS of its largest process, CPU of the whole tree.

    The peak RSS comes from GNU time: a process forked from this (large) one would report this one's RSS.
    """
    with tempfile.NamedTemporaryFile("r", suffix=".rss") as rss:
        start = time.perf_counter()
        child = subprocess.Popen(["/usr/bin/time", "-f", "%M", "-o", rss.name, *argv], cwd=cwd, env=env,
                                 stdout=subprocess.DEVNULL)
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - start
        child.returncode = os.waitstatus_to_exitcode(status)
        if child.returncode != 0:
            raise SystemExit(f"failed ({child.returncode}): {' '.join(argv)}")
        peak_kb = int(rss.read().split()[-1])
    return Run(seconds, peak_kb / 1024, usage.ru_utime + usage.ru_stime)


def osiris_env(src: Path = REPO / "src" / "python") -> dict[str, str]:
    """A user's environment: the libraries under `src`, bytecode caches allowed (as an installed wheel has)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPATH"] = str(src)
    return env


def osiris(*args: str) -> list[str]:
    return [sys.executable, "-m", "osiris_cli.main", *args]


def write_pipeline(workdir: Path, name: str, write_mode: str) -> Path:
    steps = [{"id": "extract", "component": "mysql.extractor", "mode": "read",
              "config": {"connection": "@mysql.bench", "table": "movies_big"}},
             {"id": "load", "component": "postgres.writer", "mode": "write", "needs": ["extract"],
              "config": {"connection": "@postgres.bench", "table": "movies_copy", "write_mode": write_mode,
                         "primary_key": ["id"], "create_if_missing": True}}]
    path = workdir / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"oml_version": "0.1.0", "name": name, "steps": steps}))
    return path


def psql(sql: str) -> None:
    subprocess.run(["psql", "-q", "-v", "ON_ERROR_STOP=1", PG_DSN, "-c", f"SET client_min_messages = warning; {sql}"],
                   check=True, stdout=subprocess.DEVNULL)


def pipe_copy(target: str) -> list[str]:
    mariadb = f"mariadb --quick -B -N -h {MYSQL_HOST} -u {MYSQL_USER} {MYSQL_DATABASE} -e 'SELECT * FROM movies_big'"
    return [mariadb, "|", "psql", "-q", "-v", "ON_ERROR_STOP=1", PG_DSN, "-c", f"'\\copy {target} FROM STDIN'"]


def pipe_upsert() -> list[str]:
    """The hand-written upsert: the text pipe into an unlogged stage, then one INSERT … ON CONFLICT, one session."""
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in COLUMN_NAMES[1:])
    script = (f"BEGIN;\nCREATE UNLOGGED TABLE p1_stage ({PG_COLUMNS.replace(' PRIMARY KEY', '')});\n"
              "\\copy p1_stage FROM pstdin\n"
              f"INSERT INTO movies_pipe SELECT * FROM p1_stage ON CONFLICT (id) DO UPDATE SET {updates};\n"
              "DROP TABLE p1_stage;\nCOMMIT;\n")
    mariadb = f"mariadb --quick -B -N -h {MYSQL_HOST} -u {MYSQL_USER} {MYSQL_DATABASE} -e 'SELECT * FROM movies_big'"
    quoted = script.replace("'", "'\\''")
    # psql reads the script from -f and the rows of `\copy … FROM pstdin` from its standard input
    return [mariadb, "|", "psql", "-q", "-v", "ON_ERROR_STOP=1", PG_DSN, "-f", f"<(printf '%s' '{quoted}')"]


def best(runs: list[Run]) -> Run:
    return min(runs, key=lambda r: r.seconds)


def line(name: str, rows: int, runs: list[Run], base: Run | None) -> str:
    b = best(runs)
    ratio = f"{b.seconds / base.seconds:>7.2f}" if base else f"{'1.00':>7}"
    return (f"{name:<46} {rows:>10,} {b.seconds:>7.2f} {rows / b.seconds:>10,.0f} {b.peak_rss_mb:>8.0f} "
            f"{b.cpu_seconds:>7.2f} {ratio}   (runs: {', '.join(f'{r.seconds:.2f}' for r in runs)})")


HEADER = f"{'scenario':<46} {'rows':>10} {'wall s':>7} {'rows/s':>10} {'RSS MB':>8} {'CPU s':>7} {'vs (a)':>7}"


def compare(rows: int, repeat: int, workdir: Path, name: str, pipe: list[str], pipeline: Path,
            prepare: list[str], before: Path | None) -> None:
    """Best of `repeat` for the pipe and for `osiris run` (and the `before` code), rotating which goes first."""
    contenders = ["a", "b"] + (["c"] if before else [])
    runs: dict[str, list[Run]] = {which: [] for which in contenders}
    for attempt in range(repeat):
        for which in contenders[attempt % len(contenders):] + contenders[:attempt % len(contenders)]:
            for sql in prepare:
                psql(sql)
            if which == "a":
                runs["a"].append(timed(["bash", "-c", " ".join(pipe)], cwd=workdir))
                assert row_count("movies_pipe") == rows, "the pipe did not copy every row"
            else:
                env = osiris_env() if which == "b" or before is None else osiris_env(before)
                runs[which].append(timed(osiris("run", str(pipeline), "--progress", "none"), cwd=workdir, env=env))
                assert row_count("movies_copy") == rows, "osiris did not copy every row"
    print(line(f"(a) {name}: pipe", rows, runs["a"], None))
    print(line(f"(b) {name}: osiris run (cold process)", rows, runs["b"], best(runs["a"])))
    if before:
        print(line(f"(c) {name}: osiris run, --before code", rows, runs["c"], best(runs["a"])))


def startup(repeat: int, before: Path | None) -> None:
    demo = Path(tempfile.mkdtemp(prefix="osiris-p1-demo-"))
    shutil.copytree(REPO / "examples", demo / "examples")
    env = osiris_env()
    timed([sys.executable, "-c", "pass"], cwd=demo)  # warm the interpreter's own files
    print(f"{'command':<46} {'best s':>7} {'RSS MB':>8} {'CPU s':>7}   runs")
    commands = (("python -c pass (the floor)", [sys.executable, "-c", "pass"]),
                ("osiris --help", osiris("--help")), ("osiris --version", osiris("--version")),
                ("osiris run examples/movies_local.yaml", osiris("run", "examples/movies_local.yaml",
                                                                 "--progress", "none")),
                ("… --sandbox local", osiris("run", "examples/movies_local.yaml", "--progress", "none",
                                             "--sandbox", "local")))
    for code, code_env in (("", env), *([(" (--before code)", osiris_env(before))] if before else [])):
        for name, argv in commands:
            runs = [timed(argv, cwd=demo, env=code_env) for _ in range(repeat)]
            b = best(runs)
            print(f"{name + code:<46} {b.seconds:>7.2f} {b.peak_rss_mb:>8.0f} {b.cpu_seconds:>7.2f}   "
                  f"{', '.join(f'{r.seconds:.2f}' for r in runs)}")
    shutil.rmtree(demo, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, action="append", help="rows (repeatable; default 1000000)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each contender; the best counts (default 3)")
    parser.add_argument("--startup", action="store_true", help="also time --help, --version and the embedded demo")
    parser.add_argument("--only", choices=("copy", "upsert", "startup"), default=None,
                        help="one workload only (startup: only the --startup commands)")
    parser.add_argument("--before", type=Path, default=None, metavar="SRC",
                        help="also time the libraries under SRC (e.g. an older checkout's src/python) in the same run")
    args = parser.parse_args()
    if not shutil.which("mariadb") or not shutil.which("psql"):
        print("error: the baseline needs the mariadb and psql clients on PATH", file=sys.stderr)
        return 2
    print(f"# {os.cpu_count()} cores; load average {os.getloadavg()[0]:.1f} at start")
    if args.startup or args.only == "startup":
        startup(args.repeat, args.before)
    if args.only == "startup":
        return 0
    workdir = Path(tempfile.mkdtemp(prefix="osiris-p1-"))
    write_bench_connections(workdir)
    copy_pipeline = write_pipeline(workdir, "p1_copy", "replace")
    upsert_pipeline = write_pipeline(workdir, "p1_upsert", "upsert")
    for src in ([args.before] if args.before else []) + [REPO / "src" / "python"]:
        timed(osiris("compile", str(copy_pipeline)), cwd=workdir, env=osiris_env(src))  # bytecode, as installed
    for rows in args.rows or [1_000_000]:
        print(f"\n## {rows:,} rows\n{HEADER}")
        generate(rows)
        reset_postgres()
        if args.only in (None, "copy"):
            compare(rows, args.repeat, workdir, "copy", pipe_copy("movies_pipe"), copy_pipeline,
                    ["TRUNCATE movies_pipe", "DROP TABLE IF EXISTS movies_copy"], args.before)
        if args.only in (None, "upsert"):
            fill = "INSERT INTO {0} SELECT * FROM movies_pipe ON CONFLICT DO NOTHING"
            psql("TRUNCATE movies_pipe")
            subprocess.run(["bash", "-c", " ".join(pipe_copy("movies_pipe"))], check=True)
            psql(f"DROP TABLE IF EXISTS movies_copy; CREATE TABLE movies_copy ({PG_COLUMNS}); "
                 + fill.format("movies_copy"))
            compare(rows, args.repeat, workdir, "upsert", pipe_upsert(), upsert_pipeline, [], args.before)
        print(f"# load average {os.getloadavg()[0]:.1f} at the end")
    shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
