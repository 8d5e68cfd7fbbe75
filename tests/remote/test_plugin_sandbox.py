"""A third-party component runs in a sandbox: the bundle carries its package, and the worker loads it from the
bundle's files alone (no distribution metadata, no entry points in the sandbox)."""

from __future__ import annotations

import io
import json
import shutil
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from osiris_cli.main import main
from osiris_drivers.registry import default_registry
from osiris_remote.bundle import build_bundle, bundle_for
from osiris_remote.bundle_format import DEFAULT_PACKAGES
from tests.conftest import REPO_ROOT

PLUGIN = "osiris_example_plugin"


@pytest.fixture
def plugin(project: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """examples/ copied into the project, its plugin importable and registered as an installed distribution
    would register it: an `osiris.components` entry point the CLI's registry loads."""
    shutil.copytree(REPO_ROOT / "examples", project / "examples")
    site = project / "site"
    dist_info = site / "osiris_example_plugin-0.1.0.dist-info"
    dist_info.mkdir(parents=True)
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: osiris-example-plugin\nVersion: 0.1.0\n")
    (dist_info / "entry_points.txt").write_text(f"[osiris.components]\nexample = {PLUGIN}:components\n")
    monkeypatch.syspath_prepend(str(project / "examples/plugin"))
    monkeypatch.syspath_prepend(str(site))
    yield project / "examples/plugin/pipeline.yaml"
    for name in [m for m in sys.modules if m == PLUGIN or m.startswith(PLUGIN + ".")]:
        del sys.modules[name]


def _cards(project: Path) -> list[dict[str, Any]]:
    return [json.loads((p / "run_card.json").read_text()) for p in sorted((project / "logs").glob("run_*"))]


def test_parity_holds_for_the_plugin_example(plugin: Path, capsys: pytest.CaptureFixture[str]) -> None:
    project = plugin.parents[2]
    assert main(["parity", str(plugin)]) == 0
    out = capsys.readouterr().out
    assert "Parity: identical" in out, out
    local, sandbox = _cards(project)
    assert [(s["status"], s["rows_out"]) for s in sandbox["steps"]] == [("succeeded", 5), ("succeeded", 5)]
    assert sandbox["steps"][0]["output_sha256"] == local["steps"][0]["output_sha256"] is not None
    assert sandbox["execution"]["sandbox_driver_code_sha256"] == sandbox["execution"]["host_driver_code_sha256"]
    session = sorted((project / "logs").glob("run_*"))[-1]
    events = [json.loads(line) for line in (session / "events.jsonl").read_text().splitlines()]
    registered = next(e for e in events if e["event"] == "drivers_registered")
    assert registered["drivers"]["example.sequence"] == f"{PLUGIN}.sequence.driver:SequenceDriver"
    assert (project / "output/numbers.csv").read_text() == "n\n10\n11\n12\n13\n14\n"


def test_the_plugin_bundle_carries_the_plugin_package_and_nothing_unused(plugin: Path) -> None:
    registry = default_registry()
    components = registry.used_by(["example.sequence", "filesystem.csv_writer"])
    bundle = bundle_for(components)
    names = zipfile.ZipFile(io.BytesIO(bundle.data)).namelist()
    assert bundle.run_packages == sorted([*DEFAULT_PACKAGES, PLUGIN])
    assert {f"{PLUGIN}/sequence/spec.yaml", f"{PLUGIN}/sequence/driver.py", f"{PLUGIN}/__init__.py"} <= set(names)
    only_plugin = bundle_for(registry.used_by(["example.sequence"]))
    assert only_plugin.run_packages == ["osiris_core", PLUGIN], "no built-in component runs, so none is shipped"


def test_the_default_bundle_is_refused_for_the_plugin_pipeline_naming_what_it_lacks(
        plugin: Path, capsys: pytest.CaptureFixture[str]) -> None:
    default = plugin.parents[2] / "default.zip"
    default.write_bytes(build_bundle().data)
    assert main(["run", str(plugin), "--sandbox", "local", "--bundle", str(default)]) == 2
    card = _cards(plugin.parents[2])[-1]
    assert f"does not carry {PLUGIN}, which this pipeline's components run" in card["error"]
    assert [s["status"] for s in card["steps"]] == ["skipped", "skipped"]
