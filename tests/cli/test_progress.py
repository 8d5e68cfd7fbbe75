"""`--progress`: a live view on a terminal (a real pseudo-terminal), a heartbeat elsewhere, nothing with `none`,
standard output left alone, and a sandbox run's remote steps shown live on the host."""

from __future__ import annotations

import io
import json
import os
import pty
import re
import select
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import osiris_cli
from osiris_cli.main import main
from osiris_cli.progress import PlainDisplay, resolve_mode
from osiris_core.compiler import compile_file
from osiris_core.connections import Connections
from osiris_core.events import Logged, StepComplete, StepProgress
from osiris_core.execution import ExecutionSettings
from osiris_core.manifest import load_compiled
from osiris_core.registry import ComponentRegistry
from osiris_core.runner import LocalExecutor
from osiris_remote.backends import SandboxOptions
from osiris_remote.proxy import SandboxExecutor
from tests.conftest import REPO_ROOT
from tests.support.big_csv import copy_pipeline, write_csv

MILLION = 1_000_000
PTY_ROWS = 1_500_000
"""Several seconds through filesystem.csv_writer even on a fast machine: several updates, once a second."""
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
LOAD_LINE = re.compile(r"load\s+write\s+([\d,]+) rows\s+([\d,]+) rows/s\s+([\d.,]+) MB\s+((?:\d+h)?(?:\d+m)?[\d.]+)s")


@pytest.fixture(scope="module")
def million_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """1M wide rows: eight 8 MiB batches, a few seconds through filesystem.csv_writer."""
    return write_csv(tmp_path_factory.mktemp("data") / "million.csv", MILLION, wide=True)


def _cli_env() -> dict[str, str]:
    code_roots = [str(Path(osiris_cli.__file__).resolve().parents[1]), str(REPO_ROOT)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(code_roots + [p for p in sys.path if os.path.isabs(p)]),
           "TERM": "xterm-256color", "COLUMNS": "120"}
    env.pop("OSIRIS_CONNECTIONS", None)
    return env


def _in_terminal(args: list[str], cwd: Path, timeout_s: float = 300) -> tuple[int, str]:
    """Run `osiris ARGS` with a pseudo-terminal as its standard input, output and error; its exit code and all
    it wrote to the terminal."""
    import fcntl
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    proc = subprocess.Popen([sys.executable, "-c", "from osiris_cli.main import run; run()", *args], cwd=cwd,
                            stdin=slave, stdout=slave, stderr=slave, env=_cli_env(), close_fds=True)
    os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 1.0)
            if not ready:
                if proc.poll() is not None:
                    break
                continue
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        return proc.wait(timeout=30), b"".join(chunks).decode("utf-8", errors="replace")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)


def _events(project: Path) -> list[dict[str, Any]]:
    session = sorted((project / "logs").glob("run_*"))[-1]
    return [json.loads(x) for x in (session / "events.jsonl").read_text().splitlines()]


def _load_progress(events: list[dict[str, Any]]) -> list[int]:
    return [e["rows"] for e in events if e["event"] == "step_progress" and e["step_id"] == "load"]


def test_a_terminal_shows_a_live_line_per_step_with_rising_rows_and_a_rate(project: Path) -> None:
    write_csv(project / "big.csv", PTY_ROWS, wide=True)
    copy_pipeline(project / "copy.yaml", "big.csv")
    code, screen = _in_terminal(["run", "copy.yaml"], project)
    assert code == 0, screen
    assert "\x1b[" in screen, "drawn with terminal control sequences (rich.live)"
    text = ANSI.sub("", screen)
    assert text.lstrip().startswith("Session: logs/run_"), "the session's path comes before any step"
    figures = [(int(rows.replace(",", "")), int(rate.replace(",", "")), float(size.replace(",", "")))
               for rows, rate, size, _ in LOAD_LINE.findall(text)]
    rows_seen = list(dict.fromkeys(rows for rows, _, _ in figures))
    assert rows_seen == sorted(rows_seen), "rows only grow"
    assert rows_seen[-1] == PTY_ROWS
    assert len(rows_seen) >= 3, f"several updates while rows flowed: {rows_seen}"
    assert all(rate > 0 and size > 0 for _, rate, size in figures)
    elapsed = {s for *_, s in LOAD_LINE.findall(text)}  # 12.3 or, on a slow machine, 1m05
    assert len(elapsed) >= 4, "the elapsed time ticks between updates"
    assert re.search(r"extract\s+streamed\s+1,500,000 rows", text), "the producer's total once counted"
    assert "Run succeeded in" in text
    assert "Run card" in text and text.index("Run succeeded in") < text.index("Run card")


def test_without_a_terminal_the_run_says_its_session_records_progress_and_keeps_json_clean(
        project: Path, million_csv: Path) -> None:
    copy_pipeline(project / "copy.yaml", str(million_csv))
    done = subprocess.run([sys.executable, "-c", "from osiris_cli.main import run; run()", "run", "copy.yaml",
                           "--json", "--verbose"], cwd=project, env=_cli_env(), capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    card = json.loads(done.stdout)  # one document, nothing else
    err = done.stderr.splitlines()
    assert err[0] == f"Session: logs/{card['session_id']}", "before the first step starts"
    assert "step_start    extract" in err[1]
    assert err[-1].startswith("Run succeeded in ")
    assert "\x1b" not in done.stderr, "plain text without a terminal"
    rows = _load_progress(_events(project))
    assert len(rows) >= 2 and rows == sorted(rows) and len(set(rows)) == len(rows) and rows[-1] == MILLION
    assert sum("step_progress load write rows=" in line for line in err) == len(rows), "--verbose shows them"


def test_progress_none_prints_nothing_while_the_events_are_still_recorded(
        project: Path, million_csv: Path, capsys: pytest.CaptureFixture[str]) -> None:
    copy_pipeline(project / "copy.yaml", str(million_csv))
    assert main(["run", "copy.yaml", "--progress", "none", "--json"]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    assert json.loads(captured.out)["status"] == "succeeded"
    assert _load_progress(_events(project))[-1] == MILLION


def test_plain_mode_prints_heartbeat_lines_with_the_active_steps(
        project: Path, million_csv: Path, registry: ComponentRegistry) -> None:
    compiled = compile_file(copy_pipeline(project / "copy.yaml", str(million_csv)), registry, Connections(None),
                            project / "logs")
    assert compiled.manifest_path is not None
    stream = io.StringIO()
    display = PlainDisplay(stream, project / "logs", every_s=0.25)
    with display.open():
        settings = ExecutionSettings(registry, Connections(None), project / "logs", listeners=(display.listen,),
                                     progress_every_s=0.1)
        result = LocalExecutor(settings).run(load_compiled(compiled.manifest_path))
    assert result.exit_code == 0, result.card.error
    lines = stream.getvalue().splitlines()
    assert lines[0] == f"Session: {project / 'logs' / result.session.id}"
    assert lines[-1].startswith("Run succeeded in ") and lines[-1].endswith("(2 succeeded)")
    beats = lines[1:-1]
    assert beats and all(line.startswith("progress ") for line in beats)
    counted = [int(m.group(1).replace(",", "")) for m in
               (re.search(r"load write ([\d,]+) rows, [\d,]+ rows/s, [\d.,]+ MB \([\d.]+s\)$", b) for b in beats)
               if m]
    assert len(set(counted)) >= 2 and counted == sorted(counted), beats


def test_auto_means_the_live_view_only_on_a_real_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    master, slave = pty.openpty()
    with os.fdopen(slave, "w") as terminal:
        monkeypatch.setenv("TERM", "xterm-256color")
        assert resolve_mode("auto", terminal) == "tty"
        assert resolve_mode("plain", terminal) == "plain" and resolve_mode("none", terminal) == "none"
        monkeypatch.setenv("TERM", "dumb")
        assert resolve_mode("auto", terminal) == "plain"
    os.close(master)
    assert resolve_mode("auto", io.StringIO()) == "plain"
    assert resolve_mode("tty", io.StringIO()) == "tty"


def test_progress_tty_forced_without_a_terminal_still_leaves_json_alone(
        project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_csv(project / "small.csv", 10)
    copy_pipeline(project / "copy.yaml", "small.csv")
    assert main(["run", "copy.yaml", "--progress", "tty", "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["status"] == "succeeded"
    assert "\x1b[" in captured.err and "Session: logs/run_" in captured.err
    assert re.search(r"load\s+succeeded\s+10 rows", ANSI.sub("", captured.err)), captured.err


def test_parity_shows_the_progress_of_both_runs(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_csv(project / "small.csv", 10)
    copy_pipeline(project / "copy.yaml", "small.csv")
    assert main(["parity", "copy.yaml", "--progress", "plain"]) == 0
    err = capsys.readouterr().err.splitlines()
    sessions = [line for line in err if line.startswith("Session: logs/run_")]
    assert len(sessions) == 2 and sessions[0] != sessions[1]
    assert sum(line.startswith("Run succeeded in ") for line in err) == 2


def _worker_alive(sandbox_root: Path) -> bool:
    found = subprocess.run(["pgrep", "-f", "osiris_remote.worker"], capture_output=True, text=True, check=False)
    for pid in found.stdout.split():
        try:
            if Path(os.readlink(f"/proc/{pid}/cwd")).is_relative_to(sandbox_root.resolve()):
                return True
        except OSError:
            continue
    return False


def test_a_sandbox_run_shows_the_remote_steps_progress_live_on_the_host(
        project: Path, registry: ComponentRegistry) -> None:
    write_csv(project / "wide.csv", MILLION, wide=True)
    compiled = compile_file(copy_pipeline(project / "copy.yaml", "wide.csv"), registry, Connections(None),
                            project / "logs")
    assert compiled.manifest_path is not None
    sandbox_root = project / "sandbox-root"
    seen: list[tuple[str, bool]] = []

    def watch(logged: Logged) -> None:
        item = logged.item
        if isinstance(item, StepProgress | StepComplete) and item.step_id == "load":
            seen.append((item.event_name, _worker_alive(sandbox_root)))

    settings = ExecutionSettings(registry, Connections(None), project / "logs", listeners=(watch,))
    result = SandboxExecutor(settings, SandboxOptions(backend="local", local_root=sandbox_root)).run(
        load_compiled(compiled.manifest_path))
    assert result.exit_code == 0, result.card.error
    assert seen[0] == ("step_progress", True), "the first progress arrived while the worker still ran"
    assert seen[-1][0] == "step_complete"
    rows = _load_progress(_events(project))
    assert len(rows) >= 2 and rows == sorted(rows) and rows[-1] == MILLION
    assert {e["session"] for e in _events(project)} == {result.session.id}
