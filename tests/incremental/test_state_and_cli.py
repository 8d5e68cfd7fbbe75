"""State handling around the reads: refusals, warnings, renamed pipelines, --full-refresh, `osiris state`,
the events and the run card."""

from __future__ import annotations

import json
from typing import Any

import pytest

from osiris_cli.main import main
from tests.incremental.support import Project, card, failed, pg_extract, pg_write, succeeded


def _setup(proj: Project, rows: int = 3) -> list[dict[str, Any]]:
    proj.pg_exec(f"CREATE SCHEMA IF NOT EXISTS {proj.schema}",
                 f"CREATE TABLE {proj.schema}.src (id int PRIMARY KEY, v text, updated_at int)",
                 f"INSERT INTO {proj.schema}.src SELECT g, 'v', g FROM generate_series(1, {rows}) g")
    return [pg_extract("read", proj.schema, "src"), pg_write("load", "read", proj.schema, "dst")]


def _events(proj: Project, run_dir: str) -> list[dict[str, Any]]:
    path = proj.path / "logs" / run_dir / "events.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.mark.parametrize("mode", ["append", "replace"])
def test_a_non_deduplicating_writer_under_an_incremental_read_is_refused_before_anything_runs(
        proj: Project, mode: str) -> None:
    steps = _setup(proj)
    steps[1]["config"]["write_mode"] = mode
    del steps[1]["config"]["primary_key"]
    error = failed(proj.run(steps))
    assert f"writes with write_mode {mode}" in error and "upsert" in error and "\n" not in error
    assert card(proj.run(steps), "load").status == "skipped"
    assert proj.pg_exec(f"SELECT to_regclass('{proj.schema}.dst') IS NULL") == [(True,)]


def test_an_incremental_read_without_a_writer_is_refused(proj: Project) -> None:
    steps = _setup(proj)[:1]
    assert "no writer step is downstream" in failed(proj.run(steps))


def test_a_writer_that_keeps_no_state_is_refused(proj: Project) -> None:
    steps = _setup(proj)
    steps[1] = {"id": "load", "component": "filesystem.csv_writer", "mode": "write", "needs": ["read"],
                "config": {"path": "out.csv"}}
    assert "keeps no incremental state" in failed(proj.run(steps))
    assert not (proj.path / "out.csv").exists()


def test_events_and_card_show_the_cursor_before_and_after(proj: Project) -> None:
    steps = _setup(proj)
    first = succeeded(proj.run(steps))
    inc = card(first, "read").incremental
    assert inc is not None and inc.cursor_before is None and inc.rows_read == 3
    assert json.loads(inc.cursor_after or "") == [["int", "3"]]
    proj.pg_exec(f"INSERT INTO {proj.schema}.src VALUES (4, 'v', 4)")
    second = succeeded(proj.run(steps))
    inc = card(second, "read").incremental
    assert inc is not None and (inc.cursor_before, inc.cursor_after, inc.rows_read) == (
        '[["int","3"]]', '[["int","4"]]', 2)
    events = _events(proj, second.session.id)
    loaded = [e for e in events if e["event"] == "state_loaded"]
    committed = [e for e in events if e["event"] == "state_committed"]
    assert len(loaded) == 1 and loaded[0]["cursor"] == '[["int","3"]]' and loaded[0]["writer"] == "load"
    assert len(committed) == 1 and committed[0]["step_id"] == "load" and committed[0]["source_step"] == "read"
    assert committed[0]["cursor"] == '[["int","4"]]'


def test_no_state_but_a_non_empty_target_is_reported(proj: Project) -> None:
    steps = _setup(proj)
    proj.pg_exec(f"CREATE TABLE {proj.schema}.dst (id int PRIMARY KEY, v text, updated_at int)",
                 f"INSERT INTO {proj.schema}.dst VALUES (99, 'kept', 99)")
    run = succeeded(proj.run(steps))
    loaded = [e for e in _events(proj, run.session.id) if e["event"] == "state_loaded"]
    assert "no incremental state" in loaded[0]["warning"] and "already holds rows" in loaded[0]["warning"]
    assert len(proj.pg_exec(f"SELECT id FROM {proj.schema}.dst")) == 4


def test_a_renamed_pipeline_is_refused_not_silently_reset(proj: Project) -> None:
    steps = _setup(proj)
    succeeded(proj.run(steps, name="orders"))
    error = failed(proj.run(steps, name="orders_v2"))
    assert "pipeline 'orders', not for 'orders_v2'" in error and "renamed" in error
    assert "osiris state reset" in error and "--full-refresh" in error
    # The hint's way out: drop the old name's state, then the renamed pipeline starts afresh.
    proj.write_pipeline(steps, "orders_v2")
    assert main(["state", "reset", "orders_v2.yaml", "--name", "orders"]) == 0
    succeeded(proj.run(steps, name="orders_v2"))


def test_full_refresh_reads_everything_and_replaces_the_target(proj: Project) -> None:
    steps = _setup(proj)
    succeeded(proj.run(steps))
    proj.pg_exec(f"INSERT INTO {proj.schema}.dst VALUES (100, 'stray', 0)",
                 f"DELETE FROM {proj.schema}.src WHERE id = 1")
    refreshed = succeeded(proj.run(steps, full_refresh=True))
    inc = card(refreshed, "read").incremental
    assert inc is not None and inc.full_refresh and inc.cursor_before is None and inc.rows_read == 2
    assert [r[0] for r in proj.pg_exec(f"SELECT id FROM {proj.schema}.dst ORDER BY id")] == [2, 3]
    assert proj.pg_exec(f'SELECT "cursor" FROM {proj.schema}._osiris_state') == [('[["int","3"]]',)]


def test_state_show_reset_and_run_full_refresh_on_the_command_line(
        proj: Project, capsys: pytest.CaptureFixture[str]) -> None:
    steps = _setup(proj)
    proj.write_pipeline(steps)
    capsys.readouterr()
    assert main(["state", "show", "inc.yaml", "--json"]) == 0
    empty = json.loads(capsys.readouterr().out)
    assert empty["pipeline"] == "inc" and [s["cursor"] for s in empty["states"]] == [None]
    assert main(["run", "inc.yaml"]) == 0
    assert 'Incremental: read read 3 rows from cursor (start) to [["int","3"]]' in capsys.readouterr().out
    assert main(["state", "show", "inc.yaml", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)["states"]
    assert len(shown) == 1
    assert set(shown[0]) == {"pipeline", "step", "target", "cursor", "rows", "updated_at", "session"}
    assert (shown[0]["step"], shown[0]["cursor"], shown[0]["rows"]) == ("read", '[["int","3"]]', 3)
    assert main(["state", "show", "inc.yaml"]) == 0
    text = capsys.readouterr().out
    assert "pipeline" in text.splitlines()[0] and '[["int","3"]]' in text
    assert main(["state", "reset", "inc.yaml", "--step", "nope"]) == 2
    assert "no incremental step" in capsys.readouterr().err
    assert main(["state", "reset", "inc.yaml", "--step", "read", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["reset"] == 1
    assert main(["run", "inc.yaml", "--full-refresh", "--json"]) == 0
    run = json.loads(capsys.readouterr().out)
    read = next(s for s in run["steps"] if s["step_id"] == "read")
    assert read["incremental"]["full_refresh"] is True and read["incremental"]["rows_read"] == 3


def test_bad_incremental_config_fails_at_compile_time_with_one_line(
        proj: Project, capsys: pytest.CaptureFixture[str]) -> None:
    steps = _setup(proj)
    steps[0]["config"]["incremental"]["on_null_cursor"] = "sometimes"
    proj.write_pipeline(steps)
    assert main(["compile", "inc.yaml"]) == 2
    err = capsys.readouterr().err.strip()
    assert "on_null_cursor" in err and len(err.splitlines()) == 1
    steps[0]["config"]["incremental"] = {"cursor": ["a", "b"], "initial_value": 1}
    proj.write_pipeline(steps)
    assert main(["compile", "inc.yaml"]) == 2
    assert "initial_value has 1 values for 2 cursor columns" in capsys.readouterr().err


def test_dry_run_shows_where_the_incremental_read_starts(proj: Project, capsys: pytest.CaptureFixture[str]) -> None:
    steps = _setup(proj)
    proj.write_pipeline(steps)

    def planned(*flags: str) -> str:
        capsys.readouterr()
        assert main(["run", "inc.yaml", "--dry-run", "--json", *flags]) == 0
        plan = json.loads(capsys.readouterr().out)
        assert next(s for s in plan["steps"] if s["step"] == "load")["incremental"] == "full"
        return str(next(s for s in plan["steps"] if s["step"] == "read")["incremental"])

    assert planned() == "full (no state yet)"
    succeeded(proj.run(steps))
    assert planned() == 'from [["int","3"]]'
    assert planned("--full-refresh") == "full (--full-refresh)"
