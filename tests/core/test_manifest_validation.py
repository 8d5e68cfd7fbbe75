"""A compiled manifest is untrusted input when it is loaded: every field is checked strictly, step ids and cfg
paths are exactly what the compiler writes, and anything malformed is a located exit 2 — never an internal
error, never a file written outside the session."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from osiris_cli.main import main

PIPELINE = """\
oml_version: "0.1.0"
name: small
steps:
  - {id: read, component: filesystem.csv_extractor, mode: read, config: {path: in.csv}}
  - {id: write, component: filesystem.csv_writer, mode: write, needs: [read], config: {path: out.csv}}
"""
Manifest = dict[str, Any]


@pytest.fixture
def compiled(project: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    """A freshly compiled manifest of PIPELINE (its run succeeds)."""
    (project / "in.csv").write_text("a\n1\n")
    (project / "p.yaml").write_text(PIPELINE)
    assert main(["compile", "p.yaml"]) == 0
    capsys.readouterr()
    return next((project / "logs").glob("compile_*/compiled/manifest.yaml"))


def edit(manifest_path: Path, change: Callable[[Manifest], object]) -> None:
    manifest = yaml.safe_load(manifest_path.read_text())
    change(manifest)
    manifest_path.write_text(yaml.safe_dump(manifest, sort_keys=False))


def refused(manifest_path: Path, capsys: pytest.CaptureFixture[str], *, sandbox: bool = False) -> str:
    """Run the manifest; it must be a one-line exit-2 error naming a file, before any run session exists."""
    project = manifest_path.parents[3]
    assert main(["run", str(manifest_path), *(["--sandbox", "local"] if sandbox else [])]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    assert not list((project / "logs").glob("run_*")), "nothing runs"
    return err


def test_the_compiled_manifest_itself_runs(compiled: Path) -> None:
    assert main(["run", str(compiled)]) == 0


@pytest.mark.parametrize("sandbox", [False, True])
def test_a_traversal_step_id_is_refused_and_writes_nothing_outside_the_session(
        compiled: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], sandbox: bool) -> None:
    escape = f"escaped-{tmp_path.name}"
    step_id = f"../../../../{escape}"  # from logs/run_<ts>/artifacts: up to tmp_path's parent

    def rename(manifest: Manifest) -> None:
        manifest["steps"][0]["id"] = step_id
        manifest["steps"][1]["needs"] = [step_id]
        manifest["steps"][1]["inputs"] = {"read": step_id}

    edit(compiled, rename)
    err = refused(compiled, capsys, sandbox=sandbox)
    line = compiled.read_text().splitlines().index(f"- id: {step_id}") + 1
    assert err.startswith(f"error: {compiled}:{line}:") and "steps.0.id: String should match pattern" in err
    assert not (tmp_path.parent / escape).exists()
    written = [p for p in tmp_path.parent.rglob("cleaned_config.json") if p.is_relative_to(tmp_path)]
    assert written == []


def _set(path: list[str | int], value: object) -> Callable[[Manifest], None]:
    def change(manifest: Manifest) -> None:
        target: Any = manifest
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
    return change


@pytest.mark.parametrize(("change", "reason"), [
    (_set(["steps", 0, "cfg"], "cfg/../../../../etc/passwd"), "steps.0.cfg: Value error, must be 'cfg/read.json'"),
    (_set(["steps", 0, "cfg"], "cfg/write.json"), "steps.0.cfg: Value error, must be 'cfg/read.json'"),
    (_set(["manifest_version"], "1"), "manifest_version: Input should be a valid integer"),
    (_set(["manifest_version"], True), "manifest_version: Input should be a valid integer"),
    (_set(["steps", 1, "needs"], ["../x"]), "steps.1.needs.0: String should match pattern"),
    (_set(["steps", 1, "needs"], ["later"]), "steps.1.inputs: Value error, must map the SQL name"),
    (lambda m: (_set(["steps", 1, "needs"], ["nowhere"])(m), _set(["steps", 1, "inputs"], {"nowhere": "nowhere"})(m)),
     "steps: Value error, step 'write' needs 'nowhere', which is not an earlier step"),
    (lambda m: (_set(["steps", 1, "needs"], ["write"])(m), _set(["steps", 1, "inputs"], {"write": "write"})(m)),
     "steps.1.needs: Value error, a step cannot need itself"),
    (lambda m: m["steps"].reverse(), "steps: Value error, step 'write' needs 'read', which is not an earlier step"),
    (lambda m: m["steps"].append(m["steps"][1]), "steps: Value error, step id 'write' is used twice"),
    (_set(["steps"], []), "steps: Tuple should have at least 1 item"),
    (_set(["steps", 0, "connection"], "@mysql"), "steps.0.connection: String should match pattern"),
    (_set(["steps", 0, "extra"], 1), "steps.0.extra: Extra inputs are not permitted"),
    (_set(["steps", 0, "mode"], 1), "steps.0.mode: Input should be 'read', 'write' or 'transform'"),
    (_set(["fingerprints", "oml_sha256"], "x"), "fingerprints.oml_sha256: String should match pattern"),
    (_set(["pipeline", "metadata"], {"when": "2024-01-01"}), None),  # a string stays a string: fine
])
def test_a_malformed_manifest_is_a_located_exit_2(compiled: Path, change: Callable[[Manifest], object],
                                                  reason: str | None, capsys: pytest.CaptureFixture[str]) -> None:
    edit(compiled, change)
    if reason is None:
        assert main(["run", str(compiled)]) == 0
        return
    err = refused(compiled, capsys)
    assert err.startswith(f"error: {compiled}:") and "not a valid Osiris manifest" in err
    assert reason in err


@pytest.mark.parametrize("text", ["steps: [unclosed\n", "- a list\n", "just text\n", "{}\n", "when: 2024-01-01\n"])
def test_a_manifest_that_is_not_a_manifest_mapping_is_exit_2(compiled: Path, text: str,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    compiled.write_text(text)
    assert refused(compiled, capsys).startswith(f"error: {compiled}")


@pytest.mark.parametrize(("content", "reason"), [
    ("{not json", "cfg/read.json:1:2: not valid JSON: Expecting property name"),
    ("[1, 2]", "cfg/read.json: a step config must be a JSON object, not list"),
    ('"path"', "cfg/read.json: a step config must be a JSON object, not str"),
    ("[" * 100_000 + "]" * 100_000, "cfg/read.json: not valid JSON: nested too deeply"),
    (b"\xff\xfe{}", "cfg/read.json: not UTF-8 text"),
    (None, "cfg/read.json: file not found"),
], ids=["bad-json", "list", "string", "deep", "not-utf8", "missing"])
def test_a_malformed_step_config_is_exit_2_naming_it(compiled: Path, content: str | bytes | None, reason: str,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    cfg = compiled.parent / "cfg/read.json"
    if content is None:
        cfg.unlink()
    elif isinstance(content, bytes):
        cfg.write_bytes(content)
    else:
        cfg.write_text(content)
    assert reason in refused(compiled, capsys)
