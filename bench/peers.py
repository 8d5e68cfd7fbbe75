"""Benchmark: the P1 workload through Osiris and its peers, timed in the same run against the raw pipe.

Run from the repository root, with MariaDB and PostgreSQL running as `.ci/run` starts them:

    PYTHONPATH=src/python:. python bench/peers.py --rows 1000000

The peers come from PyPI into their own virtual environment under ~/.cache/osiris-bench/peers-venv (created on
first use; never the project's lockfile): dlt (`sql_database` source with the pyarrow and the connectorx
backends → the postgres destination) and Sling (`sling run` MySQL → PostgreSQL, full refresh). A peer that
cannot be installed or fails is reported as such and the others still run.

Each contender copies the N-row `movies_big` table of `bench/copy_bench.py` from MariaDB into a fresh
PostgreSQL table, as a cold process, best of --repeat (rotating the order each round): wall seconds, rows/s,
peak RSS (GNU time) and the ratio to the raw pipe. Nothing here runs in CI.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.copy_bench import (
    MYSQL_DATABASE,
    MYSQL_HOST,
    MYSQL_PORT,
    MYSQL_USER,
    PG_DATABASE,
    clients_on_path,
    generate,
    reset_postgres,
    row_count,
    write_connections,
)
from bench.p1 import Run, osiris, osiris_env, pipe_copy, psql, timed
from bench.write_modes import osiris_pipeline

CACHE = Path(os.environ.get("OSIRIS_BENCH_CACHE", Path.home() / ".cache" / "osiris-bench"))
VENV = CACHE / "peers-venv"
PEER_PACKAGES = ("dlt[postgres,sql_database,parquet]", "sqlalchemy", "connectorx", "sling-linux-amd64", "pymysql")
"""`sling-linux-amd64` is Sling's binary as a wheel (the `sling` package would download it from GitHub)."""
SLING_BINARY = "sling_linux_amd64/bin/sling-linux-amd64"
MYSQL_URL = f"mysql+pymysql://{MYSQL_USER}@{MYSQL_HOST}:{MYSQL_PORT}/{MYSQL_DATABASE}"
PG_URL = f"postgresql://root@127.0.0.1:5432/{PG_DATABASE}"
DLT_PG_URL = f"postgresql://root:trust@127.0.0.1:5432/{PG_DATABASE}"
"""dlt insists on a password; the server trusts local connections and ignores it."""

DLT_SCRIPT = """
import sys, dlt
from dlt.sources.sql_database import sql_table
backend = sys.argv[1]
table = sql_table(credentials=sys.argv[2], table="movies_big", backend=backend, chunk_size=100_000,
                  reflection_level="full_with_precision")
destination = dlt.destinations.postgres(credentials=sys.argv[3])
pipeline = dlt.pipeline(pipeline_name="p1_" + backend, destination=destination,
                        dataset_name="peer_dlt_" + backend, pipelines_dir=sys.argv[4])
info = pipeline.run(table, write_disposition="replace", table_name="movies_copy", loader_file_format="csv")
info.raise_on_failed_jobs()
"""


@dataclass(frozen=True)
class Peer:
    name: str
    command: Callable[[Path], list[str]]
    target: str
    """The table the peer writes (schema-qualified), counted after each run."""
    env: Callable[[Path], dict[str, str]]


def venv_python() -> Path:
    return VENV / "bin" / "python"


def ensure_peers() -> dict[str, str]:
    """Create the peers' venv and install them from PyPI (once); what could not be installed, and why."""
    problems: dict[str, str] = {}
    if not venv_python().exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    for package in PEER_PACKAGES:
        module = {"dlt[postgres,sql_database,parquet]": "dlt"}.get(package, package.replace("-", "_"))
        found = subprocess.run([str(venv_python()), "-c", f"import {module}"], capture_output=True, check=False)
        if found.returncode == 0:
            continue
        done = subprocess.run([str(venv_python()), "-m", "pip", "install", "-q", package], capture_output=True,
                              text=True, check=False)
        if done.returncode != 0:
            problems[package] = (done.stderr.strip().splitlines() or ["pip failed"])[-1]
    return problems


def peer_env(workdir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env.update(HOME=str(workdir / "home"), DLT_DATA_DIR=str(workdir / "dlt"), SLING_HOME_DIR=str(workdir / "sling"),
               RUNTIME__LOG_LEVEL="WARNING", PROGRESS="log", DLT_TELEMETRY_DISABLED="1",
               RUNTIME__DLTHUB_TELEMETRY="false", SLING_DISABLE_TELEMETRY="true")
    (workdir / "home").mkdir(exist_ok=True)
    return env


def dlt_peer(backend: str) -> Peer:
    def command(workdir: Path) -> list[str]:
        return [str(venv_python()), "-c", DLT_SCRIPT, backend, MYSQL_URL, DLT_PG_URL, str(workdir / "dlt")]
    return Peer(f"dlt sql_database ({backend}) → postgres", command, f"peer_dlt_{backend}.movies_copy", peer_env)


def sling_peer() -> Peer:
    def command(workdir: Path) -> list[str]:
        replication = {"source": "MYSQL", "target": "PG", "defaults": {"mode": "full-refresh"},
                       "streams": {f"{MYSQL_DATABASE}.movies_big": {"object": "peer_sling.movies_copy"}}}
        path = workdir / "sling.json"
        path.write_text(json.dumps(replication))
        sling = next(VENV.glob(f"lib/python3*/site-packages/{SLING_BINARY}"))
        sling.chmod(0o755)
        return [str(sling), "run", "-r", str(path)]

    def env(workdir: Path) -> dict[str, str]:
        base = peer_env(workdir)
        base.update(MYSQL=f"mysql://{MYSQL_USER}@{MYSQL_HOST}:{MYSQL_PORT}/{MYSQL_DATABASE}",
                    PG=f"{PG_URL}?sslmode=disable")
        return base
    return Peer("sling run (full-refresh)", command, "peer_sling.movies_copy", env)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, action="append", help="rows (repeatable; default 1000000)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each contender; the best counts (default 3)")
    args = parser.parse_args()
    if not clients_on_path():
        return 2
    problems = ensure_peers()
    for package, why in problems.items():
        print(f"# {package} could not be installed from PyPI ({why}); its rows are left out")
    peers = []
    if not any(p.startswith("dlt") for p in problems):
        peers.append(dlt_peer("pyarrow"))
        if "connectorx" not in problems:
            peers.append(dlt_peer("connectorx"))
    if "sling-linux-amd64" not in problems:
        peers.append(sling_peer())
    workdir = Path(tempfile.mkdtemp(prefix="osiris-peers-"))
    write_connections(workdir)
    pipeline = osiris_pipeline(workdir, "p1_copy", "movies_big", "movies_copy", "replace")
    print(f"# {os.cpu_count()} cores; load average {os.getloadavg()[0]:.1f} at start")
    for rows in args.rows or [1_000_000]:
        generate(rows)
        reset_postgres()
        names = ["pipe", "osiris", *(p.name for p in peers)]
        runs: dict[str, list[Run]] = {name: [] for name in names}
        failed: dict[str, str] = {}
        for attempt in range(args.repeat):
            for name in names[attempt % len(names):] + names[:attempt % len(names)]:
                if name in failed:
                    continue
                if name == "pipe":
                    psql("TRUNCATE movies_pipe")
                    runs[name].append(timed(["bash", "-c", " ".join(pipe_copy("movies_pipe"))], cwd=workdir))
                    continue
                if name == "osiris":
                    psql("DROP TABLE IF EXISTS movies_copy")
                    runs[name].append(timed(osiris("run", str(pipeline), "--progress", "none"), cwd=workdir,
                                            env=osiris_env()))
                    assert row_count("movies_copy") == rows
                    continue
                peer = next(p for p in peers if p.name == name)
                schema = peer.target.split(".")[0]  # a fresh full load: no table, no state from an earlier run
                psql(f"DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}")
                shutil.rmtree(workdir / "dlt", ignore_errors=True)
                try:
                    runs[name].append(timed(peer.command(workdir), cwd=workdir, env=peer.env(workdir)))
                    counted = row_count(peer.target)
                    if counted != rows:
                        failed[name] = f"copied {counted} rows, not {rows}"
                except SystemExit as exc:
                    failed[name] = str(exc)
        base = min(runs["pipe"], key=lambda r: r.seconds)
        print(f"\n## {rows:,} rows\n{'contender':<40} {'wall s':>7} {'rows/s':>10} {'RSS MB':>8} {'CPU s':>7} "
              f"{'vs pipe':>8}   runs")
        for name in names:
            if name in failed:
                print(f"{name:<40} failed: {failed[name][:150]}")
                continue
            b = min(runs[name], key=lambda r: r.seconds)
            print(f"{name:<40} {b.seconds:>7.2f} {rows / b.seconds:>10,.0f} {b.peak_rss_mb:>8.0f} "
                  f"{b.cpu_seconds:>7.2f} {b.seconds / base.seconds:>8.2f}   "
                  f"{', '.join(f'{r.seconds:.2f}' for r in runs[name])}")
        print(f"# load average {os.getloadavg()[0]:.1f} at the end")
    shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
