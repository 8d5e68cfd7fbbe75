"""Sandbox runs through the real e2b SDK against the local E2B-compatible server: parity, bundle
verification, fingerprints, failures, a dying worker, and secrets."""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import zipfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from osiris_cli.main import main
from osiris_core.compiler import compile_file
from osiris_core.connections import Connections
from osiris_core.events import EVENT_NAMES, Logged, StepStart
from osiris_core.execution import ExecutionSettings
from osiris_core.manifest import load_compiled
from osiris_core.registry import ComponentRegistry
from osiris_core.runner import LocalExecutor
from osiris_remote.backends import SandboxOptions
from osiris_remote.bundle import build_bundle, bundle_files
from osiris_remote.bundle_format import DEFAULT_PACKAGES, MANIFEST_NAME, bundle_bytes
from osiris_remote.proxy import SandboxExecutor
from tests.conftest import REPO_ROOT
from tests.support.databases import PostgresDatabase
from tests.support.sandbox_backends import ObservedLocalBackend, register_backend

TAMPERED = "osiris_drivers/duckdb/processor/driver.py"


@pytest.fixture
def examples(project: Path) -> Path:
    shutil.copytree(REPO_ROOT / "examples", project / "examples")
    return project / "examples"


def card_of(project: Path) -> dict[str, Any]:
    latest = sorted((project / "logs").glob("run_*"))[-1]
    return dict(json.loads((latest / "run_card.json").read_text()))


def test_parity_holds_for_the_local_example(examples: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["parity", str(examples / "movies_local.yaml")]) == 0
    out = capsys.readouterr().out
    assert "Parity: identical" in out
    card = card_of(examples.parent)
    assert card["execution"]["mode"] == "sandbox"
    assert card["execution"]["sandbox_driver_code_sha256"] == card["execution"]["host_driver_code_sha256"]
    assert len({s["output_sha256"] for s in card["steps"][:3]}) == 3
    assert (examples.parent / "output/director_stats.csv").is_file()


def test_sandbox_run_streams_events_in_the_local_vocabulary(examples: Path) -> None:
    assert main(["run", str(examples / "movies_local.yaml"), "--sandbox", "local"]) == 0
    session = sorted((examples.parent / "logs").glob("run_*"))[-1]
    events = [json.loads(x) for x in (session / "events.jsonl").read_text().splitlines()]
    names = [e["event"] for e in events]
    assert names[0] == "run_start" and names[1] == "drivers_registered" and names[-1] == "run_complete"
    assert names.count("step_complete") == 5
    assert {e["session"] for e in events} == {session.name}
    metrics = [json.loads(x) for x in (session / "metrics.jsonl").read_text().splitlines()]
    assert {m["step_id"] for m in metrics} >= {"write-director-stats-csv"}
    assert (session / "artifacts/compute-director-stats/cleaned_config.json").is_file()


def test_a_file_altered_after_the_bundle_was_built_is_refused_and_named_before_upload(
        examples: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bundle = build_bundle()
    source = zipfile.ZipFile(io.BytesIO(bundle.data))
    tampered = examples.parent / "tampered.zip"
    with zipfile.ZipFile(tampered, "w") as out:
        for info in source.infolist():
            data = source.read(info)
            out.writestr(info, data + b"\n# altered\n" if info.filename == TAMPERED else data)
    root = examples.parent / "sandbox-root"
    assert main(["run", str(examples / "movies_local.yaml"), "--sandbox", "local", "--bundle", str(tampered),
                 "--sandbox-root", str(root)]) == 2
    card = card_of(examples.parent)
    assert f"{tampered}: files of the bundle differ from its {MANIFEST_NAME}: {TAMPERED}" in card["error"]
    assert [s["status"] for s in card["steps"]] == ["skipped"] * 5
    session = sorted((examples.parent / "logs").glob("run_*"))[-1]
    assert "step_start" not in (session / "events.jsonl").read_text()
    assert not root.exists(), "no sandbox was opened, so nothing was uploaded"


def test_a_local_change_not_rebuilt_into_the_bundle_is_a_fingerprint_mismatch(examples: Path) -> None:
    files = bundle_files(DEFAULT_PACKAGES)
    files[TAMPERED] = files[TAMPERED] + b"\n# an edit made after the bundle was built\n"
    stale = examples.parent / "stale.zip"
    stale.write_bytes(bundle_bytes(files))
    assert main(["run", str(examples / "movies_local.yaml"), "--sandbox", "local", "--bundle", str(stale)]) == 2
    card = card_of(examples.parent)
    assert "carries driver code" in card["error"] and "this host runs" in card["error"]
    assert all(s["status"] == "skipped" for s in card["steps"])


def test_a_failing_step_gives_the_same_card_and_exit_code(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "p.yaml").write_text(
        'oml_version: "0.1.0"\nname: failing\nsteps:\n'
        "  - {id: a, component: duckdb.processor, mode: transform, config: {query: 'select * from nope'}}\n"
        "  - {id: b, component: filesystem.csv_writer, mode: write, needs: [a], config: {path: o.csv}}\n")
    assert main(["run", "p.yaml"]) == 1
    local = card_of(project)
    assert main(["run", "p.yaml", "--sandbox", "local"]) == 1
    remote = card_of(project)
    for field in ("status", "exit_code"):
        assert local[field] == remote[field]
    assert [(s["status"], s["error"], s["error_type"]) for s in local["steps"]] == \
        [(s["status"], s["error"], s["error_type"]) for s in remote["steps"]]
    assert main(["parity", "p.yaml"]) == 0


def _worker_pids(sandbox_root: Path) -> list[int]:
    """Worker processes of this test's sandbox only (other tests may run workers at the same time)."""
    found = subprocess.run(["pgrep", "-f", "osiris_remote.worker"], capture_output=True, text=True, check=False)
    pids = []
    for pid in (int(p) for p in found.stdout.split()):
        try:
            cwd = Path(os.readlink(f"/proc/{pid}/cwd"))
        except OSError:
            continue
        if cwd.is_relative_to(sandbox_root.resolve()):
            pids.append(pid)
    return pids


def _slow_pipeline(project: Path) -> Path:
    path = project / "slow.yaml"
    path.write_text(
        'oml_version: "0.1.0"\nname: slow\nsteps:\n'
        "  - {id: spin, component: duckdb.processor, mode: transform,\n"
        "     config: {query: 'select sum(hash(i)) as h from range(4000000000) t(i)'}}\n"
        "  - {id: out, component: filesystem.csv_writer, mode: write, needs: [spin], config: {path: o.csv}}\n")
    return path


def test_the_sandbox_dying_mid_run_fails_the_host_run_clearly(project: Path, registry: ComponentRegistry) -> None:
    compiled = compile_file(_slow_pipeline(project), registry, Connections(None), project / "logs")
    assert compiled.manifest_path is not None
    killed: list[int] = []

    sandbox_root = project / "sandbox-root"

    def kill_on_start(logged: Logged) -> None:
        if isinstance(logged.item, StepStart) and logged.item.step_id == "spin":
            for pid in _worker_pids(sandbox_root):
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)

    settings = ExecutionSettings(registry, Connections(None), project / "logs", listeners=(kill_on_start,))
    result = SandboxExecutor(settings, SandboxOptions(backend="local", local_root=sandbox_root)).run(
        load_compiled(compiled.manifest_path))
    assert killed
    assert result.exit_code == 1 and result.card.status == "failed"
    assert result.card.error is not None and "worker exited before finishing" in result.card.error
    assert [s.status for s in result.card.steps] == ["failed", "skipped"]
    events = [json.loads(x) for x in (result.session.path / "events.jsonl").read_text().splitlines()]
    assert events[-1]["event"] == "run_complete" and events[-1]["status"] == "failed"


def _engine_events(session: Path) -> list[str]:
    names = [json.loads(x)["event"] for x in (session / "events.jsonl").read_text().splitlines()]
    return [name for name in names if name in EVENT_NAMES]


def test_a_killed_worker_leaves_the_card_a_local_failure_leaves(project: Path, registry: ComponentRegistry) -> None:
    """The run recorder closes both runs with the same code: the running step fails, the rest are skipped."""
    compiled = compile_file(_slow_pipeline(project), registry, Connections(None), project / "logs")
    assert compiled.manifest_path is not None
    loaded = load_compiled(compiled.manifest_path)
    local = LocalExecutor(ExecutionSettings(registry, Connections(None), project / "logs", step_timeout_s=1)).run(
        loaded)
    sandbox_root = project / "sandbox-root"
    killed: list[int] = []

    def kill_on_start(logged: Logged) -> None:
        if isinstance(logged.item, StepStart) and logged.item.step_id == "spin":
            for pid in _worker_pids(sandbox_root):
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)

    settings = ExecutionSettings(registry, Connections(None), project / "logs", listeners=(kill_on_start,))
    remote = SandboxExecutor(settings, SandboxOptions(backend="local", local_root=sandbox_root)).run(loaded)
    assert killed
    cards = [json.loads((r.session.path / "run_card.json").read_text()) for r in (local, remote)]
    assert cards[0].keys() == cards[1].keys()
    assert [(c["status"], c["exit_code"]) for c in cards] == [("failed", 1), ("failed", 1)]
    assert all(c["error"] for c in cards)
    for local_step, remote_step in zip(cards[0]["steps"], cards[1]["steps"], strict=True):
        assert local_step.keys() == remote_step.keys()
        # Row counts of the failed step are what a dead worker could not report; everything else has one shape.
        for key in local_step.keys() - {"rows_in", "rows_out"}:
            assert (local_step[key] is None) == (remote_step[key] is None), (local_step["step_id"], key)
    assert [(s["status"], s["attempts"]) for s in cards[1]["steps"]] == [("failed", 1), ("skipped", None)]
    assert cards[1]["steps"][0]["error_type"] == "RunError"
    assert "worker exited before finishing" in cards[1]["steps"][0]["error"]
    expected = ["run_start", "drivers_registered", "step_start", "step_failed", "step_skipped", "run_complete"]
    assert [n for n in _engine_events(local.session.path) if n != "step_counted"] == expected
    assert _engine_events(remote.session.path) == expected
    statuses = [json.loads((r.session.path / "status.json").read_text()) for r in (local, remote)]
    assert statuses[0].keys() == statuses[1].keys() and statuses[1]["status"] == "failed"


def test_per_step_timeout_in_the_sandbox(project: Path) -> None:
    path = _slow_pipeline(project)
    assert main(["run", str(path), "--sandbox", "local", "--step-timeout", "1"]) == 1
    card = card_of(project)
    assert card["steps"][0]["error_type"] == "StepTimeout"
    assert "exceeded the per-step timeout of 1 s" in card["steps"][0]["error"]


def test_no_secret_reaches_the_sandbox_files_artifacts_events_environment_or_process_list(
        project: Path, pg_db: PostgresDatabase, monkeypatch: pytest.MonkeyPatch) -> None:
    """Secrets go to the worker on its stdin: not in its environment (/proc/<pid>/environ) nor in the sandbox's
    process list, which shows every command's environment to any token holder, as envd's List does."""
    secret = "pw-Sandb0x-s3cret"
    unrelated = "unrelated-s3cret-value"
    monkeypatch.setenv("PG_PASSWORD", secret)
    monkeypatch.setenv("HOST_ONLY_SETTING", "host-only-value")
    (project / "osiris_connections.yaml").write_text(yaml.safe_dump({"connections": {
        "postgres": {"main": {"host": pg_db.host, "port": pg_db.port, "database": pg_db.database,
                              "user": pg_db.user, "password": "${PG_PASSWORD}"},
                     "other": {"host": "h", "database": "d", "user": "u", "password": unrelated}}}}))
    (project / "data.csv").write_text("id,name\n1,a\n2,b\n")
    (project / "p.yaml").write_text(yaml.safe_dump({"oml_version": "0.1.0", "name": "secrets", "steps": [
        {"id": "read", "component": "filesystem.csv_extractor", "mode": "read", "config": {"path": "data.csv"}},
        {"id": "load", "component": "postgres.writer", "mode": "write", "needs": ["read"],
         "config": {"connection": "@postgres.main", "table": "secret_test", "write_mode": "replace",
                    "create_if_missing": True}}]}))
    backend = ObservedLocalBackend()
    register_backend(monkeypatch, "observed", backend)
    environ_seen: list[dict[str, str]] = []
    listed: list[str] = []
    worker_envs: list[dict[str, str]] = []

    def look_while_loading(logged: Logged) -> None:
        if isinstance(logged.item, StepStart) and logged.item.step_id == "load":
            for pid in _worker_pids(sandbox_root):
                raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
                environ_seen.append(dict(x.decode().split("=", 1) for x in raw if b"=" in x))
            processes = backend.servers[0].sandbox().commands.list()  # any holder of the sandbox's token
            listed.append(repr(processes))
            worker_envs.extend(dict(p.envs) for p in processes if "osiris" in " ".join(p.args))

    sandbox_root = project / "sandbox-root"
    from osiris_drivers.registry import default_registry

    registry = default_registry(entry_points=False)
    connections = Connections.load(project / "osiris_connections.yaml")
    compiled = compile_file(project / "p.yaml", registry, connections, project / "logs")
    assert compiled.manifest_path is not None
    settings = ExecutionSettings(registry, connections, project / "logs", listeners=(look_while_loading,))
    options = SandboxOptions(backend="observed", local_root=sandbox_root, env={"VISIBLE_SETTING": "listed"})
    result = SandboxExecutor(settings, options).run(load_compiled(compiled.manifest_path))
    assert result.exit_code == 0, result.card.error
    with pg_db.connect() as connection, connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM secret_test")
        assert cursor.fetchone() == (2,)
    for root in (sandbox_root, project / "logs"):
        for file in root.rglob("*"):
            if file.is_file():
                data = file.read_bytes()
                assert secret.encode() not in data, file
                assert unrelated.encode() not in data, file
    assert environ_seen and listed, "the worker was not observed"
    env = environ_seen[0]
    assert secret not in env.values() and unrelated not in env.values(), "a secret is in the worker's environment"
    assert "HOST_ONLY_SETTING" not in env and not [k for k in env if k.startswith("OSIRIS_")]
    assert env["VISIBLE_SETTING"] == "listed"
    assert worker_envs == [{"VISIBLE_SETTING": "listed"}], "the process list shows a command's environment"
    assert secret not in listed[0] and unrelated not in listed[0], "a secret is in the sandbox's process list"


def test_bundles_are_deterministic_and_verify_themselves() -> None:
    first, second = build_bundle(), build_bundle()
    assert first.data == second.data and first.sha256 == second.sha256
    assert first.tampered_files() == []
    names = zipfile.ZipFile(io.BytesIO(first.data)).namelist()
    assert names[-1] == MANIFEST_NAME and names[:-1] == sorted(names[:-1])
    assert {"osiris_core/runner.py", "osiris_drivers/duckdb/processor/spec.yaml", "osiris_remote/worker/main.py"} <= \
        set(names)


def test_a_sandbox_run_updates_an_existing_duckdb_file_and_a_failed_one_leaves_it(project: Path) -> None:
    import duckdb

    (project / "data.csv").write_text("id,name\n1,a\n2,b\n")
    database = project / "out" / "keep.duckdb"
    database.parent.mkdir()
    with duckdb.connect(str(database)) as con:
        con.execute("CREATE TABLE other_table AS SELECT 42 AS answer")
        con.execute("CREATE TABLE items (id BIGINT, name VARCHAR)")
        con.execute("INSERT INTO items VALUES (0, 'old')")

    def pipeline(create_if_missing: bool, table: str) -> str:
        path = project / f"{table}.yaml"
        path.write_text(yaml.safe_dump({"oml_version": "0.1.0", "name": "keep", "steps": [
            {"id": "read", "component": "filesystem.csv_extractor", "mode": "read", "config": {"path": "data.csv"}},
            {"id": "write", "component": "duckdb.writer", "mode": "write", "needs": ["read"],
             "config": {"path": "out/keep.duckdb", "table": table, "write_mode": "append",
                        "create_if_missing": create_if_missing}}]}))
        return str(path)

    assert main(["run", pipeline(False, "items"), "--sandbox", "local"]) == 0
    with duckdb.connect(str(database)) as con:
        assert con.execute("SELECT answer FROM other_table").fetchall() == [(42,)]
        assert con.execute("SELECT id, name FROM items ORDER BY id").fetchall() == [(0, "old"), (1, "a"), (2, "b")]
    before = database.read_bytes()
    assert main(["run", pipeline(False, "missing_table"), "--sandbox", "local"]) == 1
    assert database.read_bytes() == before


def test_a_bundle_whose_worker_differs_from_the_host_is_refused(examples: Path) -> None:
    files = bundle_files(DEFAULT_PACKAGES)
    files["osiris_remote/worker/main.py"] += b"\n# a worker the host does not run\n"
    other = examples.parent / "other-worker.zip"
    other.write_bytes(bundle_bytes(files))
    assert main(["run", str(examples / "movies_local.yaml"), "--sandbox", "local", "--bundle", str(other)]) == 2
    card = card_of(examples.parent)
    assert "differs from the code this host runs: osiris_remote/worker/main.py" in card["error"]
    assert all(s["status"] == "skipped" for s in card["steps"])


def test_a_failed_download_still_writes_the_card_and_leaves_no_partial_file(examples: Path) -> None:
    (examples.parent / "output/director_stats.csv").mkdir(parents=True)  # a directory where a file must go
    assert main(["run", str(examples / "movies_local.yaml"), "--sandbox", "local"]) == 1
    card = card_of(examples.parent)
    assert "bringing back output files failed" in card["error"]
    assert not list((examples.parent / "output").glob(".*osiris-download"))
