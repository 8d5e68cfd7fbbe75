"""`osiris logs html`: the report opened in a real headless Chromium, checked for what a person sees."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from osiris_cli.main import main
from tests.conftest import REPO_ROOT
from tests.support.chromium import Chromium, find_chromium

VISIBLE = """JSON.stringify((() => {
  const shown = (e) => { const r = e.getBoundingClientRect(); const s = getComputedStyle(e);
                         return r.width > 0 && r.height > 0 && s.visibility !== 'hidden' && s.display !== 'none'; };
  return {
    h1: document.querySelector('h1').innerText,
    title: document.title,
    rows: [...document.querySelectorAll('table.steps tbody tr')].filter(shown)
            .map(tr => [...tr.cells].map(td => td.innerText.trim())),
    nodes: [...document.querySelectorAll('svg.dag a.node')].filter(shown)
             .map(a => [...a.querySelectorAll('text')].map(t => t.textContent)),
    edges: document.querySelectorAll('svg.dag path.edge').length,
    facts: Object.fromEntries([...document.querySelectorAll('dl.facts dt')]
             .map(dt => [dt.innerText, dt.nextElementSibling.innerText])),
    error: document.querySelector('#error') ? document.querySelector('#error').innerText : null,
    scripts: document.scripts.length,
    injected: document.querySelectorAll('h1 b, pre script, td img').length,
    configs: [...document.querySelectorAll('details pre')].map(p => p.textContent).join('\\n'),
  };
})())"""

COLUMNS = ["step", "component", "status", "rows_in", "rows_out", "duration", "error"]


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chromium]:
    if find_chromium() is None:
        pytest.skip("Debian's chromium is not installed (apt-get install chromium; .ci/run installs it)")
    with Chromium(tmp_path_factory.mktemp("chromium")) as chromium:
        yield chromium


def _last_session(capsys: pytest.CaptureFixture[str], status: str) -> str:
    capsys.readouterr()
    assert main(["logs", "list", "--json", "--status", status]) == 0
    session: str = json.loads(capsys.readouterr().out)[0]["session"]
    return session


def _report(session: str, target: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, str]:
    assert main(["logs", "html", session, "-o", str(target), "--json"]) == 0
    written: dict[str, str] = json.loads(capsys.readouterr().out)
    assert written["file"] == str(target)
    return written


def test_successful_run_report_shows_every_step(project: Path, browser: Chromium,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    shutil.copytree(REPO_ROOT / "examples", project / "examples")
    assert main(["run", "examples/movies_local.yaml", "--json"]) == 0
    card = json.loads(capsys.readouterr().out)
    _report(card["session_id"], project / "report.html", capsys)

    visit = browser.visit(project / "report.html", VISIBLE, screenshot=True)
    (project / "report.png").write_bytes(visit.screenshot or b"")
    seen = visit.value
    assert visit.problems() == []
    assert visit.requests == [(project / "report.html").resolve().as_uri()]  # nothing but the page itself
    assert seen["scripts"] == 0
    rows = [dict(zip(COLUMNS, row, strict=True)) for row in seen["rows"]]
    assert [r["step"] for r in rows] == [s["step_id"] for s in card["steps"]]
    for row, step in zip(rows, card["steps"], strict=True):
        assert row["status"] == step["status"] == "succeeded"
        assert row["rows_out"] == f"{step['rows_out']:,}" and row["rows_in"] == f"{step['rows_in']:,}"
    # The graph: one box per step with its id, status and rows; the five steps of the demo have four edges
    # (movies → stats, directors → stats, stats → csv, stats → duckdb).
    nodes = {texts[0]: texts for texts in seen["nodes"]}
    assert set(nodes) == {s["step_id"] for s in card["steps"]}
    assert nodes["extract-movies"][2] == "succeeded · 46 rows"
    assert seen["edges"] == 4
    assert seen["facts"]["Execution"].startswith("local")
    assert seen["facts"]["Pipeline"] == "movies-local"
    assert seen["error"] is None


def test_failed_run_report_shows_error_hint_and_escapes_everything(project: Path, browser: Chromium,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    (project / "in.csv").write_text("a\n1\n2\n", encoding="utf-8")
    (project / "p.yaml").write_text(
        'oml_version: "0.1.0"\nname: "<b>bold</b> & co"\nsteps:\n'
        "  - {id: extract, component: filesystem.csv_extractor, mode: read, config: {path: in.csv}}\n"
        "  - {id: missing, component: filesystem.csv_extractor, mode: read, config: {path: absent.csv}}\n"
        "  - id: join\n    component: duckdb.processor\n    mode: transform\n    needs: [extract, missing]\n"
        "    config: {query: \"SELECT '</pre><script>alert(1)</script>' AS x FROM extract\"}\n",
        encoding="utf-8")
    assert main(["run", "p.yaml"]) == 1
    session = _last_session(capsys, "failed")
    _report(session, project / "failed.html", capsys)

    visit = browser.visit(project / "failed.html", VISIBLE)
    seen = visit.value
    assert visit.problems() == []
    assert seen["scripts"] == 0 and seen["injected"] == 0
    assert seen["h1"].startswith("<b>bold</b> & co")  # shown as text, not markup
    rows = {row[0]: dict(zip(COLUMNS, row, strict=True)) for row in seen["rows"]}
    assert rows["missing"]["status"] == "failed" and "CSV file not found: absent.csv" in rows["missing"]["error"]
    assert rows["join"]["status"] == "skipped" and rows["join"]["rows_out"] == "—"
    assert "CSV file not found: absent.csv" in seen["error"]
    assert "Hint: check `path`" in seen["error"]
    assert "In step missing (DriverError)" in seen["error"]
    assert seen["edges"] == 2  # extract → join, missing → join


def test_sandbox_run_report_names_the_place_and_the_bundle(project: Path, browser: Chromium,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    shutil.copytree(REPO_ROOT / "examples", project / "examples")
    assert main(["run", "examples/movies_local.yaml", "--sandbox", "local", "--json"]) == 0
    card = json.loads(capsys.readouterr().out)
    _report(card["session_id"], project / "sandbox.html", capsys)
    visit = browser.visit(project / "sandbox.html", VISIBLE)
    seen = visit.value
    assert visit.problems() == []
    assert seen["facts"]["Execution"] == "sandbox (local)"
    assert seen["facts"]["Bundle sha256"] == card["execution"]["bundle_sha256"]
    assert seen["facts"]["Sandbox session"] == card["execution"]["sandbox_session"]
    assert [row[4] for row in seen["rows"]] == [f"{s['rows_out']:,}" for s in card["steps"]]
    # The sandbox recorded its own manifest path; the graph comes from the host's compile session instead.
    assert seen["edges"] == 4


def test_the_browser_check_sees_console_errors_and_fetches(tmp_path: Path, browser: Chromium) -> None:
    """The checks above can fail: a page that logs an error, throws, and loads from the network is caught."""
    page = tmp_path / "bad.html"
    page.write_text("<!DOCTYPE html><html><head><meta http-equiv='Content-Security-Policy' content=\"img-src 'none'\">"
                    "</head><body><img src='http://127.0.0.1:9/x.png'><script>console.error('boom');"
                    "throw new Error('thrown')</script></body></html>", encoding="utf-8")
    visit = browser.visit(page, "1")
    texts = " | ".join(str(m["text"]) for m in visit.problems())
    assert "boom" in texts and "thrown" in texts and "Content Security Policy" in texts
    assert "http://127.0.0.1:9/x.png" in visit.requests


def test_secrets_in_a_session_never_reach_the_report(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A session written by an older or foreign tool, with secrets in configs, errors and events: the report
    masks them all, and still draws the steps when the manifest is gone."""
    session = project / "logs" / "run_20260101T000000_000000Z"
    (session / "artifacts" / "load").mkdir(parents=True)
    (session / "artifacts" / "load" / "cleaned_config.json").write_text(json.dumps(
        {"password": "hunter2-secret", "pg_dsn": "postgresql://u:dsn-pw-77@h/db", "table": "t"}), encoding="utf-8")
    events = [
        {"ts": "2026-01-01T00:00:00.000000Z", "event": "run_start", "pipeline": "p",
         "manifest_dir": "logs/compile_20251231T000000_000000Z/compiled", "steps": ["load"]},
        {"ts": "2026-01-01T00:00:00.100000Z", "event": "step_start", "step_id": "load", "component": "x.y"},
        {"ts": "2026-01-01T00:00:01.000000Z", "event": "step_failed", "step_id": "load",
         "error": "connect to postgresql://u:evt-pw-88@h/db failed", "error_type": "DriverError",
         "traceback": "Traceback: Bearer tok-abc-123456"},
    ]
    (session / "events.jsonl").write_text("\n".join(json.dumps(e) for e in events) + "\n{torn", encoding="utf-8")
    card = {"session_id": session.name, "pipeline": "p", "status": "failed", "exit_code": 1, "duration_ms": 1000,
            "driver_code_sha256": "0" * 64, "manifest_driver_code_sha256": "0" * 64, "execution": {"mode": "local"},
            "error": "step 'load': postgresql://u:card-pw-99@h/db refused — check the password",
            "steps": [{"step_id": "load", "component": "x.y", "driver": "m:C", "status": "failed", "rows_in": 0,
                       "rows_out": 0, "duration_ms": 900, "error": "password=plain-pw-11 rejected",
                       "error_type": "DriverError", "output_sha256": None}]}
    (session / "run_card.json").write_text(json.dumps(card), encoding="utf-8")
    assert main(["logs", "html", session.name, "-o", "-"]) == 0
    page = capsys.readouterr().out
    for secret in ("hunter2-secret", "dsn-pw-77", "evt-pw-88", "tok-abc-123456", "card-pw-99", "plain-pw-11"):
        assert secret not in page
    assert 'data-step="load"' in page and "Step links unavailable" in page
    assert "check the password" in page  # the hint, separated from the message


def test_report_of_an_interrupted_run_and_bad_requests(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    session = project / "logs" / "run_20260101T000000_000000Z"
    session.mkdir(parents=True)
    (session / "events.jsonl").write_text(
        json.dumps({"ts": "2026-01-01T00:00:00Z", "event": "run_start", "pipeline": "p", "steps": ["a", "b"]}) + "\n"
        + json.dumps({"ts": "2026-01-01T00:00:02Z", "event": "step_start", "step_id": "a", "component": "x.y"})
        + "\n", encoding="utf-8")
    assert main(["logs", "html", session.name]) == 0
    page = (session / "report.html").read_text(encoding="utf-8")
    assert ">incomplete</span>" in page and ">started</span>" in page and ">not started</span>" in page
    capsys.readouterr()
    assert main(["logs", "html", "../../etc"]) == 2
    assert "is not a session id" in capsys.readouterr().err
    assert main(["logs", "html", "run_20990101T000000_000000Z"]) == 2
    assert "no session 'run_20990101T000000_000000Z'" in capsys.readouterr().err
    (project / "logs" / "compile_20260101T000000_000000Z").mkdir()
    assert main(["logs", "html", "compile_20260101T000000_000000Z"]) == 2
    assert "reports are of runs" in capsys.readouterr().err


INCREMENTAL = """JSON.stringify([...document.querySelectorAll('table.incremental tbody tr')]
  .map(tr => [...tr.cells].map(td => td.innerText.trim())))"""


def test_report_shows_each_incremental_read(project: Path, browser: Chromium,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    (project / "rows.csv").write_text("id,v,at\n1,a,1\n2,b,2\n", encoding="utf-8")
    (project / "inc.yaml").write_text(
        'oml_version: "0.1.0"\nname: inc\nsteps:\n'
        "  - {id: read, component: filesystem.csv_extractor, mode: read,\n"
        "     config: {path: rows.csv, column_types: {id: int64, at: int64}, incremental: {cursor: at}}}\n"
        "  - {id: load, component: duckdb.writer, mode: write, needs: [read],\n"
        "     config: {path: out.duckdb, table: dst, write_mode: upsert, primary_key: [id]}}\n", encoding="utf-8")
    assert main(["run", "inc.yaml"]) == 0
    with (project / "rows.csv").open("a", encoding="utf-8") as handle:
        handle.write("3,c,3\n")
    capsys.readouterr()
    assert main(["run", "inc.yaml", "--json"]) == 0
    session = json.loads(capsys.readouterr().out)["session_id"]
    _report(session, project / "inc.html", capsys)
    visit = browser.visit(project / "inc.html", INCREMENTAL)
    assert visit.problems() == []
    assert visit.value == [["read", '[["int","2"]]', '[["int","3"]]', "2"]]
