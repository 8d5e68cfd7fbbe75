"""--e2b-install-deps: the locked, hash-checked third-party projects a manifest needs, pip-installed in the sandbox.

The sandbox runs use real pip against PyPI (a stable PIP_CACHE_DIR keeps repeated runs from downloading again)
with a fresh venv as the sandbox interpreter: it has pip but none of the project's dependencies, so the run can
only succeed through what was installed.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from importlib.metadata import packages_distributions
from importlib.resources import files
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any, cast

import pytest
from packaging.requirements import Requirement  # pants: no-infer-dep (pytest's dependency)

import osiris_remote.proxy
from osiris_cli.main import main
from osiris_core.compiler import compile_file
from osiris_core.connections import Connections
from osiris_core.errors import InputError
from osiris_core.manifest import Manifest, load_compiled
from osiris_core.registry import Component, ComponentRegistry
from osiris_remote.deps import (
    CORE_REQUIREMENTS,
    LOCK_RESOURCE,
    WORKER_IMPORT_REQUIREMENTS,
    closure,
    locked,
    needed_projects,
    normalize,
    requirements_txt,
)
from tests.conftest import REPO_ROOT

LOCK = REPO_ROOT / "3rdparty/python/default.lock"
EXPORTER = REPO_ROOT / "build-support/lock/export_lock.py"
PIP_CACHE = Path(os.environ.get("OSIRIS_TEST_PIP_CACHE", "/tmp/osiris-pip-cache"))
PIP_LOG = "artifacts/_system/pip_install.log"
CPYTHON_311_LINUX = {"implementation_name": "cpython", "platform_python_implementation": "CPython",
                     "python_version": "3.11", "python_full_version": "3.11.7", "sys_platform": "linux",
                     "platform_system": "Linux", "os_name": "posix", "platform_machine": "x86_64"}


def _exporter() -> ModuleType:
    if not (EXPORTER.is_file() and LOCK.is_file()):
        pytest.fail(f"{EXPORTER.relative_to(REPO_ROOT)} and {LOCK.relative_to(REPO_ROOT)} are not in the test's "
                    "sandbox: the tests need a dependency on a `files` target that owns them", pytrace=False)
    spec = importlib.util.spec_from_file_location("export_lock", EXPORTER)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _manifest(*components: str) -> Manifest:
    return cast(Manifest, SimpleNamespace(steps=[SimpleNamespace(component=c) for c in components]))


# --- the lock export ----------------------------------------------------------------------------------------------

def test_the_shipped_json_is_the_export_of_the_current_lock() -> None:
    exporter = _exporter()
    expected = exporter.render(exporter.export(LOCK.read_text(encoding="utf-8")))
    shipped = files("osiris_remote").joinpath(LOCK_RESOURCE).read_text(encoding="utf-8")
    assert shipped == expected, "the lock changed: run python3 build-support/lock/export_lock.py"


def test_the_export_keeps_every_sha256_and_drops_extra_only_requirements() -> None:
    document = _exporter().lock_document(LOCK.read_text(encoding="utf-8"))
    raw = {normalize(r["project_name"]): r for r in document["locked_resolves"][0]["locked_requirements"]}
    lock = locked()
    assert set(lock) == set(raw)
    for name, entry in lock.items():
        assert entry["version"] == raw[name]["version"]
        assert entry["hashes"] == sorted(a["hash"] for a in raw[name]["artifacts"])
        assert all(re.fullmatch(r"[0-9a-f]{64}", h) for h in entry["hashes"])
    assert lock["duckdb"]["requires"] == []  # pyarrow, numpy, pandas come only with duckdb[all]
    assert "pyarrow" in lock["duckdb"]["extras"]["all"]
    assert "h2" not in lock["httpx"]["requires"] and lock["httpx"]["extras"]["http2"] == ["h2"]
    assert "httpx[http2]" in lock["postgrest"]["requires"]


# --- closure, requirements file, what a manifest needs ------------------------------------------------------------

def test_closure_follows_dependencies_and_the_extras_they_ask_for() -> None:
    supabase = set(closure(["supabase"]))
    assert {"supabase", "httpx", "postgrest", "supabase-auth", "realtime", "storage3", "yarl", "anyio"} <= supabase
    assert {"h2", "hpack", "hyperframe"} <= supabase  # postgrest asks for httpx[http2]
    assert {"pyjwt", "cryptography", "cffi", "pycparser"} <= supabase  # supabase-auth asks for pyjwt[crypto]
    assert "brotli" not in supabase and "click" not in supabase  # httpx's other extras: never asked for
    assert closure(["httpx"]) == ["anyio", "certifi", "h11", "httpcore", "httpx", "idna", "typing-extensions"]
    assert "h2" in closure(["httpx[http2]"])
    assert closure(["duckdb"]) == ["duckdb"]
    assert closure(["PyYAML", "not-in-the-lock"]) == ["pyyaml"]
    assert closure([]) == []


def test_requirements_txt_pins_each_project_with_all_its_locked_hashes() -> None:
    projects = closure([*CORE_REQUIREMENTS, "supabase"])
    lines = requirements_txt(projects).splitlines()
    assert [line.split("==")[0] for line in lines] == projects
    for line in lines:
        name, _, rest = line.partition("==")
        version, *hashes = rest.split(" ")
        assert version == locked()[name]["version"]
        assert hashes and all(re.fullmatch(r"--hash=sha256:[0-9a-f]{64}", h) for h in hashes), line
        assert sorted(h.removeprefix("--hash=sha256:") for h in hashes) == locked()[name]["hashes"]
    with pytest.raises(ValueError, match="not in the locked requirements"):
        requirements_txt(["left-pad"])


def test_a_manifest_needs_the_core_the_worker_imports_and_its_components_requirements(
        registry: ComponentRegistry) -> None:
    base = sorted({*CORE_REQUIREMENTS, *WORKER_IMPORT_REQUIREMENTS})
    assert needed_projects(_manifest("filesystem.csv_extractor", "filesystem.csv_writer"), registry) == base
    assert needed_projects(_manifest("duckdb.processor", "duckdb.writer"), registry) == sorted([*base, "duckdb"])
    assert needed_projects(_manifest("filesystem.csv_extractor", "postgres.writer"), registry) == \
        sorted([*base, "psycopg2-binary"])
    needed = needed_projects(_manifest("mysql.extractor", "supabase.writer"), registry)
    assert needed == sorted([*base, "connectorx", "pymysql", "supabase", "httpx", "psycopg2-binary"])


def test_a_component_requiring_an_unlocked_project_is_refused(registry: ComponentRegistry) -> None:
    original = registry.get("filesystem.csv_writer")
    spec = original.spec.model_copy(update={"requirements": ("left-pad",)})
    with pytest.raises(InputError, match="requires 'left-pad', which is not in the locked requirements"):
        needed_projects(_manifest("filesystem.csv_writer"), ComponentRegistry([Component(spec, original.driver)]))


# --- the import graph agrees with the declared requirements -------------------------------------------------------

def _module_imports(module: str, *, nested: bool) -> set[str]:
    """Absolute imports of `module`: at module level only (skipping `if TYPE_CHECKING:`), or anywhere."""
    spec = importlib.util.find_spec(module)
    assert spec is not None and spec.origin is not None
    tree = ast.parse(Path(spec.origin).read_text(encoding="utf-8"))
    found: set[str] = set()

    def visit(nodes: list[ast.AST]) -> None:
        for node in nodes:
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module)
                found.update(f"{node.module}.{alias.name}" for alias in node.names)
            elif isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                continue
            elif nested or not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                for field in ("body", "orelse", "finalbody", "handlers"):
                    visit(list(getattr(node, field, [])))

    visit([*tree.body])
    return found


def _third_party(root: str, *, nested: bool) -> set[str]:
    """Projects imported by `root` and the first-party modules it imports, per the installed distributions."""
    distributions = packages_distributions()
    seen: set[str] = set()
    projects: set[str] = set()
    todo = [root]
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        for name in _module_imports(module, nested=nested):
            top = name.split(".")[0]
            if top.startswith("osiris_"):
                if _is_module(name):
                    todo.append(name)
            elif top not in sys.stdlib_module_names and top != "__future__":
                assert top in distributions, f"{module} imports {top}, which no installed distribution provides"
                projects.update(normalize(d) for d in distributions[top])
    return projects


def _is_module(name: str) -> bool:
    try:
        spec = importlib.util.find_spec(name)
    except ModuleNotFoundError:
        return False
    return spec is not None and spec.origin is not None and spec.origin.endswith(".py")


def test_what_the_worker_imports_at_module_level_is_core_plus_the_worker_import_requirements(
        registry: ComponentRegistry) -> None:
    # The worker, and every driver module of the bundled component packages: it loads each component they carry.
    modules = ["osiris_remote.worker.main", *sorted({c.spec.driver.split(":")[0] for c in registry})]
    imported = set().union(*(_third_party(module, nested=False) for module in modules))
    assert imported <= set(closure([*CORE_REQUIREMENTS, *WORKER_IMPORT_REQUIREMENTS]))
    # and nothing in WORKER_IMPORT_REQUIREMENTS is stale:
    assert imported - set(closure(CORE_REQUIREMENTS)) == {normalize(p) for p in WORKER_IMPORT_REQUIREMENTS}


def test_each_drivers_imports_are_what_its_spec_requires(registry: ComponentRegistry) -> None:
    for component in registry:
        module = component.spec.driver.split(":")[0]
        imported = _third_party(module, nested=True)
        required = {normalize(p) for p in component.spec.requirements}
        assert imported <= set(closure([*CORE_REQUIREMENTS, *required])), component.name
        assert required <= imported, f"{component.name} requires projects its driver does not import"


def _closure_evaluating_markers(roots: list[str], raw: dict[str, Any]) -> list[str]:
    """An independent closure over the raw lock that evaluates every marker for CPython 3.11 on Linux."""
    found: set[str] = set()
    seen: set[tuple[str, str]] = set()
    todo = [Requirement(r) for r in roots]
    while todo:
        requirement = todo.pop()
        name = normalize(requirement.name)
        if name not in raw:
            continue
        found.add(name)
        for extra in ["", *sorted(requirement.extras)]:
            if (name, extra) in seen:
                continue
            seen.add((name, extra))
            for text in raw[name]["requires_dists"]:
                dependency = Requirement(text)
                if dependency.marker is None or dependency.marker.evaluate({**CPYTHON_311_LINUX, "extra": extra}):
                    todo.append(dependency)
    return sorted(found)


def test_closure_agrees_with_evaluating_every_marker_for_each_builtin_component(
        registry: ComponentRegistry) -> None:
    """deps.closure ignores markers other than `extra`: right only while that changes no install set."""
    document = _exporter().lock_document(LOCK.read_text(encoding="utf-8"))
    raw = {normalize(r["project_name"]): r for r in document["locked_resolves"][0]["locked_requirements"]}
    base = [*CORE_REQUIREMENTS, *WORKER_IMPORT_REQUIREMENTS]
    root_sets = [[*base, *c.spec.requirements] for c in registry]
    root_sets.append([*base, *(p for c in registry for p in c.spec.requirements)])
    for roots in root_sets:
        assert closure(roots) == _closure_evaluating_markers(roots, raw), roots


# --- the CLI flag -------------------------------------------------------------------------------------------------

def test_the_flag_needs_a_sandbox(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "p.yaml").write_text("oml_version: '0.1.0'\nname: p\nsteps: []\n")
    assert main(["run", "p.yaml", "--e2b-install-deps"]) == 2
    assert "--e2b-install-deps applies only to sandbox runs" in capsys.readouterr().err


# --- real installs in the local sandbox ---------------------------------------------------------------------------

def _python_311() -> str | None:
    """A CPython 3.11 that can create venvs with pip (the lock's wheels are for CPython 3.11)."""
    candidates = [getattr(sys, "_base_executable", None), sys.executable, shutil.which("python3.11"),
                  *sorted(str(p) for p in Path.home().glob(".pyenv/versions/3.11*/bin/python3.11"))]
    check = ("import sys, ensurepip, venv; "
             "sys.exit(sys.implementation.name != 'cpython' or sys.version_info[:2] != (3, 11))")
    for candidate in candidates:
        if candidate and subprocess.run([candidate, "-c", check], capture_output=True, check=False).returncode == 0:
            return candidate
    return None


def _bare_env() -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"}


def _can_import(python: Path, module: str) -> bool:
    probe = subprocess.run([str(python), "-c", f"import {module}"], capture_output=True, env=_bare_env(),
                           cwd="/", check=False)
    return probe.returncode == 0


@pytest.fixture(scope="module")
def venvs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    """Fresh venvs of a CPython 3.11: one with pip, one without."""
    base = _python_311()
    if base is None:
        pytest.skip("no CPython 3.11 with the venv and ensurepip modules on this machine "
                    "(looked at this interpreter's base, python3.11 on PATH and ~/.pyenv/versions/3.11*)")
    root = tmp_path_factory.mktemp("venvs")
    for name, extra in (("with-pip", []), ("no-pip", ["--without-pip"])):
        subprocess.run([base, "-m", "venv", *extra, str(root / name)], check=True, env=_bare_env())
    yield SimpleNamespace(with_pip=root / "with-pip/bin/python", no_pip=root / "no-pip/bin/python")


def _sandbox_run(project: Path, python: Path, *extra: str, command: str = "run") -> int:
    return main([command, str(project / "examples/movies_local.yaml"), "--sandbox", "local",
                 "--sandbox-python", str(python), "--e2b-env", f"PIP_CACHE_DIR={PIP_CACHE}", *extra])


def _latest_session(project: Path) -> Path:
    return sorted((project / "logs").glob("run_*"))[-1]


def _card(session: Path) -> dict[str, Any]:
    return dict(json.loads((session / "run_card.json").read_text(encoding="utf-8")))


@pytest.fixture
def examples(project: Path) -> Path:
    shutil.copytree(REPO_ROOT / "examples", project / "examples")
    return project / "examples"


def test_install_deps_lets_a_bare_interpreter_run_the_example(examples: Path, venvs: SimpleNamespace,
                                                              registry: ComponentRegistry) -> None:
    project = examples.parent
    assert not _can_import(venvs.with_pip, "duckdb") and not _can_import(venvs.with_pip, "pydantic")
    assert _can_import(venvs.with_pip, "pip")

    assert _sandbox_run(project, venvs.with_pip) == 1  # without the flag the worker cannot even start
    assert not (_latest_session(project) / PIP_LOG).exists()

    root = project / "sandbox-root"
    assert _sandbox_run(project, venvs.with_pip, "--e2b-install-deps", "--sandbox-root", str(root)) == 0
    session = _latest_session(project)
    card = _card(session)
    assert card["status"] == "succeeded" and [s["status"] for s in card["steps"]] == ["succeeded"] * 5
    assert (project / "output/director_stats.csv").is_file() and (project / "output/osiris.duckdb").is_file()
    assert (session / "artifacts/compute-director-stats/cleaned_config.json").is_file()  # merged beside _system

    log = (session / PIP_LOG).read_text(encoding="utf-8")
    assert "--require-hashes" in log and "exit code 0" in log
    assert re.search(r"Successfully installed .*duckdb-1\.4\.4", log) and "pyarrow" in log

    compiled = compile_file(examples / "movies_local.yaml", registry, Connections(None), project / "logs")
    assert compiled.manifest_path is not None
    expected = closure(needed_projects(load_compiled(compiled.manifest_path).manifest, registry))
    deps = root / "home/user/osiris/deps"
    installed = sorted(normalize(p.name.split("-")[0]) for p in deps.glob("*.dist-info"))  # name_escaped-version
    assert installed == expected
    assert card["execution"]["deps"]["projects"] == [f"{p}=={locked()[p]['version']}" for p in expected]


def test_parity_holds_with_installed_deps(examples: Path, venvs: SimpleNamespace,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    assert _sandbox_run(examples.parent, venvs.with_pip, "--e2b-install-deps", command="parity") == 0
    assert "Parity: identical" in capsys.readouterr().out


def test_an_interpreter_without_pip_fails_the_run_clearly(examples: Path, venvs: SimpleNamespace) -> None:
    assert _sandbox_run(examples.parent, venvs.no_pip, "--e2b-install-deps") == 1
    session = _latest_session(examples.parent)
    card = _card(session)
    assert "--e2b-install-deps needs pip in the sandbox interpreter" in card["error"]
    assert "--sandbox-python" in card["error"]
    assert [s["status"] for s in card["steps"]] == ["skipped"] * 5
    assert "No module named pip" in (session / PIP_LOG).read_text(encoding="utf-8")


def test_a_failed_install_fails_the_run_before_any_step_and_names_the_log(
        examples: Path, venvs: SimpleNamespace, monkeypatch: pytest.MonkeyPatch) -> None:
    def wrong_hash(projects: object) -> str:
        return "annotated-types==0.8.0 --hash=sha256:" + "0" * 64 + "\n"

    monkeypatch.setattr(osiris_remote.proxy, "requirements_txt", wrong_hash)
    assert _sandbox_run(examples.parent, venvs.with_pip, "--e2b-install-deps") == 1
    session = _latest_session(examples.parent)
    card = _card(session)
    assert card["status"] == "failed" and card["exit_code"] == 1
    assert "pip could not install the sandbox's requirements" in card["error"]
    assert f"{session.name}/{PIP_LOG}" in card["error"]
    assert [s["status"] for s in card["steps"]] == ["skipped"] * 5
    assert "do not match the hashes" in (session / PIP_LOG).read_text(encoding="utf-8").lower()
    assert "step_start" not in (session / "events.jsonl").read_text(encoding="utf-8")
