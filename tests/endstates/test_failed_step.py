"""The step whose code raised is the failed step, even when its error surfaces while a later step reads its stream;
the steps that read it fail with "upstream step X failed" and the target is unchanged (issue 9, finding 1)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from osiris_cli.main import main
from osiris_core.connections import Connections
from osiris_core.registry import ComponentRegistry
from osiris_core.runner import RunResult
from tests.support.databases import MySQLDatabase, PostgresDatabase
from tests.support.mysql_env import Env, sql, write_mysql
from tests.support.runs import extract_csv, run_pipeline, write_csv

LATE_CAST = ("SELECT i AS id, CAST(CASE WHEN i = 900000 THEN 'x' ELSE CAST(i AS VARCHAR) END AS INTEGER) AS v "
             "FROM range(1000000) t(i)")
LATE_ERROR = "SELECT i AS id, CASE WHEN i = 900000 THEN error('division by zero on row 900000') ELSE i END AS v " \
             "FROM range(1000000) t(i)"


def process(step_id: str, query: str, *needs: str) -> dict[str, Any]:
    return {"id": step_id, "component": "duckdb.processor", "mode": "transform", "needs": list(needs),
            "config": {"query": query}}


def statuses(run: RunResult) -> dict[str, tuple[str, str | None]]:
    return {card.step_id: (card.status, card.error) for card in run.card.steps}


def assert_blamed(run: RunResult, culprit: str, cause: str, downstream: list[str],
                  skipped: tuple[str, ...] = ()) -> None:
    cards = statuses(run)
    assert run.card.status == "failed" and run.exit_code == 1
    status, error = cards[culprit]
    assert status == "failed", cards
    assert error is not None and error.startswith(f"step '{culprit}':") and cause in error
    for step_id in downstream:
        status, error = cards[step_id]
        assert status == "failed", cards
        assert error is not None and f"upstream step '{culprit}' failed" in error
    assert [cards[step_id] for step_id in skipped] == [("skipped", None)] * len(skipped)
    assert run.card.error is not None and run.card.error.startswith(f"step '{culprit}':")


@pytest.mark.parametrize(("query", "cause"), [(LATE_CAST, "Could not convert string 'x' to INT32"),
                                          (LATE_ERROR, "division by zero on row 900000")], ids=["cast", "error"])
def test_a_processor_error_on_a_late_row_fails_the_processor_not_the_mysql_writer(
        env: Env, mysql_db: MySQLDatabase, query: str, cause: str) -> None:
    sql(mysql_db, "DROP TABLE IF EXISTS es_late", "CREATE TABLE es_late (id BIGINT PRIMARY KEY, v BIGINT)",
        "INSERT INTO es_late VALUES (1, 1)")
    run = env.run([process("gen", query), write_mysql("write", "gen", "es_late", write_mode="replace")])
    assert_blamed(run, "gen", cause, ["write"])
    assert sql(mysql_db, "SELECT id, v FROM es_late") == [(1, 1)]


def test_a_processor_error_on_a_late_row_fails_the_processor_not_the_postgres_writer(
        project: Path, registry: ComponentRegistry, pg_db: PostgresDatabase) -> None:
    (project / "osiris_connections.yaml").write_text(json.dumps({"connections": {"postgres": {"test": {
        "host": pg_db.host, "port": pg_db.port, "database": pg_db.database, "user": pg_db.user}}}}))
    with pg_db.connect() as con, con.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS es_late; CREATE TABLE es_late (id BIGINT PRIMARY KEY, v BIGINT);"
                       "INSERT INTO es_late VALUES (1, 1)")
    writer = {"id": "write", "component": "postgres.writer", "mode": "write", "needs": ["gen"],
              "config": {"connection": "@postgres.test", "table": "es_late", "write_mode": "append"}}
    run = run_pipeline(registry, project, [process("gen", LATE_CAST), writer],
                       connections=Connections.load(project / "osiris_connections.yaml"))
    assert_blamed(run, "gen", "Could not convert string 'x' to INT32", ["write"])
    with pg_db.connect() as con, con.cursor() as cursor:
        cursor.execute("SELECT id, v FROM es_late")
        assert cursor.fetchall() == [(1, 1)]


def late_bad_csv(path: Path) -> None:
    with path.open("w", encoding="utf-8") as handle:
        handle.write("id,v\n")
        handle.writelines(f"{i},{'x' if i == 900000 else i}\n" for i in range(1000000))


def test_an_extractor_stream_failing_mid_read_fails_the_extractor_and_every_step_reading_it(
        env: Env, mysql_db: MySQLDatabase, project: Path) -> None:
    late_bad_csv(project / "late.csv")
    run = env.run([extract_csv("ext", "late.csv"), process("proc", "SELECT * FROM input_df", "ext"),
                   write_mysql("write", "proc", "es_never")])
    # DuckDB reads its input while it runs the query: the processor fails then, the writer never starts.
    assert_blamed(run, "ext", "invalid value 'x'", ["proc"], skipped=("write",))
    assert sql(mysql_db, "SHOW TABLES LIKE 'es_never%'") == []


def test_an_extractor_stream_failing_while_the_writer_reads_it_fails_the_extractor(
        env: Env, mysql_db: MySQLDatabase, project: Path) -> None:
    late_bad_csv(project / "late.csv")
    run = env.run([extract_csv("ext", "late.csv"), write_mysql("write", "ext", "es_never")])
    assert_blamed(run, "ext", "invalid value 'x'", ["write"])
    assert sql(mysql_db, "SHOW TABLES LIKE 'es_never%'") == []
    events = [json.loads(line) for line in (run.session.path / "events.jsonl").read_text().splitlines()]
    assert [e["step_id"] for e in events if e["event"] == "step_failed"] == ["ext", "write"]
    assert [e["step_id"] for e in events if e["event"] == "step_complete"] == ["ext"]


def test_the_sandbox_reports_the_same_failed_step(project: Path) -> None:
    (project / "p.yaml").write_text(json.dumps({"oml_version": "0.1.0", "name": "late", "steps": [
        process("gen", LATE_CAST), write_csv("out", "gen", "o.csv")]}))
    cards = []
    for flags in ([], ["--sandbox", "local"]):
        assert main(["run", "p.yaml", *flags]) == 1
        session = sorted((project / "logs").glob("run_*"))[-1]
        cards.append(json.loads((session / "run_card.json").read_text()))
    for card in cards:
        assert [(s["step_id"], s["status"]) for s in card["steps"]] == [("gen", "failed"), ("out", "failed")]
        assert "Could not convert string 'x' to INT32" in card["steps"][0]["error"]
        assert "upstream step 'gen' failed" in card["steps"][1]["error"]
    assert [s["error"] for s in cards[0]["steps"]] == [s["error"] for s in cards[1]["steps"]]
