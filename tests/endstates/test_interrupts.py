"""SIGINT and SIGTERM stop a run within seconds in every phase: rolled back, the card `interrupted`, "interrupted"
printed, exit code 130 (issue 9, finding 3). Each test runs the real CLI in a subprocess and sends the signal once
the run reached the phase (seen in its events.jsonl)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO_ROOT
from tests.endstates.sql_targets import Target
from tests.support.databases import MySQLDatabase, PostgresDatabase

Events = list[dict[str, Any]]
BIG = "SELECT i AS id, md5(CAST(i AS VARCHAR)) AS label FROM range(30000000) t(i)"
"""Far more rows than a test waits for: the run is always mid-load when the signal comes."""
STOP_BOUND_S = 15
"""'Stops within a few seconds', generously: a correctness bound, not a benchmark."""


def events(project: Path) -> Events:
    sessions = sorted((project / "logs").glob("run_*"))
    if not sessions or not (sessions[-1] / "events.jsonl").is_file():
        return []
    lines = (sessions[-1] / "events.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.endswith("}")]


def card(project: Path) -> dict[str, Any]:
    session = sorted((project / "logs").glob("run_*"))[-1]
    return dict(json.loads((session / "run_card.json").read_text(encoding="utf-8")))


def progressed(step_id: str, rows: int = 1) -> Callable[[Events], bool]:
    """The step reported moving at least `rows` rows."""
    return lambda evs: any(e["event"] == "step_progress" and e["step_id"] == step_id and (e.get("rows") or 0) >= rows
                           for e in evs)


def started(step_id: str) -> Callable[[Events], bool]:
    return lambda evs: any(e["event"] == "step_start" and e["step_id"] == step_id for e in evs)


def interrupt(project: Path, steps: list[dict[str, Any]], ready: Callable[[Events], bool], sig: signal.Signals,
              *flags: str) -> tuple[int, str, float]:
    """Run the pipeline with the CLI, send `sig` once `ready(events)`; exit code, output, seconds to stop."""
    (project / "p.yaml").write_text(json.dumps({"oml_version": "0.1.0", "name": "stop", "steps": steps}))
    env = {**os.environ, "PYTHONPATH": f"{REPO_ROOT / 'src/python'}{os.pathsep}{REPO_ROOT}"}
    process = subprocess.Popen([sys.executable, "-m", "osiris_cli.main", "run", "p.yaml", "--progress", "plain",
                                *flags], cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while not ready(events(project)):
            assert process.poll() is None, process.communicate()[0].decode()
            assert time.monotonic() < deadline, "the run never reached the phase"
            time.sleep(0.05)
        sent = time.monotonic()
        process.send_signal(sig)
        output, _ = process.communicate(timeout=60)
        return process.returncode, output.decode(errors="replace"), time.monotonic() - sent
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def assert_interrupted(project: Path, code: int, output: str, elapsed: float, sig: signal.Signals) -> dict[str, Any]:
    assert code == 130, output
    assert "interrupted" in output
    assert "Traceback" not in output
    assert elapsed < STOP_BOUND_S, f"took {elapsed:.1f} s to stop"
    run_card = card(project)
    assert run_card["status"] == "interrupted" and run_card["exit_code"] == 130
    assert run_card["error"].startswith(f"interrupted ({sig.name})")
    status = json.loads((sorted((project / "logs").glob("run_*"))[-1] / "status.json").read_text())
    assert status["status"] == "interrupted"
    return run_card


@pytest.fixture
def mysql_target(project: Path, mysql_db: MySQLDatabase, pg_db: PostgresDatabase) -> Target:
    return Target.make("mysql.writer", project, mysql_db, pg_db)


@pytest.fixture
def pg_target(project: Path, mysql_db: MySQLDatabase, pg_db: PostgresDatabase) -> Target:
    return Target.make("postgres.writer", project, mysql_db, pg_db)


def generate(query: str = BIG) -> dict[str, Any]:
    return {"id": "gen", "component": "duckdb.processor", "mode": "transform", "config": {"query": query}}


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
@pytest.mark.parametrize("mode", ["append", "replace"])
def test_a_signal_during_load_data_rolls_back_the_mysql_writer(project: Path, mysql_target: Target,
                                                              sig: signal.Signals, mode: str) -> None:
    mysql_target.connections()
    mysql_target.create("id BIGINT PRIMARY KEY, label VARCHAR(40)", "(1, 'before')")

    def loading(evs: Events) -> bool:  # the server is running the LOAD DATA (the writer's progress may come later)
        return started("write")(evs) and bool(mysql_target.sql(
            "SELECT id FROM information_schema.processlist WHERE info LIKE 'LOAD DATA%' "
            f"AND info LIKE '%{mysql_target.table}%'"))

    code, output, elapsed = interrupt(project, [generate(), mysql_target.step("write", "gen", write_mode=mode)],
                                      loading, sig)
    run_card = assert_interrupted(project, code, output, elapsed, sig)
    assert [s["status"] for s in run_card["steps"]][-1] == "failed"
    assert mysql_target.rows() == [(1, "before")]
    assert mysql_target.sql(f"SHOW TABLES LIKE '{mysql_target.table}%'") == [(mysql_target.table,)]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_during_copy_rolls_back_the_postgres_writer(project: Path, pg_target: Target,
                                                            sig: signal.Signals) -> None:
    pg_target.connections()
    pg_target.create("id BIGINT PRIMARY KEY, label TEXT", "(1, 'before')")
    code, output, elapsed = interrupt(project, [generate(), pg_target.step("write", "gen")],
                                      progressed("write", 200_000), sig)
    assert_interrupted(project, code, output, elapsed, sig)
    assert "COPY" not in card(project)["error"]
    assert pg_target.rows() == [(1, "before")]


def test_a_signal_during_a_long_postgres_statement_cancels_it(project: Path, pg_target: Target) -> None:
    """An upsert's merge runs server-side: the signal cancels it there (connection.cancel) instead of waiting."""
    pg_target.connections()
    pg_target.create("id BIGINT PRIMARY KEY, label TEXT", "(1, 'before')")
    slow = ("SELECT i AS id, CASE WHEN i = 1 THEN 'x' ELSE 'y' END AS label FROM range(3) t(i)")
    steps = [generate(slow), pg_target.step("write", "gen", write_mode="upsert", primary_key=["id"])]
    # pg_sleep in a trigger keeps the merge running server-side for a long time.
    pg_target.sql(f"CREATE FUNCTION {pg_target.table}_slow() RETURNS trigger LANGUAGE plpgsql AS "
                  "$$BEGIN PERFORM pg_sleep(60); RETURN NEW; END$$",
                  f"CREATE TRIGGER slow BEFORE INSERT OR UPDATE ON {pg_target.table} FOR EACH ROW EXECUTE FUNCTION "
                  f"{pg_target.table}_slow()")

    def merging(evs: Events) -> bool:
        return started("write")(evs) and bool(pg_target.sql(
            "SELECT 1 FROM pg_stat_activity WHERE wait_event = 'PgSleep' AND query LIKE 'INSERT INTO%'"))

    code, output, elapsed = interrupt(project, steps, merging, signal.SIGINT)
    assert_interrupted(project, code, output, elapsed, signal.SIGINT)
    assert pg_target.rows() == [(1, "before")]


def test_a_signal_during_extraction_stops_the_run(project: Path, mysql_target: Target) -> None:
    rows = project / "big.csv"
    with rows.open("w", encoding="utf-8") as handle:
        handle.write("id,label\n")
        handle.writelines(f"{i},row {i}\n" for i in range(3_000_000))
    steps = [{"id": "ext", "component": "filesystem.csv_extractor", "mode": "read", "config": {"path": "big.csv"}},
             {"id": "slow", "component": "duckdb.processor", "mode": "transform", "needs": ["ext"],
              "config": {"query": "SELECT id, label FROM input_df ORDER BY md5(label || id) DESC"}},
             {"id": "out", "component": "filesystem.csv_writer", "mode": "write", "needs": ["slow"],
              "config": {"path": "out.csv"}}]
    code, output, elapsed = interrupt(project, steps, started("slow"), signal.SIGINT)
    run_card = assert_interrupted(project, code, output, elapsed, signal.SIGINT)
    assert [s["status"] for s in run_card["steps"]][-1] == "skipped"
    assert not (project / "out.csv").exists()


def test_an_early_signal_still_leaves_a_card(project: Path) -> None:
    steps = [generate("SELECT 1 AS id"), {"id": "out", "component": "filesystem.csv_writer", "mode": "write",
                                          "needs": ["gen"], "config": {"path": "out.csv"}}]
    code, output, elapsed = interrupt(project, steps, lambda evs: bool(evs), signal.SIGINT)
    if code == 0:  # the run was faster than the signal: then it says so, honestly
        assert card(project)["status"] == "succeeded"
        return
    assert_interrupted(project, code, output, elapsed, signal.SIGINT)


def test_a_run_whose_write_committed_says_so(project: Path, pg_target: Target) -> None:
    pg_target.connections()
    steps = [generate("SELECT 1 AS id"), pg_target.step("write", "gen"),
             generate("SELECT sum(hash(i)) AS h FROM range(4000000000) t(i)") | {"id": "spin"}]
    code, output, elapsed = interrupt(project, steps, started("spin"), signal.SIGTERM)
    run_card = assert_interrupted(project, code, output, elapsed, signal.SIGTERM)
    assert "step(s) ['write'] had already committed their writes" in run_card["error"]
    assert [s["status"] for s in run_card["steps"]] == ["succeeded", "succeeded", "failed"]
    assert pg_target.rows() == [(1,)]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_during_a_sandbox_run_stops_the_worker_and_rolls_back(project: Path, pg_target: Target,
                                                                       sig: signal.Signals) -> None:
    """The host asks the worker to stop and takes its last events: the worker's write rolls back, and the host's
    card says interrupted with the worker's step states."""
    pg_target.connections()
    pg_target.create("id BIGINT PRIMARY KEY, label TEXT", "(1, 'before')")
    code, output, elapsed = interrupt(project, [generate(), pg_target.step("write", "gen")],
                                      progressed("write", 200_000), sig, "--sandbox", "local")
    run_card = assert_interrupted(project, code, output, elapsed, sig)
    assert run_card["execution"]["mode"] == "sandbox"
    assert run_card["execution"]["sandbox_session"], "the worker stopped and reported; it was not killed"
    assert [s["status"] for s in run_card["steps"]] == ["succeeded", "failed"]
    assert run_card["steps"][1]["error"].startswith(f"interrupted ({sig.name})")
    assert pg_target.rows() == [(1, "before")]


def test_a_sandbox_run_whose_write_committed_says_so(project: Path, pg_target: Target) -> None:
    pg_target.connections()
    steps = [generate("SELECT 1 AS id"), pg_target.step("write", "gen"),
             generate("SELECT sum(hash(i)) AS h FROM range(4000000000) t(i)") | {"id": "spin"}]
    code, output, elapsed = interrupt(project, steps, started("spin"), signal.SIGINT, "--sandbox", "local")
    run_card = assert_interrupted(project, code, output, elapsed, signal.SIGINT)
    assert "step(s) ['write'] had already committed their writes" in run_card["error"]
    assert [s["status"] for s in run_card["steps"]] == ["succeeded", "succeeded", "failed"]
    assert pg_target.rows() == [(1,)]
