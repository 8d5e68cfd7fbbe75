"""Spec rules (`osiris_core.rules`): what can only fail at run time is refused by `validate`/`compile`, at the
step's YAML location with a hint — for every built-in component a rule applies to, and for third-party specs —
and rules over connection fields that resolve only at run time are checked before the step runs."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from osiris_cli.main import main
from osiris_core.connections import Connections
from osiris_core.errors import SpecError
from osiris_core.registry import Component, ComponentRegistry
from osiris_core.rules import Rule
from osiris_core.spec import parse_spec
from osiris_drivers.registry import builtin_components
from tests.support.components import PROBE_SPEC, ProbeDriver
from tests.support.runs import run_pipeline

SQL_EXTRACTORS = ("mysql.extractor", "postgres.extractor", "supabase.extractor")
SQL_WRITERS = ("mysql.writer", "postgres.writer", "supabase.writer", "duckdb.writer")
CONNECTIONS = {"connections": {
    "mysql": {"main": {"host": "127.0.0.1", "database": "d", "user": "u"}},
    "postgres": {"main": {"host": "127.0.0.1", "database": "d", "user": "u"}},
    "supabase": {"main": {"url": "https://abc.supabase.co", "service_role_key": "${SUPABASE_KEY:-k}"}},
}}

# ----------------------------------------------------------------------------------------- the rule language


def test_each_constraint_kind() -> None:
    one_of = Rule(one_of=("query", "table"))
    assert one_of.check({"query": "q"}) is None
    both = one_of.check({"query": "q", "table": "t"})
    assert both is not None and both.message == "query and table exclude each other" and both.key == "table"
    neither = one_of.check({"query": "", "table": None})  # empty and null are not set
    assert neither is not None and neither.message == "one of query, table is required"
    assert Rule(exclusive=("a", "b")).check({}) is None
    assert Rule(any_of=("a", "b")).check({"b": 0}) is None  # 0 and false are values
    assert Rule(requires=("k",), when={"mode": "upsert"}).check({"mode": "append"}) is None
    missing = Rule(requires=("k",), when={"mode": "upsert"}).check({"mode": "upsert", "k": []})
    assert missing is not None and missing.message == 'k is required when mode is "upsert"'
    assert missing.key == "mode"
    forbids = Rule(forbids=("columns", "limit"), when={"query": {}}).check({"query": "q", "limit": 0})
    assert forbids is not None and forbids.message == "limit is not allowed when query is set"
    assert Rule(requires=("x",), when={"m": ["a", "b"]}).check({"m": "c"}) is None
    hinted = Rule(requires=("x",), when={"u": {"pattern": r"\.example$"}}, hint="add x").check({"u": "h.example"})
    assert hinted is not None and hinted.hint == "add x" and "u matches /\\.example$/" in hinted.message


def test_unknown_values_never_make_a_false_alarm() -> None:
    """A connection field whose ${VAR} is unset: reported only if the rule breaks whatever its value is."""
    assert Rule(one_of=("a", "b")).check({}, unknown={"a"}) is None
    assert Rule(one_of=("a", "b")).check({"b": 1}, unknown={"a"}) is None
    assert Rule(requires=("a",), when={"u": {}}).check({}, unknown={"u"}) is None
    assert Rule(exclusive=("a", "b", "c")).check({"a": 1, "b": 2}, unknown={"c"}) is not None
    assert Rule(one_of=("a", "b")).check({}, unknown={"a", "b"}) is None


@pytest.mark.parametrize(("rule", "problem"), [
    ("- {requires: [nope]}", "rule 1 names ['nope']"),
    ("- {requires: [rows], forbids: [rows]}", "exactly one of"),
    ("- {requires: []}", "at least 1 item"),
    ("- {exclusive: [rows]}", "at least 2 items"),
    ("- {requires: [rows], when: {host: {type: 12}}}", "not a JSON Schema"),
    ("- {requires: [rows], then: [host]}", "Extra inputs"),
])
def test_a_bad_rule_is_a_located_spec_error(rule: str, problem: str) -> None:
    text = PROBE_SPEC.replace("config:\n", f"rules:\n  {rule}\nconfig:\n", 1)
    with pytest.raises(SpecError) as info:
        parse_spec(text, origin="plugin/spec.yaml")
    assert problem in info.value.message
    assert info.value.location is not None and info.value.location.path == "plugin/spec.yaml"
    assert info.value.location.line == 12  # the rule's line


def test_idempotent_and_globs_are_checked_too() -> None:
    with pytest.raises(SpecError, match="idempotent names"):
        parse_spec(PROBE_SPEC.replace("config:\n", "idempotent: {mode: replace}\nconfig:\n", 1), origin="s")
    glob_on_output = PROBE_SPEC.replace("fail_with: {type: string}",
                                        "fail_with: {type: string, x-osiris-file: output, x-osiris-glob: true}")
    with pytest.raises(SpecError, match="x-osiris-glob: true applies to x-osiris-file: input keys only"):
        parse_spec(glob_on_output, origin="s")


# ------------------------------------------------------------------------------ the built-in components' rules


def _validate(project: Path, capsys: pytest.CaptureFixture[str], step: dict[str, Any]) -> tuple[int, str]:
    (project / "osiris_connections.yaml").write_text(yaml.safe_dump(CONNECTIONS))
    (project / "p.yaml").write_text(yaml.safe_dump(
        {"oml_version": "0.1.0", "name": "rules", "steps": [{"id": "s", **step}]}, sort_keys=False))
    capsys.readouterr()
    code = main(["validate", "p.yaml"])
    return code, capsys.readouterr().err


def _line_col(error: str) -> tuple[int, int]:
    place = error.removeprefix("error: ").split(": ", 1)[0]
    _, line, column = place.split(":")
    return int(line), int(column)


def _key_line(project: Path, key: str) -> int:
    """The 1-based line of `key:` in p.yaml (where a located error must point)."""
    lines = (project / "p.yaml").read_text().splitlines()
    return next(n for n, text in enumerate(lines, 1) if text.strip().startswith(f"{key}:"))


@pytest.mark.parametrize("component", SQL_EXTRACTORS)
@pytest.mark.parametrize(("config", "key", "message"), [
    ({"table": "t", "query": "select 1"}, "table", "query and table exclude each other"),
    ({}, "connection", "one of query, table is required"),  # the step's config
    ({"query": "select 1", "limit": 5}, "limit", "limit is not allowed when query is set"),
    ({"query": "select 1", "columns": ["a"]}, "columns", "columns is not allowed when query is set"),
])
def test_every_sql_extractor_refuses_a_bad_source_at_its_place(project: Path, capsys: pytest.CaptureFixture[str],
                                                               component: str, config: dict[str, Any], key: str,
                                                               message: str) -> None:
    step = {"component": component, "mode": "read", "config": {"connection": f"@{component.split('.')[0]}", **config}}
    code, error = _validate(project, capsys, step)
    assert code == 2
    assert f"step 's': {message}" in error and " — " in error and error.count("\n") == 1, error
    assert _line_col(error)[0] == _key_line(project, key)


@pytest.mark.parametrize("component", SQL_WRITERS)
@pytest.mark.parametrize("key_config", [{}, {"primary_key": []}])
def test_every_sql_writer_refuses_upsert_without_a_primary_key(project: Path, capsys: pytest.CaptureFixture[str],
                                                               component: str, key_config: dict[str, Any]) -> None:
    config = {"table": "t", "write_mode": "upsert", **key_config}
    if component == "duckdb.writer":
        config["path"] = "out.duckdb"
    else:
        config["connection"] = f"@{component.split('.')[0]}"
    step = {"component": component, "mode": "write", "config": config}
    code, error = _validate(project, capsys, step)
    assert code == 2
    assert 'primary_key is required when write_mode is "upsert" — list the key columns in primary_key' in error
    assert _line_col(error)[0] == _key_line(project, "write_mode")
    config["primary_key"] = ["id"]
    assert _validate(project, capsys, step)[0] == 0
    config["write_mode"] = "merge"
    code, error = _validate(project, capsys, step)
    assert code == 2 and "'merge' is not one of ['append', 'upsert', 'replace', 'scd2']" in error
    config.update(write_mode="scd2", primary_key=[])
    code, error = _validate(project, capsys, step)
    assert code == 2 and 'primary_key is required when write_mode is "scd2"' in error
    config.update(write_mode="append", primary_key=["id"], delete_missing="hard")
    code, error = _validate(project, capsys, step)
    assert code == 2 and 'delete_missing is not allowed when write_mode is one of "append", "replace"' in error
    assert "use write_mode upsert or scd2" in error
    del config["delete_missing"]
    config.update(write_mode="replace", hard_delete_column="_deleted")
    code, error = _validate(project, capsys, step)
    assert code == 2 and "hard_delete_column is not allowed when write_mode is" in error
    config.update(write_mode="scd2", delete_missing="soft", on_schema_change="sync_all_columns")
    assert _validate(project, capsys, step)[0] == 0


def test_supabase_query_needs_pg_dsn_in_the_connection(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    step = {"component": "supabase.extractor", "mode": "read", "config": {"query": "select 1"}}
    code, error = _validate(project, capsys, step)
    assert code == 2 and "pg_dsn is required when query is set" in error
    CONNECTIONS["connections"]["supabase"]["main"]["pg_dsn"] = "${SUPABASE_PG_DSN_NOT_SET}"
    try:  # unknown until run time: compile does not guess
        assert _validate(project, capsys, step)[0] == 0
    finally:
        del CONNECTIONS["connections"]["supabase"]["main"]["pg_dsn"]


def test_the_sql_writers_declare_the_same_rules_and_idempotence() -> None:
    specs = {c.name: c.spec for c in builtin_components()}
    assert len({json.dumps([r.model_dump() for r in specs[n].rules]) for n in SQL_WRITERS}) == 1
    assert len({json.dumps([r.model_dump() for r in specs[n].rules]) for n in SQL_EXTRACTORS[:2]}) == 1
    for name in SQL_WRITERS:
        spec = specs[name]
        assert [spec.writes_idempotently({"write_mode": m}) for m in ("append", "upsert", "replace", "scd2")] == \
            [False, True, True, True]
        assert spec.writes_idempotently({}) is False  # the default is append
    assert specs["filesystem.csv_writer"].writes_idempotently({})


def test_a_refused_pipeline_runs_nothing(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Before: the run extracted everything and failed at the writer. Now nothing runs and no session is made."""
    (project / "in.csv").write_text("id\n1\n")
    (project / "p.yaml").write_text(textwrap.dedent("""\
        oml_version: "0.1.0"
        name: late-failure
        steps:
          - {id: read, component: filesystem.csv_extractor, mode: read, config: {path: in.csv}}
          - id: write
            component: duckdb.writer
            mode: write
            needs: [read]
            config: {path: out.duckdb, table: t, write_mode: upsert}
        """))
    assert main(["run", "p.yaml"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: p.yaml:9:42: step 'write': primary_key is required when write_mode is")
    assert not list((project / "logs").glob("run_*")) and not (project / "out.duckdb").exists()


# ------------------------------------------------------------------ third-party specs and connection fields

RULED_SPEC = PROBE_SPEC.replace("name: test.probe", "name: test.ruled").replace("config:\n", textwrap.dedent("""\
    rules:
      - requires: [user]
        when: {host: {pattern: '\\.hosted\\.example$'}}
        hint: hosted servers need a user in the connection
      - exclusive: [rows, fail_with]
    config:
    """), 1)


@pytest.fixture
def ruled() -> ComponentRegistry:
    component = Component(spec=parse_spec(RULED_SPEC, origin="plugin/spec.yaml"), driver=ProbeDriver)
    return ComponentRegistry([*builtin_components(), component])


def _connections(project: Path, host: str) -> Connections:
    path = project / "osiris_connections.yaml"
    path.write_text(yaml.safe_dump({"connections": {"testdb": {"main": {"host": host, "password": "pw"}}}}))
    return Connections.load(path)


def test_a_third_party_spec_gets_rules_on_config_and_connection(project: Path, ruled: ComponentRegistry) -> None:
    from osiris_core.errors import CompileError

    step = {"id": "p", "component": "test.ruled", "mode": "read", "config": {"connection": "@testdb"}}
    with pytest.raises(CompileError) as info:
        run_pipeline(ruled, project, [step], connections=_connections(project, "db.hosted.example"))
    assert info.value.message == ("step 'p': user is required when host matches /\\.hosted\\.example$/ "
                                  "(in connection @testdb.main)")
    assert info.value.hint == "hosted servers need a user in the connection"
    assert info.value.location is not None and info.value.location.line == 10  # the step's connection key
    step["config"] = {"connection": "@testdb", "rows": 2, "fail_with": "x"}
    with pytest.raises(CompileError, match="rows and fail_with exclude each other"):
        run_pipeline(ruled, project, [step], connections=_connections(project, "db.local"))


def test_connection_rules_are_checked_again_when_the_step_starts(project: Path, ruled: ComponentRegistry,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """`${PROBE_HOST}` is unset when compiling (nothing to check yet) and resolves at run time."""
    monkeypatch.delenv("PROBE_HOST", raising=False)
    step = {"id": "p", "component": "test.ruled", "mode": "read", "config": {"connection": "@testdb"}}
    run = run_pipeline(ruled, project, [step], connections=_connections(project, "${PROBE_HOST}"),
                       environ={"PROBE_HOST": "db.hosted.example"})
    card = run.card.steps[0]
    assert run.card.status == "failed" and run.exit_code == 2
    assert card.error_type == "InputError"
    assert card.error == ("step 'p': user is required when host matches /\\.hosted\\.example$/ — hosted "
                          "servers need a user in the connection")
