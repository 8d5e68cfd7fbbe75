"""Sandbox runs cannot be subverted through what the host uploads or passes: inputs named like modules do not
run, hostile environment variables are refused (and ignored by the isolated interpreter anyway), the sandbox
re-verifies the bundle, a worker that does not say hello first is not trusted, and a sandbox that cannot be
opened still leaves a run card. All through the real e2b SDK and the local E2B-compatible sandbox."""

from __future__ import annotations

import hashlib
import io
import json
import stat
import sys
import warnings
import zipfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from osiris_cli.main import main
from osiris_core.compiler import compile_file
from osiris_core.connections import Connections
from osiris_core.execution import ExecutionSettings
from osiris_core.fingerprint import run_fingerprint
from osiris_core.manifest import load_compiled
from osiris_core.registry import ComponentRegistry
from osiris_remote.backends import Sandbox, SandboxOptions, open_sandbox
from osiris_remote.bootstrap import EXIT_BUNDLE_REJECTED, WARM_MODULES, bootstrap_command
from osiris_remote.bundle import MAX_BUNDLE_CONTENT_BYTES, build_bundle, bundle_files, ship
from osiris_remote.bundle_format import DEFAULT_PACKAGES, MANIFEST_NAME, bundle_bytes
from osiris_remote.proxy import SandboxExecutor
from osiris_remote.worker.protocol import decode, encode_values
from tests.support import rogue_worker

TAMPERED = "osiris_drivers/filesystem/csv_writer/driver.py"


def touch_program(marker: Path) -> str:
    """One line of Python that creates `marker`: no quotes, so it is also a header-only CSV file."""
    return "import pathlib; pathlib.Path(" + "+".join(f"chr({ord(c)})" for c in str(marker)) + ").touch()\n"


def copy_pipeline(project: Path, input_path: str) -> Path:
    path = project / "p.yaml"
    path.write_text(yaml.safe_dump({"oml_version": "0.1.0", "name": "copy", "steps": [
        {"id": "read", "component": "filesystem.csv_extractor", "mode": "read", "config": {"path": input_path}},
        {"id": "write", "component": "filesystem.csv_writer", "mode": "write", "needs": ["read"],
         "config": {"path": "out.csv"}}]}))
    return path


def latest_card(project: Path) -> dict[str, Any]:
    latest = sorted((project / "logs").glob("run_*"))[-1]
    return dict(json.loads((latest / "run_card.json").read_text()))


def one_line_error(err: str) -> str:
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    return err


@pytest.mark.parametrize("name", ["zipfile.py", "json/__init__.py", "osiris_remote/__init__.py",
                                  "pyarrow/__init__.py"])
def test_an_input_named_like_a_module_is_data_not_code(project: Path, name: str) -> None:
    marker = project / "marker"
    (project / name).parent.mkdir(parents=True, exist_ok=True)
    (project / name).write_text(touch_program(marker))
    assert main(["run", str(copy_pipeline(project, name)), "--sandbox", "local"]) == 0
    assert not marker.exists(), f"the uploaded input {name} ran as code in the sandbox"
    assert (project / "out.csv").is_file()
    assert latest_card(project)["execution"]["sandbox_driver_code_sha256"]


@pytest.mark.parametrize("variable", ["PYTHONPATH=.", "PYTHONHOME=.", "LD_PRELOAD=./evil.so", "HOME=.",
                                      "PATH=.", "BASH_ENV=./evil.sh", "OPENSSL_CONF=./evil.cnf",
                                      "OSIRIS_BUNDLE_SHA256=0", "BASH_FUNC_python3%%=() { :; }"])
def test_environment_that_could_load_code_before_verification_is_refused(
        project: Path, variable: str, capsys: pytest.CaptureFixture[str]) -> None:
    marker = project / "marker"
    (project / "encodings").mkdir()
    (project / "encodings/__init__.py").write_text(touch_program(marker))  # imported at start-up via PYTHONPATH=.
    assert main(["run", str(copy_pipeline(project, "encodings/__init__.py")), "--sandbox", "local",
                 "--e2b-env", variable]) == 2
    err = one_line_error(capsys.readouterr().err)
    assert f"--e2b-env {variable.split('=')[0]!r}" in err or f"--e2b-env {variable.split('=')[0]} is refused" in err
    assert not marker.exists()
    assert not (project / "logs").exists(), "refused before any session or sandbox"


def test_the_runner_refuses_such_environment_too(project: Path, registry: ComponentRegistry) -> None:
    (project / "in.csv").write_text("a\n1\n")
    compiled = compile_file(copy_pipeline(project, "in.csv"), registry, Connections(None), project / "logs")
    assert compiled.manifest_path is not None
    runner = SandboxExecutor(ExecutionSettings(registry, Connections(None), project / "logs"),
                             SandboxOptions(backend="local", env={"LD_PRELOAD": "/tmp/x.so"}))
    result = runner.run(load_compiled(compiled.manifest_path))
    assert result.exit_code == 2 and result.card.error is not None
    assert "--e2b-env LD_PRELOAD is refused" in result.card.error
    assert [s.status for s in result.card.steps] == ["skipped", "skipped"]


# --- the bootstrap itself, run in the sandbox with a hostile working directory and environment ----------------

HOSTILE_MODULES = ("zipfile.py", "json/__init__.py", "encodings/__init__.py", "hashlib.py", "sitecustomize.py",
                   "usercustomize.py", "osiris_remote/__init__.py", "osiris_core/__init__.py", "pydantic/__init__.py")


def _stage(sandbox: Sandbox, project: Path, registry: ComponentRegistry, bundle: bytes) -> tuple[str, list[str]]:
    """Upload what the host would, plus hostile modules in the working directory; the worker's arguments."""
    (project / "in.csv").write_text("a\n1\n2\n")
    compiled = compile_file(copy_pipeline(project, "in.csv"), registry, Connections(None), project / "logs")
    assert compiled.manifest_path is not None
    loaded = load_compiled(compiled.manifest_path)
    sandbox.put("osiris/bundle.zip", bundle)
    sandbox.put("osiris/compiled/manifest.yaml", loaded.manifest.to_yaml().encode())
    for step in loaded.manifest.steps:
        sandbox.put(f"osiris/compiled/cfg/{step.id}.json", json.dumps(loaded.configs[step.id]).encode())
    sandbox.put("osiris/osiris_connections.yaml", b"connections: {}\n")
    sandbox.put("osiris/work/in.csv", b"a\n1\n2\n")
    for index, name in enumerate(HOSTILE_MODULES):
        sandbox.put(f"osiris/work/{name}", touch_program(project / f"marker-{index}").encode())
    sandbox.put("osiris/work/startup.py", touch_program(project / "marker-startup").encode())
    fingerprint = run_fingerprint(component.spec.driver for component in registry)
    specs = [word for path in ship(list(registry)).spec_paths for word in ("--spec", path)]
    return fingerprint, ["--manifest", "../compiled/manifest.yaml", "--connections", "../osiris_connections.yaml",
                         "--logs", "../logs", "--expected-fingerprint", fingerprint, *specs]


HOSTILE_ENV = {"PYTHONPATH": ".", "PYTHONHOME": ".", "PYTHONSTARTUP": "startup.py", "PYTHONUSERBASE": "."}
"""What `check_sandbox_env` refuses on the host; here it reaches the sandbox anyway and must change nothing."""


def _records(stdout: str) -> list[tuple[str, dict[str, Any]]]:
    return [decoded for decoded in map(decode, stdout.split("\n")) if decoded is not None]


def _run(sandbox: Sandbox, command: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """Exit code, stdout and stderr of `command` run in the worker's working directory (as the host does, with no
    connection values on its stdin)."""
    out: list[str] = []
    err: list[str] = []
    code = sandbox.run(command, cwd="osiris/work", env=env or {}, on_stdout=out.append, on_stderr=err.append,
                       on_start=lambda write: write(encode_values({})))
    return code, "".join(out), "".join(err)


def test_the_bootstrap_and_worker_import_nothing_from_the_working_directory_or_the_environment(
        project: Path, registry: ComponentRegistry) -> None:
    bundle = build_bundle()
    with open_sandbox(SandboxOptions(backend="local", local_root=project / "root")) as sandbox:
        fingerprint, args = _stage(sandbox, project, registry, bundle.data)
        command = bootstrap_command(sys.executable, "../bundle.zip", "../bundle", bundle.sha256, None, args)
        code, stdout, stderr = _run(sandbox, command, HOSTILE_ENV)
    records = _records(stdout)
    kinds = [kind for kind, _ in records]
    assert kinds[:2] == ["bundle_verified", "hello"] and kinds[-1] == "finished", stderr
    assert records[1][1]["driver_code_sha256"] == fingerprint
    assert code == 0 and records[-1][1]["exit_code"] == 0
    assert records[-2][1]["event"] == "run_complete" and records[-2][1]["status"] == "succeeded"
    assert sorted(p.name for p in project.glob("marker*")) == [], "a module from the working directory ran"
    assert len((project / "root/home/user/osiris/work/out.csv").read_text().splitlines()) == 3


def test_a_worker_given_no_connection_values_runs_nothing(project: Path, registry: ComponentRegistry) -> None:
    bundle = build_bundle()
    with open_sandbox(SandboxOptions(backend="local", local_root=project / "root")) as sandbox:
        _, args = _stage(sandbox, project, registry, bundle.data)
        command = bootstrap_command(sys.executable, "../bundle.zip", "../bundle", bundle.sha256, None, args)
        out: list[str] = []
        code = sandbox.run(command, cwd="osiris/work", env={}, on_stdout=out.append, on_stderr=out.append)
    records = _records("".join(out))
    assert [kind for kind, _ in records] == ["bundle_verified", "hello", "worker_error"] and code == 1
    assert records[-1][1]["error"] == ("the worker got no connection values from the host: no complete line of "
                                       "connection values on stdin")
    assert not (project / "root/home/user/osiris/logs").exists()


def test_the_sandbox_refuses_a_bundle_whose_files_differ_from_its_manifest(
        project: Path, registry: ComponentRegistry) -> None:
    source = zipfile.ZipFile(io.BytesIO(build_bundle().data))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as out:
        for entry in source.infolist():
            data = source.read(entry)
            out.writestr(entry, data + b"\n# altered\n" if entry.filename == TAMPERED else data)
    tampered = buffer.getvalue()
    with open_sandbox(SandboxOptions(backend="local", local_root=project / "root")) as sandbox:
        _, args = _stage(sandbox, project, registry, tampered)
        command = bootstrap_command(sys.executable, "../bundle.zip", "../bundle",
                                    hashlib.sha256(tampered).hexdigest(), None, args)
        code, stdout, _ = _run(sandbox, command)
    assert code == EXIT_BUNDLE_REJECTED
    records = _records(stdout)
    assert [kind for kind, _ in records] == ["bundle_rejected"]
    assert records[0][1]["files"] == [TAMPERED]
    assert not (project / "root/home/user/osiris/logs").exists(), "the worker never started"


def _with_package(name: str, program: str) -> bytes:
    """The default bundle plus a top-level package `name` whose `__init__` runs `program`."""
    files = {**bundle_files(DEFAULT_PACKAGES), f"{name}/__init__.py": program.encode()}
    return bundle_bytes(files)


def test_a_bundle_package_named_like_a_preimported_library_is_imported_from_the_bundle(
        project: Path, registry: ComponentRegistry) -> None:
    """The bootstrap imports the engine's libraries while the bundle is verified; a bundle that has a package of
    the same name gets a fresh interpreter whose import path starts with the bundle, as every worker's does."""
    marker = project / "marker-bundle-yaml"
    assert "yaml" in WARM_MODULES
    data = _with_package("yaml", touch_program(marker))
    with open_sandbox(SandboxOptions(backend="local", local_root=project / "root")) as sandbox:
        _, args = _stage(sandbox, project, registry, data)
        command = bootstrap_command(sys.executable, "../bundle.zip", "../bundle", hashlib.sha256(data).hexdigest(),
                                    None, args)
        _, stdout, _ = _run(sandbox, command)
    assert [kind for kind, _ in _records(stdout)][:1] == ["bundle_verified"]
    assert marker.exists(), "the worker imported yaml from somewhere other than the bundle"


def test_with_installed_requirements_nothing_is_imported_before_their_folder_is_on_the_path(
        project: Path, registry: ComponentRegistry) -> None:
    """--e2b-install-deps: the deps folder comes before the interpreter's site-packages, so the bootstrap imports
    none of the engine's libraries from there first."""
    marker = project / "marker-deps-pyarrow"
    bundle = build_bundle()
    with open_sandbox(SandboxOptions(backend="local", local_root=project / "root")) as sandbox:
        _, args = _stage(sandbox, project, registry, bundle.data)
        sandbox.put("osiris/deps/pyarrow/__init__.py", touch_program(marker).encode())
        command = bootstrap_command(sys.executable, "../bundle.zip", "../bundle", bundle.sha256, "../deps", args)
        _, stdout, _ = _run(sandbox, command)
    assert [kind for kind, _ in _records(stdout)][:1] == ["bundle_verified"]
    assert marker.exists(), "pyarrow was not imported from the deps folder"


# --- the host trusts nothing the sandbox says before the worker's hello ---------------------------------------

def _rogue_python(project: Path) -> Path:
    wrapper = project / "rogue-python"
    wrapper.write_text(f"#!/bin/sh\nexec '{sys.executable}' '{rogue_worker.__file__}' \"$@\"\n")
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    return wrapper


@pytest.mark.parametrize(("mode", "message"), [
    ("silent", "the sandbox worker sent 'record' before reporting its code fingerprint"),
    ("late", "the sandbox worker sent 'record' before reporting its code fingerprint"),
    ("unordered", "the sandbox worker sent a record the engine does not write: 'step_complete' of step 'read' "
                  "while it is pending"),
])
def test_a_worker_that_does_not_say_hello_first_is_not_trusted(project: Path, mode: str, message: str) -> None:
    (project / "in.csv").write_text("a\n1\n")
    assert main(["run", str(copy_pipeline(project, "in.csv")), "--sandbox", "local",
                 "--sandbox-python", str(_rogue_python(project)),
                 "--e2b-env", f"ROGUE_MODE={mode}", "--e2b-env", "ROGUE_STEPS=read,write"]) == 1
    card = latest_card(project)
    assert card["status"] == "failed" and message in card["error"] and "nothing it reported was used" in card["error"]
    assert [s["status"] for s in card["steps"]] == ["skipped", "skipped"]
    session = sorted((project / "logs").glob("run_*"))[-1]
    events = [json.loads(line)["event"] for line in (session / "events.jsonl").read_text().splitlines()]
    assert "step_start" not in events and "step_complete" not in events
    assert not (project / "out.csv").exists()


@pytest.mark.parametrize(("mode", "gets_values"), [("greedy", False), ("greedy-trusted", True)])
def test_only_a_worker_whose_hello_is_trusted_gets_the_connection_values(
        project: Path, monkeypatch: pytest.MonkeyPatch, mode: str, gets_values: bool) -> None:
    secret = "pw-Stdin-s3cret"
    monkeypatch.setenv("PG_PASSWORD", secret)
    (project / "osiris_connections.yaml").write_text(yaml.safe_dump({"connections": {"postgres": {"main": {
        "host": "127.0.0.1", "database": "d", "user": "u", "password": "${PG_PASSWORD}"}}}}))
    (project / "in.csv").write_text("a\n1\n")
    (project / "p.yaml").write_text(yaml.safe_dump({"oml_version": "0.1.0", "name": "greedy", "steps": [
        {"id": "read", "component": "filesystem.csv_extractor", "mode": "read", "config": {"path": "in.csv"}},
        {"id": "load", "component": "postgres.writer", "mode": "write", "needs": ["read"],
         "config": {"connection": "@postgres.main", "table": "t"}}]}))
    received = project / "received-on-stdin"
    assert main(["run", "p.yaml", "--sandbox", "local", "--sandbox-python", str(_rogue_python(project)),
                 "--e2b-env", f"ROGUE_MODE={mode}", "--e2b-env", f"ROGUE_STDIN_FILE={received}"]) != 0
    assert (secret in received.read_text()) is gets_values
    if not gets_values:
        assert "the sandbox runs driver code 000000000000" in latest_card(project)["error"]


def test_a_worker_that_never_says_anything_fails_clearly(project: Path) -> None:
    silent = project / "silent-python"
    silent.write_text("#!/bin/sh\necho 'no worker here' >&2\nexit 0\n")
    silent.chmod(0o755)
    (project / "in.csv").write_text("a\n1\n")
    assert main(["run", str(copy_pipeline(project, "in.csv")), "--sandbox", "local",
                 "--sandbox-python", str(silent)]) == 1
    card = latest_card(project)
    assert "the sandbox worker never reported its code fingerprint: no worker here" in card["error"]


# --- a sandbox that cannot be opened --------------------------------------------------------------------------

def test_a_sandbox_that_cannot_be_opened_still_leaves_a_run_card(project: Path) -> None:
    (project / "in.csv").write_text("a\n1\n")
    (project / "a-file").write_text("")
    assert main(["run", str(copy_pipeline(project, "in.csv")), "--sandbox", "local",
                 "--sandbox-root", str(project / "a-file/root")]) == 2
    card = latest_card(project)
    assert card["status"] == "failed" and card["exit_code"] == 2
    assert "cannot open the sandbox" in card["error"] and "a-file" in card["error"]
    assert [s["status"] for s in card["steps"]] == ["skipped", "skipped"]
    session = sorted((project / "logs").glob("run_*"))[-1]
    assert json.loads((session / "status.json").read_text())["status"] == "failed"


# --- a --bundle is verified on the host, file by file, before anything is uploaded -----------------------------

def _rezip(entries: list[tuple[str, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a duplicate name is the point of one case
        for name, data in entries:
            archive.writestr(name, data)
    return buffer.getvalue()


def _bundle_entries() -> list[tuple[str, bytes]]:
    source = zipfile.ZipFile(io.BytesIO(build_bundle().data))
    return [(info.filename, source.read(info)) for info in source.infolist()]


def _with_manifest(document: object) -> bytes:
    return _rezip([(n, d) for n, d in _bundle_entries() if n != MANIFEST_NAME]
                  + [(MANIFEST_NAME, json.dumps(document).encode())])


MALFORMED_BUNDLES: dict[str, tuple[Any, str]] = {
    "not-a-zip": (lambda: b"PK\x03\x04 this is not a zip", "not an Osiris bundle: BadZipFile"),
    "no-manifest": (lambda: _rezip([(n, d) for n, d in _bundle_entries() if n != MANIFEST_NAME]),
                    f"not an Osiris bundle: it has no {MANIFEST_NAME}"),
    "manifest-not-json": (lambda: _rezip([*_bundle_entries()[:-1], (MANIFEST_NAME, b"{not json")]),
                          f"not an Osiris bundle: {MANIFEST_NAME}: <root>: Invalid JSON"),
    "files-a-list": (lambda: _with_manifest({"format": 1, "files": ["osiris_core/runner.py"]}),
                     f"{MANIFEST_NAME}: files: Input should be an object"),
    "other-format": (lambda: _with_manifest({"format": 2, "files": {}}), f"{MANIFEST_NAME}: format: Input should be 1"),
    "bad-hash": (lambda: _with_manifest({"format": 1, "files": {"osiris_core/runner.py": "abc"}}),
                 f"{MANIFEST_NAME}: files.osiris_core/runner.py: String should match pattern"),
    "unlisted-file": (lambda: _rezip([("osiris_core/sitecustomize.py", b"import os\n"), *_bundle_entries()]),
                      f"files of the bundle differ from its {MANIFEST_NAME}: osiris_core/sitecustomize.py"),
    "missing-file": (lambda: _rezip([(n, d) for n, d in _bundle_entries() if n != TAMPERED]),
                     f"files of the bundle differ from its {MANIFEST_NAME}: {TAMPERED}"),
    "duplicate-entry": (lambda: _rezip([(TAMPERED, b"import os\n"), *_bundle_entries()]),
                        f"files of the bundle differ from its {MANIFEST_NAME}: {TAMPERED}"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED_BUNDLES))
def test_a_malformed_bundle_is_exit_2_naming_it_before_anything_runs(
        project: Path, case: str, capsys: pytest.CaptureFixture[str]) -> None:
    make, reason = MALFORMED_BUNDLES[case]
    bundle = project / "bad.zip"
    bundle.write_bytes(make())
    (project / "in.csv").write_text("a\n1\n")
    copy_pipeline(project, "in.csv")
    assert main(["parity", "p.yaml", "--bundle", "bad.zip"]) == 2
    err = one_line_error(capsys.readouterr().err)
    assert err.startswith("error: bad.zip: ") and reason in err, err
    assert not (project / "logs").exists(), "parity checks the bundle before its local run"
    root = project / "root"
    assert main(["run", "p.yaml", "--sandbox", "local", "--bundle", "bad.zip", "--sandbox-root", str(root)]) == 2
    card = latest_card(project)
    assert card["error"].startswith("bad.zip: ") and reason in card["error"]
    assert not root.exists(), "no sandbox was opened"


def test_a_bundle_that_expands_too_far_is_refused(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bundle = project / "bomb.zip"
    with zipfile.ZipFile(bundle, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        with archive.open("osiris_core/zeros.py", "w") as stream:
            chunk = bytes(1024 * 1024)
            for _ in range(MAX_BUNDLE_CONTENT_BYTES // len(chunk) + 1):
                stream.write(chunk)
        archive.writestr(MANIFEST_NAME, "{}")
    assert bundle.stat().st_size < 2 * 1024 * 1024
    (project / "in.csv").write_text("a\n1\n")
    copy_pipeline(project, "in.csv")
    assert main(["parity", "p.yaml", "--bundle", "bomb.zip"]) == 2
    assert "over the 256 MiB limit" in one_line_error(capsys.readouterr().err)
