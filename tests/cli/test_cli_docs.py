"""docs/cli.md documents every command and flag, and every `--json` command prints exactly one JSON document."""

from __future__ import annotations

import argparse
import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from osiris_cli.main import build_parser, main
from tests.conftest import REPO_ROOT

CLI_DOC = REPO_ROOT / "docs" / "cli.md"


def _commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> Iterator[
        tuple[tuple[str, ...], argparse.ArgumentParser]]:
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from _commands(child, (*path, name))


def _sections(doc: str) -> dict[str, str]:
    """`### heading` → its text; `## Options every command takes` under the key `common`."""
    sections: dict[str, str] = {}
    for chunk in re.split(r"^(?=##+ )", doc, flags=re.MULTILINE):
        heading, _, body = chunk.partition("\n")
        key = "common" if heading.startswith("## Options") else heading
        sections[key] = heading + "\n" + body
    return sections


SHARES_FLAGS_WITH = {"osiris parity": "osiris run"}
"""`parity` takes the sandbox options documented under `run`."""


def test_every_command_and_flag_is_documented() -> None:
    sections = _sections(CLI_DOC.read_text(encoding="utf-8"))
    for path, parser in _commands(build_parser()):
        if not path or parser._subparsers is not None:
            continue  # groups (`logs`, `components`, …) are documented through their actions
        command = "osiris " + " ".join(path)

        def section(name: str) -> str:
            found = [text for heading, text in sections.items() if heading.startswith("### ") and
                     re.search(rf"`{re.escape(name)}( [^`]*)?`", heading)]
            assert found, f"no heading for `{name}` in docs/cli.md"
            return found[0]

        text = section(command) + sections["common"]
        if command in SHARES_FLAGS_WITH:
            text += section(SHARES_FLAGS_WITH[command])
        for action in parser._actions:
            if action.help == argparse.SUPPRESS:
                continue
            for flag in action.option_strings:
                assert re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", text), \
                    f"`{command}` flag {flag} is not in its section of docs/cli.md"


EXERCISED: set[str] = set()
"""The commands `_one_document` ran (every one that prints a JSON document must be among them)."""


def _command_of(argv: tuple[str, ...]) -> str:
    words = [a for a in argv if not a.startswith("-")]
    return " ".join(words[:2] if words[0] in ("components", "connections", "logs", "sandbox", "state")
                    else words[:1])


def _one_document(capsys: pytest.CaptureFixture[str], *argv: str, code: int = 0) -> object:
    capsys.readouterr()
    assert main([*argv, "--json"]) == code, argv
    out = capsys.readouterr().out
    assert out.strip(), argv
    EXERCISED.add(_command_of(argv))
    return json.loads(out)  # raises on anything but exactly one document


def test_every_json_output_is_one_document(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shutil.copytree(REPO_ROOT / "examples", project / "examples")
    init = _one_document(capsys, "init", "fresh")
    assert isinstance(init, dict) and init["created"]
    card = _one_document(capsys, "run", "examples/movies_local.yaml")
    assert isinstance(card, dict)
    session = card["session_id"]
    (project / "p.yaml").write_text('oml_version: "0.1.0"\nname: x\nsteps:\n'
                                    "  - {id: a, component: filesystem.csv_extractor, mode: read, "
                                    "config: {path: absent.csv}}\n", encoding="utf-8")
    failed = _one_document(capsys, "run", "p.yaml", code=1)
    assert isinstance(failed, dict) and failed["status"] == "failed"
    compiled = _one_document(capsys, "compile", "examples/movies_local.yaml")
    assert isinstance(compiled, dict)
    (project / "osiris_connections.yaml").write_text(
        "connections:\n  filesystem:\n    main: {path: examples/data/movies.csv}\n", encoding="utf-8")
    for argv in (["validate", "examples/movies_local.yaml"], ["components", "list"],
                 ["components", "show", "duckdb.writer"], ["connections", "list"],
                 ["logs", "list"], ["logs", "list", "--status", "failed", "--since", "1d"],
                 ["logs", "show", session], ["logs", "show", session, "--events"],
                 ["logs", "show", compiled["session"]], ["logs", "html", session],
                 ["init", "fresh"], ["connections", "doctor"], ["discover", "@filesystem.main"],
                 ["run", "examples/movies_local.yaml", "--dry-run"], ["state", "show", "examples/movies_local.yaml"],
                 ["state", "reset", "examples/movies_local.yaml"]):
        _one_document(capsys, *argv)
    sandboxed = _one_document(capsys, "run", "examples/movies_local.yaml", "--sandbox", "local", "--verbose")
    assert isinstance(sandboxed, dict) and sandboxed["execution"]["mode"] == "sandbox"
    parity = _one_document(capsys, "parity", "examples/movies_local.yaml")
    assert isinstance(parity, dict) and parity["identical"] is True
    shown = _one_document(capsys, "logs", "show", session, "--events")
    assert isinstance(shown, dict) and shown["events"][-1]["event"] == "run_complete"
    dry = _one_document(capsys, "logs", "gc", "--keep", "1", "--dry-run")
    # of 5 runs and 5 compiles, the newest and the last compile (`run --last-compile` needs it) stay
    assert isinstance(dry, dict) and len(dry["removed"]) == 8
    removed = _one_document(capsys, "logs", "gc", "--keep", "1")
    assert isinstance(removed, dict) and [r["session"] for r in removed["removed"]] == [
        r["session"] for r in dry["removed"]]

    every = {" ".join(path) for path, parser in _commands(build_parser()) if path and parser._subparsers is None}
    assert every - EXERCISED == {"sandbox serve", "mcp"}  # servers: they print no document


def test_html_to_standard_output_stays_the_one_document(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`logs html -o -` prints the page even with --json (docs/cli.md), and nothing else."""
    shutil.copytree(REPO_ROOT / "examples", project / "examples")
    assert main(["--json", "run", "examples/movies_local.yaml"]) == 0
    session = json.loads(capsys.readouterr().out)["session_id"]
    assert main(["--json", "logs", "html", session, "-o", "-"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("<!DOCTYPE html>") and out.count("<!DOCTYPE html>") == 1


def test_output_of_drivers_never_mixes_into_the_json_document(project: Path, capfd: pytest.CaptureFixture[str],
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """A driver that prints, writes to descriptor 1 and starts a child that prints: before, its lines came before
    the run card on standard output and `--json run` was no JSON document."""
    import osiris_cli.app
    from osiris_core.registry import ComponentRegistry
    from osiris_drivers.registry import builtin_components
    from tests.support.components import chatty_component

    registry = ComponentRegistry([*builtin_components(), chatty_component()])
    monkeypatch.setattr(osiris_cli.app, "default_registry", lambda: registry)
    (project / "p.yaml").write_text('oml_version: "0.1.0"\nname: chatty\nsteps:\n'
                                    "  - {id: talk, component: test.chatty, mode: read}\n"
                                    "  - {id: save, component: filesystem.csv_writer, mode: write, needs: [talk],"
                                    " config: {path: out.csv}}\n")
    assert main(["--json", "run", "p.yaml"]) == 0
    out, err = capfd.readouterr()
    assert json.loads(out)["status"] == "succeeded"
    for noise in ("print() noise", "descriptor noise", "child noise"):
        assert f"chatty: {noise}" in err
    assert main(["run", "p.yaml"]) == 0  # without --json the driver's lines stay where they were written
    out, _ = capfd.readouterr()
    assert "chatty: child noise" in out and "Status: succeeded" in out
    assert main(["--json", "validate", "missing.yaml"]) == 2
    out, err = capfd.readouterr()
    assert out == "" and err.startswith("error: ")  # an error: standard output stays empty
