"""Files a user hands Osiris are read only when they are regular files under a documented size limit, and YAML
is bounded while it is parsed: oversized files, FIFOs, devices and directories are refused at once, named,
with exit code 2 and a one-line error."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from osiris_cli.main import main
from osiris_core.errors import InputError, YamlError
from osiris_core.input_files import MAX_YAML_BYTES
from osiris_core.oml import load_pipeline
from osiris_core.yaml_source import MAX_DEPTH, MAX_NODES, parse_yaml
from osiris_remote.bundle import MAX_BUNDLE_BYTES

PIPELINE = """\
oml_version: "0.1.0"
name: small
steps:
  - {id: read, component: filesystem.csv_extractor, mode: read, config: {path: in.csv}}
  - {id: write, component: filesystem.csv_writer, mode: write, needs: [read], config: {path: out.csv}}
"""


def one_line_error(err: str) -> str:
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    return err


def test_an_oversized_pipeline_is_refused_by_its_size_before_parsing(project: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    big = project / "big.yaml"
    # A tab on line 2: had the parser seen the file, the error would be a syntax error there.
    big.write_text('oml_version: "0.1.0"\n\tname: tab\n' + ("#" + "x" * 1023 + "\n") * (18 * 1024))
    size = big.stat().st_size
    with pytest.raises(YamlError) as info:
        load_pipeline(big)
    assert info.value.render().startswith(f"{big}: {size} bytes is over the 4 MiB limit for YAML files")
    for command in (["run", "big.yaml"], ["compile", "big.yaml"], ["validate", "big.yaml"]):
        assert main(command) == 2
        assert f"big.yaml: {size} bytes is over the 4 MiB limit" in one_line_error(capsys.readouterr().err)
    assert not (project / "logs").exists()


def test_many_small_nodes_are_refused_while_parsing_without_blaming_aliases() -> None:
    text = "items:\n" + "- x\n" * (MAX_NODES + 10)
    assert len(text) < MAX_YAML_BYTES
    with pytest.raises(YamlError) as info:
        parse_yaml(text, path="many.yaml")
    assert info.value.message == f"more than {MAX_NODES} nodes"
    assert info.value.location is not None and info.value.location.line is not None
    assert info.value.location.line <= MAX_NODES + 1, "refused where the limit was crossed, not after parsing"


def test_nesting_is_bounded_while_parsing() -> None:
    depth = MAX_DEPTH + 20
    text = 'oml_version: "0.1.0"\nmetadata: ' + "[" * depth + "]" * depth + "\n"
    with pytest.raises(YamlError) as info:
        parse_yaml(text, path="deep.yaml")
    assert info.value.message == f"nested more than {MAX_DEPTH} levels deep"
    assert str(info.value.location) == f"deep.yaml:2:{10 + MAX_DEPTH}"  # the first `[` is level 2, at column 11
    parse_yaml('metadata: ' + "[" * 50 + "]" * 50 + "\n", path="fine.yaml")


def _with_fifo(path: Path, action: Callable[[], object]) -> object:
    """Run `action` (which is handed a FIFO) in a thread; fail instead of hanging if it blocks."""
    os.mkfifo(path)
    outcome: list[object] = []
    thread = threading.Thread(target=lambda: outcome.append(action()), daemon=True)
    thread.start()
    thread.join(timeout=20)
    if thread.is_alive():  # unblock the reader so the test process can finish
        os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
        thread.join(timeout=20)
        pytest.fail(f"reading {path.name} blocked on the FIFO")
    return outcome[0]


def _compiled(project: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    (project / "p.yaml").write_text(PIPELINE)
    assert main(["compile", "p.yaml"]) == 0
    capsys.readouterr()
    return next((project / "logs").glob("compile_*/compiled"))


@pytest.mark.parametrize("which", ["pipeline", "connections", "manifest", "cfg", "bundle"])
def test_a_fifo_is_refused_at_once(project: Path, which: str, capsys: pytest.CaptureFixture[str]) -> None:
    if which == "pipeline":
        fifo, args = project / "p.yaml", ["run", "p.yaml"]
    elif which == "connections":
        (project / "p.yaml").write_text(PIPELINE)
        fifo, args = project / "conn.yaml", ["run", "p.yaml", "--connections", "conn.yaml"]
    elif which == "bundle":
        (project / "in.csv").write_text("a\n1\n")
        (project / "p.yaml").write_text(PIPELINE)
        fifo, args = project / "bundle.zip", ["parity", "p.yaml", "--bundle", "bundle.zip"]
    else:
        compiled = _compiled(project, capsys)
        fifo = compiled / ("manifest.yaml" if which == "manifest" else "cfg/read.json")
        fifo.unlink()
        args = ["run", str(compiled / "manifest.yaml")]
    code = _with_fifo(fifo, lambda: main(args))
    assert code == 2
    assert f"{fifo.name}: a FIFO, not a regular file" in one_line_error(capsys.readouterr().err)
    assert not list(project.glob("logs/run_*")), "refused before any run"


def test_devices_and_directories_are_refused_by_kind(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "p.yaml").write_text(PIPELINE)
    with pytest.raises(InputError, match="a character device, not a regular file"):
        load_pipeline(Path("/dev/null"))
    (project / "folder").mkdir()
    assert main(["compile", "folder"]) == 2
    assert "folder: a directory, not a regular file" in one_line_error(capsys.readouterr().err)
    assert main(["run", "p.yaml", "--connections", "/dev/null"]) == 2
    assert "/dev/null: a character device, not a regular file" in one_line_error(capsys.readouterr().err)


def test_an_oversized_bundle_is_refused_by_its_size(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "p.yaml").write_text(PIPELINE)
    with (project / "huge.zip").open("wb") as handle:
        handle.truncate(MAX_BUNDLE_BYTES + 1)  # sparse: nothing is written
    assert main(["parity", "p.yaml", "--bundle", "huge.zip"]) == 2
    err = one_line_error(capsys.readouterr().err)
    assert f"huge.zip: {MAX_BUNDLE_BYTES + 1} bytes is over the 64 MiB limit for bundle files" in err


@pytest.mark.parametrize(("value", "reason"), [
    ("2024-13-45", "invalid value: month must be in 1..12"),
    ("9" * 5000, "invalid value: Exceeds the limit (4300 digits) for integer string conversion"),
    ("0b" + "1" * 20000, "invalid value: an integer of more than 14000 bits"),
    ("!!int x", "invalid value: invalid literal for int() with base 10"),
    ('!!binary "/w=="', "invalid value: binary (!!binary) values are not supported"),
], ids=["date", "digits", "bits", "tag", "binary"])
def test_a_value_yaml_cannot_convert_is_a_located_error(project: Path, value: str, reason: str,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    (project / "p.yaml").write_text(PIPELINE.replace("name: small\n", f"name: small\nmetadata: {{m: {value}}}\n"))
    assert main(["compile", "p.yaml"]) == 2
    assert one_line_error(capsys.readouterr().err).startswith(f"error: p.yaml:3:15: {reason}")
