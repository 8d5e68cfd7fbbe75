"""The bundle carries exactly what runs in the sandbox: the engine, the components' packages and the worker —
never the proxy, the backends, the sandbox server, the bootstrap or the CLI. The worker imports nothing host-side,
`e2b` is imported only by its adapter and the local sandbox server, and the Pants plugin's file selection gives
the runtime builder's bytes."""

from __future__ import annotations

import ast
import io
import re
import zipfile
from pathlib import Path, PurePosixPath

import pytest

from osiris_core.compiler import compile_file
from osiris_core.connections import Connections
from osiris_core.errors import InputError, YamlError
from osiris_core.execution import ExecutionSettings
from osiris_core.manifest import load_compiled
from osiris_core.registry import ComponentRegistry, load_component
from osiris_drivers.registry import builtin_components, default_registry
from osiris_remote.backends import SandboxOptions
from osiris_remote.bundle import build_bundle, bundle_for, ship
from osiris_remote.bundle_format import DEFAULT_PACKAGES, MANIFEST_NAME, bundle_bytes, bundled
from osiris_remote.proxy import SandboxExecutor
from osiris_remote.worker import components as worker_components
from tests.conftest import REPO_ROOT
from tests.support.components import PROBE_SPEC, probe_component

SRC = REPO_ROOT / "src/python"
HOST_SIDE = ("osiris_remote/proxy.py", "osiris_remote/bundle.py", "osiris_remote/bundle_format.py",
             "osiris_remote/bootstrap.py", "osiris_remote/deps.py", "osiris_remote/locked_requirements.json",
             "osiris_remote/backends/", "osiris_remote/sandbox_server/", "osiris_cli/")


def _names(data: bytes) -> list[str]:
    return zipfile.ZipFile(io.BytesIO(data)).namelist()


def test_the_bundle_has_no_proxy_backend_sandbox_server_bootstrap_or_cli_module() -> None:
    names = _names(build_bundle().data)
    assert {PurePosixPath(n).parts[0] for n in names if n != MANIFEST_NAME} == {
        "osiris_core", "osiris_drivers", "osiris_remote"}
    leaked = [n for n in names if n.startswith(HOST_SIDE)]
    assert leaked == []
    remote = sorted(n for n in names if n.startswith("osiris_remote/"))
    assert remote[0] == "osiris_remote/__init__.py"
    assert all(n.startswith("osiris_remote/worker/") for n in remote[1:]), remote
    assert {"osiris_remote/worker/main.py", "osiris_remote/worker/protocol.py",
            "osiris_remote/worker/components.py"} <= set(remote)


def _imports(path: Path) -> set[str]:
    """Absolute imports anywhere in a module (functions included)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
    return found


def _module_file(module: str) -> Path | None:
    base = SRC / module.replace(".", "/")
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def test_the_worker_imports_only_the_engine_and_itself_and_all_of_it_is_in_the_bundle() -> None:
    seen: set[str] = set()
    todo = ["osiris_remote.worker.main"]
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        path = _module_file(module)
        assert path is not None, module
        for name in _imports(path):
            if name.split(".")[0].startswith("osiris_") and _module_file(name) is not None:
                todo.append(name)
    first_party = sorted(seen)
    outside = [m for m in first_party if not (m.startswith(("osiris_core.", "osiris_remote.worker."))
                                              or m in ("osiris_core", "osiris_remote.worker"))]
    assert outside == [], "the worker imports host-side code"
    names = set(_names(build_bundle().data))
    for module in first_party:
        path = _module_file(module)
        assert path is not None and path.relative_to(SRC).as_posix() in names, module


def test_only_the_e2b_adapter_and_the_local_sandbox_server_import_e2b() -> None:
    allowed = ("osiris_remote/backends/e2b.py", "osiris_remote/sandbox_server/")
    importers = sorted(path.relative_to(SRC).as_posix() for path in SRC.rglob("*.py")
                       if any(name.split(".")[0] == "e2b" for name in _imports(path)))
    assert importers and all(path.startswith(allowed) for path in importers), importers


def test_the_pants_plugins_selection_gives_the_runtime_builders_bytes() -> None:
    """pants-plugins/osiris_bundle keeps the files `bundled(path, DEFAULT_PACKAGES)` selects, as source-root paths."""
    on_disk = {path.relative_to(SRC).as_posix(): path for path in SRC.rglob("*") if path.is_file()}
    selected = {name: path.read_bytes() for name, path in on_disk.items() if bundled(name, DEFAULT_PACKAGES)}
    assert bundle_bytes(selected) == build_bundle().data


def test_the_worker_reads_the_same_manifest_name_as_the_builder() -> None:
    assert worker_components.MANIFEST_NAME == MANIFEST_NAME


def test_a_component_whose_spec_is_no_spec_yaml_is_refused_before_the_sandbox_opens(
        project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TESTDB_PASSWORD", "pw-probe")
    (project / "osiris_connections.yaml").write_text(
        "connections:\n  testdb:\n    main: {host: h, user: u, password: '${TESTDB_PASSWORD}'}\n")
    (project / "p.yaml").write_text('oml_version: "0.1.0"\nname: probe\nsteps:\n'
                                    "  - {id: probe, component: test.probe, mode: read}\n")
    registry = ComponentRegistry([*builtin_components(), probe_component()])  # its spec lives in a .py file
    connections = Connections.load(project / "osiris_connections.yaml")
    compiled = compile_file(project / "p.yaml", registry, connections, project / "logs")
    assert compiled.manifest_path is not None
    root = project / "sandbox-root"
    result = SandboxExecutor(ExecutionSettings(registry, connections, project / "logs"),
                             SandboxOptions(backend="local", local_root=root)).run(
        load_compiled(compiled.manifest_path))
    assert result.exit_code == 2 and result.card.error is not None
    assert "component 'test.probe' cannot run in a sandbox: no spec.yaml of package 'tests'" in result.card.error
    assert [s.status for s in result.card.steps] == ["skipped"]
    assert not root.exists()


def test_the_host_names_the_spec_file_beside_each_components_driver() -> None:
    components = default_registry(entry_points=False).used_by(["duckdb.processor", "filesystem.csv_writer"])
    shipment = ship(components)
    assert shipment.spec_paths == ["osiris_drivers/duckdb/processor/spec.yaml",
                                   "osiris_drivers/filesystem/csv_writer/spec.yaml"]
    assert shipment.bundle.sha256 == bundle_for(components).sha256


def _unpacked(root: Path, files: dict[str, bytes]) -> Path:
    """A folder as the bootstrap leaves it: the files and the bundle's manifest of them."""
    for path, data in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_bytes(data)
    zipped = zipfile.ZipFile(io.BytesIO(bundle_bytes(files)))
    (root / MANIFEST_NAME).write_bytes(zipped.read(MANIFEST_NAME))
    return root


def test_the_worker_parses_only_the_specs_it_is_named(tmp_path: Path) -> None:
    spec = (SRC / "osiris_drivers/filesystem/csv_writer/spec.yaml").read_bytes()
    root = _unpacked(tmp_path, {"plugin_pkg/good/spec.yaml": spec, "plugin_pkg/broken/spec.yaml": b"name: [\n",
                                "plugin_pkg/__init__.py": b""})
    specs = worker_components.bundled_specs(root, ["plugin_pkg/good/spec.yaml"])
    assert [s.name for s in specs.values()] == ["filesystem.csv_writer"]
    with pytest.raises(YamlError, match="invalid YAML"):
        worker_components.bundled_specs(root, ["plugin_pkg/broken/spec.yaml"])


@pytest.mark.parametrize("named", ["plugin_pkg/__init__.py", "plugin_pkg/absent/spec.yaml", "../spec.yaml"])
def test_the_worker_refuses_a_spec_path_that_is_no_component_spec_of_the_bundle(tmp_path: Path, named: str) -> None:
    root = _unpacked(tmp_path / "bundle", {"plugin_pkg/__init__.py": b"", "plugin_pkg/good/spec.yaml": b"x: 1\n"})
    (tmp_path / "spec.yaml").write_text("x: 1\n")
    with pytest.raises(InputError, match=f"not component spec files of the bundle: {re.escape(named)}"):
        worker_components.bundled_specs(root, [named])


def test_a_spec_yaml_that_is_not_beside_its_driver_is_found_among_its_packages_specs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = tmp_path / "farspec_pkg"
    (package / "drivers").mkdir(parents=True)
    (package / "specs/probe").mkdir(parents=True)
    (package / "specs/other").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "drivers/__init__.py").write_text("")
    (package / "drivers/probe.py").write_text(
        "from tests.support.components import ProbeDriver\n\n\nclass FarProbe(ProbeDriver):\n    pass\n")
    text = PROBE_SPEC.replace("name: test.probe", "name: far.probe").replace(
        "driver: tests.support.components:ProbeDriver", "driver: farspec_pkg.drivers.probe:FarProbe")
    (package / "specs/probe/spec.yaml").write_text(text)
    (package / "specs/other/spec.yaml").write_text(text.replace("name: far.probe", "name: far.other"))
    monkeypatch.syspath_prepend(str(tmp_path))
    component = load_component(text, origin="farspec_pkg/specs/probe/spec.yaml")
    assert ship([component]).spec_paths == ["farspec_pkg/specs/probe/spec.yaml"]
