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


def _one_document(capsys: pytest.CaptureFixture[str], *argv: str, code: int = 0) -> object:
    capsys.readouterr()
    assert main([*argv, "--json"]) == code, argv
    out = capsys.readouterr().out
    assert out.strip(), argv
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
    for argv in (["validate", "examples/movies_local.yaml"], ["components", "list"],
                 ["components", "show", "duckdb.writer"], ["connections", "list"],
                 ["logs", "list"], ["logs", "list", "--status", "failed", "--since", "1d"],
                 ["logs", "show", session], ["logs", "show", session, "--events"],
                 ["logs", "show", compiled["session"]], ["logs", "html", session],
                 ["init", "fresh"]):
        _one_document(capsys, *argv)
    shown = _one_document(capsys, "logs", "show", session, "--events")
    assert isinstance(shown, dict) and shown["events"][-1]["event"] == "run_complete"
    dry = _one_document(capsys, "logs", "gc", "--keep", "1", "--dry-run")
    assert isinstance(dry, dict) and len(dry["removed"]) == 4  # of 2 runs and 3 compiles, the newest stays
    removed = _one_document(capsys, "logs", "gc", "--keep", "1")
    assert isinstance(removed, dict) and [r["session"] for r in removed["removed"]] == [
        r["session"] for r in dry["removed"]]
