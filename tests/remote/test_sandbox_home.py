"""A sandbox whose default user is not E2B's `user` (a custom template's): the run asks the sandbox for its home
and puts everything there, never under a hard-coded `/home/user`."""

from __future__ import annotations

from pathlib import Path

import pytest

from osiris_core.compiler import compile_file
from osiris_core.connections import Connections
from osiris_core.execution import ExecutionSettings
from osiris_core.manifest import load_compiled
from osiris_core.registry import ComponentRegistry
from osiris_remote.backends import SandboxOptions
from osiris_remote.proxy import SandboxExecutor
from tests.support.sandbox_backends import ObservedLocalBackend, register_backend


@pytest.mark.parametrize(("user", "home"), [("root", "root"), ("analyst", "home/analyst")])
def test_a_template_with_another_user_runs_in_that_users_home(project: Path, registry: ComponentRegistry,
                                                              monkeypatch: pytest.MonkeyPatch, user: str,
                                                              home: str) -> None:
    register_backend(monkeypatch, "custom-template", ObservedLocalBackend(user=user))
    (project / "in.csv").write_text("a,b\n1,x\n2,y\n")
    (project / "p.yaml").write_text(
        'oml_version: "0.1.0"\nname: home\nsteps:\n'
        "  - {id: read, component: filesystem.csv_extractor, mode: read, config: {path: in.csv}}\n"
        "  - {id: write, component: filesystem.csv_writer, mode: write, needs: [read], config: {path: out.csv}}\n")
    compiled = compile_file(project / "p.yaml", registry, Connections(None), project / "logs")
    assert compiled.manifest_path is not None
    root = project / "sandbox-root"
    settings = ExecutionSettings(registry, Connections(None), project / "logs")
    result = SandboxExecutor(settings, SandboxOptions(backend="custom-template", local_root=root)).run(
        load_compiled(compiled.manifest_path))
    assert result.exit_code == 0, result.card.error
    assert result.card.execution["sandbox_home"] == f"/{home}"
    assert (root / home / "osiris/work/out.csv").read_text() == (project / "out.csv").read_text()
    assert (root / home / "osiris/logs/session.tar.gz").is_file()
    assert not (root / "home/user").exists(), "something was put under E2B's default home"
