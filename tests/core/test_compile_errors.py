"""Every compile error names the file, line and column of the offending YAML and says how to fix it."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from osiris_core.compiler import compile_pipeline
from osiris_core.connections import Connections
from osiris_core.errors import CompileError, OsirisError
from osiris_core.oml import load_pipeline
from osiris_core.registry import ComponentRegistry

HEADER = 'oml_version: "0.1.0"\nname: demo\nsteps:\n'


def compile_text(tmp_path: Path, registry: ComponentRegistry, body: str,
                 connections: Connections | None = None) -> None:
    path = tmp_path / "pipeline.yaml"
    path.write_text(textwrap.dedent(body), encoding="utf-8")
    pipeline, document = load_pipeline(path)
    compile_pipeline(pipeline, document, registry, connections or Connections(None))


def expect_error(tmp_path: Path, registry: ComponentRegistry, body: str, line: int, column: int,
                 message: str, connections: Connections | None = None) -> OsirisError:
    with pytest.raises(OsirisError) as info:
        compile_text(tmp_path, registry, body, connections)
    error = info.value
    assert error.location is not None
    assert (error.location.path, error.location.line, error.location.column) == (
        str(tmp_path / "pipeline.yaml"), line, column), error.render()
    assert message in error.message
    assert error.hint, "every compile error says how to fix it"
    assert "\n" not in error.render()
    return error


READ_A = """\
  - id: a
    component: filesystem.csv_extractor
    mode: read
    config: {path: a.csv}
"""


def test_cycle_names_the_cycle_and_its_place(tmp_path: Path, registry: ComponentRegistry) -> None:
    body = HEADER + READ_A + """\
  - id: b
    component: duckdb.processor
    mode: transform
    needs: [a, c]
    config: {query: select 1}
  - id: c
    component: duckdb.processor
    mode: transform
    needs: [b]
    config: {query: select 1}
"""
    error = expect_error(tmp_path, registry, body, 11, 12, "dependency cycle: b -> c -> b")
    assert isinstance(error, CompileError)


def test_unknown_needs_id(tmp_path: Path, registry: ComponentRegistry) -> None:
    body = HEADER + READ_A + """\
  - id: b
    component: duckdb.processor
    mode: transform
    needs: [a, nope]
    config: {query: select 1}
"""
    error = expect_error(tmp_path, registry, body, 11, 16, "needs unknown step 'nope'")
    assert "['a', 'b']" in (error.hint or "")


def test_duplicate_step_id(tmp_path: Path, registry: ComponentRegistry) -> None:
    body = HEADER + READ_A + READ_A.replace("a.csv", "b.csv")
    expect_error(tmp_path, registry, body, 8, 9, "duplicate step id 'a'")


def test_unknown_component_suggests_the_closest(tmp_path: Path, registry: ComponentRegistry) -> None:
    body = HEADER + READ_A.replace("filesystem.csv_extractor", "filesystem.csv_extracter")
    error = expect_error(tmp_path, registry, body, 5, 16, "unknown component 'filesystem.csv_extracter'")
    assert "filesystem.csv_extractor" in (error.hint or "")


def test_mode_the_component_does_not_support(tmp_path: Path, registry: ComponentRegistry) -> None:
    body = HEADER + READ_A.replace("mode: read", "mode: write")
    error = expect_error(tmp_path, registry, body, 6, 11, "does not support mode 'write'")
    assert "read" in (error.hint or "")


def test_invalid_mode_value(tmp_path: Path, registry: ComponentRegistry) -> None:
    body = HEADER + READ_A.replace("mode: read", "mode: extract")
    expect_error(tmp_path, registry, body, 6, 11, "invalid mode 'extract'")


def test_unknown_config_key_points_at_the_key(tmp_path: Path, registry: ComponentRegistry) -> None:
    body = HEADER + READ_A.replace("config: {path: a.csv}", "config:\n      path: a.csv\n      delimitr: ';'")
    error = expect_error(tmp_path, registry, body, 9, 7, "unknown config key 'delimitr'")
    assert "delimiter" in (error.hint or "")


def test_inline_secret_is_refused(tmp_path: Path, registry: ComponentRegistry) -> None:
    body = HEADER + READ_A.replace("config: {path: a.csv}", "config:\n      path: a.csv\n      password: hunter22")
    error = expect_error(tmp_path, registry, body, 9, 7, "inline secret in config key 'password'")
    assert "osiris_connections.yaml" in (error.hint or "")
    assert "hunter22" not in error.render()


def test_inline_dsn_with_password_is_refused(tmp_path: Path, registry: ComponentRegistry) -> None:
    body = HEADER + READ_A.replace("a.csv", "'postgresql://u:s3cret@db/x'")
    error = expect_error(tmp_path, registry, body, 7, 14, "inline secret in config key 'path'")
    assert "s3cret" not in error.render()


def test_config_value_of_wrong_type(tmp_path: Path, registry: ComponentRegistry) -> None:
    body = HEADER + READ_A.replace("config: {path: a.csv}", "config:\n      path: a.csv\n      header: maybe")
    expect_error(tmp_path, registry, body, 9, 15, "invalid config for step 'a' at header")


def test_unknown_top_level_key(tmp_path: Path, registry: ComponentRegistry) -> None:
    body = HEADER + READ_A + "stepz: []\n"
    expect_error(tmp_path, registry, body, 8, 1, "unknown key 'stepz'")


def test_unknown_step_key(tmp_path: Path, registry: ComponentRegistry) -> None:
    body = HEADER + READ_A + "    depends_on: [x]\n"
    expect_error(tmp_path, registry, body, 8, 5, "unknown key 'depends_on'")


def test_missing_required_key(tmp_path: Path, registry: ComponentRegistry) -> None:
    body = 'oml_version: "0.1.0"\nsteps:\n' + READ_A
    expect_error(tmp_path, registry, body, 1, 1, "missing required key 'name'")


def test_yaml_syntax_error(tmp_path: Path, registry: ComponentRegistry) -> None:
    body = HEADER + READ_A + "  - id: [unclosed\n"
    expect_error(tmp_path, registry, body, 9, 1, "invalid YAML")


def test_duplicate_yaml_key(tmp_path: Path, registry: ComponentRegistry) -> None:
    body = HEADER + READ_A.replace("mode: read", "mode: read\n    mode: read")
    expect_error(tmp_path, registry, body, 7, 5, "duplicate key 'mode'")


def test_step_needing_itself(tmp_path: Path, registry: ComponentRegistry) -> None:
    body = HEADER + READ_A + """\
  - id: b
    component: duckdb.processor
    mode: transform
    needs: [b]
    config: {query: select 1}
"""
    expect_error(tmp_path, registry, body, 11, 13, "step 'b' needs itself")


def test_unsupported_oml_version(tmp_path: Path, registry: ComponentRegistry) -> None:
    body = HEADER.replace("0.1.0", "9.9") + READ_A
    expect_error(tmp_path, registry, body, 1, 14, "unsupported oml_version '9.9'")


def test_a_step_listed_twice_in_needs(tmp_path: Path, registry: ComponentRegistry) -> None:
    body = HEADER + READ_A + """\
  - id: b
    component: duckdb.processor
    mode: transform
    needs: [a, a]
    config: {query: select 1}
"""
    expect_error(tmp_path, registry, body, 11, 16, "lists 'a' twice in needs")


def test_the_single_input_name_is_reserved(tmp_path: Path, registry: ComponentRegistry) -> None:
    body = HEADER + READ_A.replace("id: a", "id: input-df")
    expect_error(tmp_path, registry, body, 4, 9, "step id 'input-df' is reserved")


def test_recursive_alias(tmp_path: Path, registry: ComponentRegistry) -> None:
    expect_error(tmp_path, registry, HEADER.replace("steps:\n", "steps: &a [*a]\n"), 3, 8, "recursive alias")


def test_non_scalar_mapping_key(tmp_path: Path, registry: ComponentRegistry) -> None:
    expect_error(tmp_path, registry, HEADER + READ_A + "? [a, b]\n: x\n", 8, 3, "mapping keys must be plain values")


def test_alias_bomb_is_refused_quickly(tmp_path: Path, registry: ComponentRegistry) -> None:
    levels = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    levels += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 9)]
    with pytest.raises(OsirisError, match="more than 100000 nodes after expanding aliases"):
        compile_text(tmp_path, registry, "\n".join(levels) + "\n")


def test_anchors_and_merge_keys_still_compile(tmp_path: Path, registry: ComponentRegistry) -> None:
    body = """\
oml_version: "0.1.0"
name: merged
metadata:
  base: &base {component: filesystem.csv_extractor, mode: read}
steps:
  - <<: *base
    id: a
    config: {path: a.csv}
  - <<: *base
    id: b
    mode: read
    config: {path: b.csv}
"""
    compile_text(tmp_path, registry, body)
