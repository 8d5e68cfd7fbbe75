"""Benchmark P1 as a user runs it: a cold `osiris run` process against the raw pipe, in the same run.

Run from the repository root, with MariaDB and PostgreSQL running as `.ci/run` starts them:

    PYTHONPATH=src/python:. python bench/p1.py --rows 1000000 --rows 10000000

For each size it generates N movie-like rows (11 columns, `bench/copy_bench.py`) in MariaDB, then times, best of
--repeat (alternating the order of the contenders in each round):

- **copy**: (a) `mariadb --quick -B -N -e 'SELECT * …' | psql -c '\\copy … FROM STDIN'` against (b) a fresh
  `python -m osiris_cli.main run p1_copy.yaml` process (`mysql.extractor` → `postgres.writer`, `replace`);
- **upsert**, **scd2**, **incremental** (`bench/write_modes.py`): (a) the hand-written SQL — the text pipe into
  an unlogged staging table, then the statements a person would write, in one psql session — against (b)
  `osiris run` with `write_mode: upsert`, `write_mode: scd2`, and an `incremental:` extractor feeding an upsert;
  every run starts from the same target (rebuilt from a seed, vacuumed, after a CHECKPOINT);
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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench import write_modes as modes
from bench.copy_bench import (
    MYSQL_DATABASE,
    MYSQL_HOST,
    MYSQL_USER,
    PG_DSN,
    clients_on_path,
    generate,
    reset_postgres,
    row_count,
)
from bench.copy_bench import write_connections as write_bench_connections

REPO = Path(__file__).resolve().parents[1]

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


def psql(sql: str) -> None:
    subprocess.run(["psql", "-q", "-v", "ON_ERROR_STOP=1", PG_DSN, "-c", f"SET client_min_messages = warning; {sql}"],
                   check=True, stdout=subprocess.DEVNULL)


def pipe_copy(target: str) -> list[str]:
    mariadb = f"mariadb --quick -B -N -h {MYSQL_HOST} -u {MYSQL_USER} {MYSQL_DATABASE} -e 'SELECT * FROM movies_big'"
    return [mariadb, "|", "psql", "-q", "-v", "ON_ERROR_STOP=1", PG_DSN, "-c", f"'\\copy {target} FROM STDIN'"]


def best(runs: list[Run]) -> Run:
    return min(runs, key=lambda r: r.seconds)


def line(name: str, rows: int, runs: list[Run], base: Run | None) -> str:
    b = best(runs)
    ratio = f"{b.seconds / base.seconds:>7.2f}" if base else f"{'1.00':>7}"
    return (f"{name:<58} {rows:>10,} {b.seconds:>7.2f} {rows / b.seconds:>10,.0f} {b.peak_rss_mb:>8.0f} "
            f"{b.cpu_seconds:>7.2f} {ratio}   (runs: {', '.join(f'{r.seconds:.2f}' for r in runs)})")


HEADER = f"{'scenario':<58} {'rows':>10} {'wall s':>7} {'rows/s':>10} {'RSS MB':>8} {'CPU s':>7} {'vs (a)':>7}"


def compare(rows: int, repeat: int, workdir: Path, name: str, pipe: list[str], pipeline: Path,
            prepare: Callable[[str], None], check: Callable[[str], None], before: Path | None) -> None:
    """Best of `repeat` for the pipe and for `osiris run` (and the `before` code), rotating which goes first.
    `prepare(which)` runs before each run of contender `which` ("a": the pipe, "b": Osiris, "c": before) and
    `check(which)` after it."""
    contenders = ["a", "b"] + (["c"] if before else [])
    runs: dict[str, list[Run]] = {which: [] for which in contenders}
    for attempt in range(repeat):
        for which in contenders[attempt % len(contenders):] + contenders[:attempt % len(contenders)]:
            prepare(which)
            if which == "a":
                runs["a"].append(timed(["bash", "-c", " ".join(pipe)], cwd=workdir))
            else:
                env = osiris_env() if which == "b" or before is None else osiris_env(before)
                runs[which].append(timed(osiris("run", str(pipeline), "--progress", "none"), cwd=workdir, env=env))
            check(which)
    print(line(f"(a) {name}: hand-written" if name != "copy" else f"(a) {name}: pipe", rows, runs["a"], None))
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


def workloads(rows: int, every: int, only: str | None, repeat: int, workdir: Path, pipelines: dict[str, Path],
              before: Path | None) -> None:
    """The copy and write-mode workloads for N rows (every `every`-th row changed for scd2 and incremental)."""
    generate(rows)
    reset_postgres()

    def copied(which: str) -> None:
        assert row_count("movies_pipe" if which == "a" else "movies_copy") == rows, f"{which}: rows missing"

    if only in (None, "copy"):
        compare(rows, repeat, workdir, "copy", pipe_copy("movies_pipe"), pipelines["replace"],
                lambda which: psql("TRUNCATE movies_pipe; DROP TABLE IF EXISTS movies_copy"), copied, before)
    if only in (None, "upsert"):
        modes.upsert_setup(rows)
        compare(rows, repeat, workdir, "upsert", modes.upsert_pipe(), pipelines["upsert"],
                lambda which: modes.restore("movies_pipe" if which == "a" else "movies_copy", "upsert_seed"),
                copied, before)
    if only in (None, "scd2"):
        hand, target = modes.SCD2_HAND, modes.SCD2_TARGET
        modes.scd2_setup(rows, every, osiris("run", str(pipelines["scd2"]), "--progress", "none"), osiris_env(),
                         workdir)
        compare(rows, repeat, workdir, f"scd2 ({rows // every:,} changed)", modes.scd2_pipe(), pipelines["scd2"],
                lambda which: modes.restore(hand if which == "a" else target,
                                            "scd2_hand_seed" if which == "a" else "scd2_seed"),
                lambda which: modes.scd2_check(hand if which == "a" else target, rows, every), before)
    if only in (None, "incremental"):
        hand, target = modes.INCR_HAND, modes.INCR_TARGET
        modes.incremental_setup(rows, every, osiris("run", str(pipelines["incremental"]), "--progress", "none"),
                                osiris_env(), workdir)
        compare(rows, repeat, workdir, f"incremental ({rows // every:,} changed)", modes.incremental_pipe(),
                pipelines["incremental"], modes.incremental_restore,
                lambda which: modes.incremental_check(hand if which == "a" else target, every), before)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, action="append", help="rows (repeatable; default 1000000)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each contender; the best counts (default 3)")
    parser.add_argument("--startup", action="store_true", help="also time --help, --version and the embedded demo")
    parser.add_argument("--changed", type=float, default=0.01,
                        help="scd2 and incremental: the fraction of rows that changed (default 0.01)")
    parser.add_argument("--only", choices=("copy", "upsert", "scd2", "incremental", "startup"), default=None,
                        help="one workload only (startup: only the --startup commands)")
    parser.add_argument("--before", type=Path, default=None, metavar="SRC",
                        help="also time the libraries under SRC (e.g. an older checkout's src/python) in the same run")
    args = parser.parse_args()
    if not clients_on_path():
        return 2
    print(f"# {os.cpu_count()} cores; load average {os.getloadavg()[0]:.1f} at start")
    if args.startup or args.only == "startup":
        startup(args.repeat, args.before)
    if args.only == "startup":
        return 0
    workdir = Path(tempfile.mkdtemp(prefix="osiris-p1-"))
    write_bench_connections(workdir)
    pipelines = {mode: modes.osiris_pipeline(workdir, f"p1_{mode}", "movies_big", "movies_copy", mode)
                 for mode in ("replace", "upsert")}
    pipelines["scd2"] = modes.osiris_pipeline(workdir, "p1_scd2", "movies_big", modes.SCD2_TARGET, "scd2")
    pipelines["incremental"] = modes.osiris_pipeline(workdir, "p1_incremental", modes.INCR_SOURCE,
                                                     modes.INCR_TARGET, "upsert", incremental=True)
    for src in ([args.before] if args.before else []) + [REPO / "src" / "python"]:
        timed(osiris("compile", str(pipelines["replace"])), cwd=workdir, env=osiris_env(src))  # bytecode
    every = max(1, round(1 / args.changed))
    for rows in args.rows or [1_000_000]:
        print(f"\n## {rows:,} rows\n{HEADER}")
        workloads(rows, every, args.only, args.repeat, workdir, pipelines, args.before)
        print(f"# load average {os.getloadavg()[0]:.1f} at the end")
    shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
