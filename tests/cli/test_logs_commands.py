"""`osiris logs list` (columns and filters), `osiris logs show` and `osiris logs gc` on real and hand-made sessions."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from osiris_cli.main import main
from tests.conftest import REPO_ROOT

OLD = 1_000_000_000  # 2001: an mtime long past


def _card(session: str, pipeline: str, status: str, execution: dict[str, object] | None = None) -> str:
    return json.dumps({"session_id": session, "pipeline": pipeline, "status": status,
                       "exit_code": 0 if status == "succeeded" else 1, "duration_ms": 1234,
                       "driver_code_sha256": "0" * 64, "manifest_driver_code_sha256": "0" * 64, "error": None,
                       "steps": [], "execution": execution or {"mode": "local"}})


def _session(logs: Path, name: str, *, card: str | None = None, first_event: dict[str, object] | None = None,
             old: bool = True) -> Path:
    path = logs / name
    path.mkdir(parents=True)
    if card is not None:
        (path / "run_card.json").write_text(card, encoding="utf-8")
    if first_event is not None:
        (path / "events.jsonl").write_text(json.dumps(first_event) + "\n", encoding="utf-8")
    if old:
        for item in (*path.iterdir(), path):
            os.utime(item, (OLD, OLD))
    return path


def _json(capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    capsys.readouterr()
    assert main([*argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_list_shows_pipeline_start_duration_status_and_place(project: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    shutil.copytree(REPO_ROOT / "examples", project / "examples")
    assert main(["run", "examples/movies_local.yaml"]) == 0
    logs = project / "logs"
    _session(logs, "run_20200101T000000_000000Z", card=_card("r1", "nightly", "failed",
                                                             {"mode": "sandbox", "backend": "e2b"}))
    _session(logs, "run_20200102T000000_000000Z", first_event={"event": "run_start", "pipeline": "nightly"})
    _session(logs, "run_20200103T000000_000000Z", card="{torn")
    rows = _json(capsys, "logs", "list")
    newest = rows[0]
    assert newest["kind"] == "run" and newest["pipeline"] == "movies-local" and newest["status"] == "succeeded"
    assert newest["place"] == "local" and isinstance(newest["duration_ms"], int)
    assert newest["started_at"].endswith("Z") and newest["started_at"][:4] >= "2026"
    assert rows[1]["kind"] == "compile" and rows[1]["status"] == "compiled" and rows[1]["pipeline"] == "movies-local"
    by_id = {r["session"]: r for r in rows}
    assert by_id["run_20200101T000000_000000Z"]["place"] == "sandbox:e2b"
    assert by_id["run_20200101T000000_000000Z"]["started_at"] == "2020-01-01T00:00:00Z"
    assert by_id["run_20200102T000000_000000Z"]["status"] == "incomplete"
    assert by_id["run_20200102T000000_000000Z"]["pipeline"] == "nightly"
    assert by_id["run_20200103T000000_000000Z"]["status"] == "unknown"

    capsys.readouterr()
    assert main(["logs", "list"]) == 0
    out = capsys.readouterr().out
    assert "started (UTC)" in out and "sandbox:e2b" in out and "2020-01-01 00:00:00Z" in out and "1.2 s" in out

    assert [r["session"] for r in _json(capsys, "logs", "list", "--pipeline", "night*")] == [
        "run_20200102T000000_000000Z", "run_20200101T000000_000000Z"]
    assert [r["status"] for r in _json(capsys, "logs", "list", "--status", "failed")] == ["failed"]
    assert {r["pipeline"] for r in _json(capsys, "logs", "list", "--since", "7d")} == {"movies-local"}
    assert len(_json(capsys, "logs", "list", "--since", "2020-01-02")) == 4  # the run, its compile, 2 and 3 Jan 2020
    assert len(_json(capsys, "logs", "list", "--since", "2020-01-01T12:00+02:00", "--limit", "1")) == 1


@pytest.mark.parametrize(("argv", "message"), [
    (["--since", "yesterday"], "since 'yesterday' is neither an ISO date/time nor an age"),
    (["--since", "3x"], "since '3x' is neither"),
])
def test_list_rejects_bad_filters_in_one_line(project: Path, capsys: pytest.CaptureFixture[str], argv: list[str],
                                              message: str) -> None:
    assert main(["logs", "list", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {message}") and err.count("\n") == 1


def test_show_an_incomplete_run_and_events_as_one_document(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _session(project / "logs", "run_20200102T000000_000000Z", first_event={"event": "run_start", "pipeline": "x"})
    shown = _json(capsys, "logs", "show", "run_20200102T000000_000000Z", "--events")
    assert shown["status"] == "incomplete" and [e["event"] for e in shown["events"]] == ["run_start"]
    assert main(["logs", "show", "run_20200102T000000_000000Z"]) == 0
    assert "is incomplete" in capsys.readouterr().out
    assert main(["logs", "show", "../x"]) == 2


def test_gc_keeps_the_newest_and_prints_what_it_removed(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    logs = project / "logs"
    names = [f"run_2020010{d}T000000_000000Z" for d in range(1, 6)]
    for name in names:
        _session(logs, name, card=_card(name, "p", "succeeded"))
    outside = project / "outside"
    outside.mkdir()
    (outside / "precious.txt").write_text("keep me", encoding="utf-8")
    os.symlink(outside, logs / "run_20190101T000000_000000Z")  # not a session directory: never followed

    dry = _json(capsys, "logs", "gc", "--keep", "2", "--dry-run")
    assert dry["dry_run"] and len(dry["removed"]) == 3
    assert all((logs / n).is_dir() for n in names)

    assert main(["logs", "gc", "--keep", "2"]) == 0
    out = capsys.readouterr().out
    for name in names[:3]:
        assert f"Removed logs/{name}" in out and not (logs / name).exists()
    assert "Removed 3 session(s); kept 2." in out
    assert all((logs / n).is_dir() for n in names[3:])
    assert (outside / "precious.txt").read_text(encoding="utf-8") == "keep me"
    assert main(["logs", "gc", "--keep", "0", "--older-than", "100000"]) == 0  # nothing is that old
    assert all((logs / n).is_dir() for n in names[3:])


def test_gc_older_than_spares_running_sessions_and_the_last_compile(project: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    shutil.copytree(REPO_ROOT / "examples", project / "examples")
    assert main(["compile", "examples/movies_local.yaml"]) == 0
    logs = project / "logs"
    compile_session = next(p for p in logs.iterdir() if p.name.startswith("compile_"))
    # The last compile, renamed into the past: `run --last-compile` must keep working after gc.
    moved = logs / "compile_20200101T000000_000000Z"
    compile_session.rename(moved)
    (logs / "last_compile").write_text(str((moved / "compiled/manifest.yaml").resolve()) + "\n", encoding="utf-8")
    _session(logs, "run_20200102T000000_000000Z", card=_card("a", "p", "failed"))
    _session(logs, "run_20200103T000000_000000Z", first_event={"event": "run_start"}, old=False)  # still running
    _session(logs, "run_20200104T000000_000000Z", first_event={"event": "run_start"})  # interrupted long ago

    result = _json(capsys, "logs", "gc", "--older-than", "30")
    assert sorted(r["session"] for r in result["removed"]) == ["run_20200102T000000_000000Z",
                                                               "run_20200104T000000_000000Z"]
    assert moved.is_dir() and (logs / "run_20200103T000000_000000Z").is_dir()
    assert main(["run", "--last-compile"]) == 0


def test_gc_needs_a_rule(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["logs", "gc"]) == 2
    assert capsys.readouterr().err.startswith("error: nothing to collect: no rule given — give --keep N")
