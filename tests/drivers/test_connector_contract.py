"""The connector contract, checked on the code itself: one folder shape per family, one settings class per family
(registered for the doctor), components that never import each other, one quote_ident per dialect, specs that agree
with their drivers, and the four SQL writers declaring one set of write options."""

from __future__ import annotations

import ast
import json
import sys
from pathlib import Path
from typing import Any

import pytest

import osiris_drivers
from osiris_cli.main import main
from osiris_core.registry import ComponentRegistry
from osiris_drivers.connection import ClientMissing, ConnectionSettings, import_client
from osiris_drivers.mysql.connection import MySQLSettings
from osiris_drivers.registry import BUILTIN_DRIVERS, connection_families
from tests.support.mysql_env import Env, extract, write_mysql
from tests.support.runs import extract_csv, failed_error, write_csv

PACKAGE = Path(osiris_drivers.__file__).parent
FAMILIES = ("duckdb", "filesystem", "mysql", "postgres", "supabase")
SQL_WRITERS = ("mysql.writer", "postgres.writer", "supabase.writer", "duckdb.writer")
SQL_EXTRACTORS = ("mysql.extractor", "postgres.extractor", "supabase.extractor")
WRITE_OPTIONS = ("write_mode", "primary_key", "create_if_missing", "on_schema_change", "delete_missing",
                 "hard_delete_column")


def component_folders(family: str) -> list[Path]:
    return sorted(p.parent for p in (PACKAGE / family).glob("*/spec.yaml"))


def test_every_family_folder_has_the_same_shape() -> None:
    assert {p.name for p in PACKAGE.iterdir() if (p / "connection.py").is_file()} == set(FAMILIES)
    for family in FAMILIES:
        folders = component_folders(family)
        assert folders, family
        for folder in folders:
            assert {"spec.yaml", "driver.py", "__init__.py"} <= {p.name for p in folder.iterdir()}, folder


def test_each_family_registers_one_settings_class_with_a_check() -> None:
    families = connection_families()
    assert sorted(families) == sorted(FAMILIES)
    for name, settings in families.items():
        assert issubclass(settings, ConnectionSettings)
        assert settings.__module__ == f"osiris_drivers.{name}.connection"
        assert "check" not in getattr(settings, "__abstractmethods__", ())


def test_each_component_config_extends_its_familys_settings(registry: ComponentRegistry) -> None:
    """Connection fields, their validation and secrets come from the family, never redeclared."""
    families = connection_families()
    for component in registry:
        config = component.driver.config_model
        family = component.spec.connection.family if component.spec.connection else component.name.split(".")[0]
        if family not in families or component.name == "duckdb.processor":  # the processor opens no file
            continue
        settings = families[family]
        assert issubclass(config, settings), component.name
        if component.spec.connection:
            assert set(component.spec.connection.fields) == set(settings.model_fields), component.name
        assert set(component.spec.secrets) == set(settings.secret_fields), component.name


def _imported_modules(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def test_components_never_import_other_components() -> None:
    """Shared code lives in a family's modules or in osiris_drivers.sql, not in a sibling component."""
    components = {f"osiris_drivers.{f.parent.name}.{f.name}": f
                  for family in FAMILIES for f in component_folders(family)}
    for package, folder in components.items():
        for path in folder.rglob("*.py"):
            for module in _imported_modules(path):
                others = [p for p in components if p != package and (module == p or module.startswith(p + "."))]
                assert not others, f"{path.relative_to(PACKAGE)} imports {module}"


def test_one_quote_ident_in_one_place() -> None:
    definitions = [str(path.relative_to(PACKAGE)) for path in PACKAGE.rglob("*.py")
                   for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
                   if isinstance(node, ast.FunctionDef) and node.name == "quote_ident"]
    assert definitions == ["sql/dialect.py"]


def test_spec_defaults_are_the_drivers_defaults(registry: ComponentRegistry) -> None:
    for component in registry:
        if f"{component.driver.__module__}:{component.driver.__qualname__}" not in BUILTIN_DRIVERS:
            continue
        fields = {field.alias or name: field for name, field in component.driver.config_model.model_fields.items()}
        for key, schema in component.spec.config["properties"].items():
            if "default" in schema:
                assert fields[key].get_default(call_default_factory=True) == schema["default"], \
                    f"{component.name}.{key}"


def test_the_four_sql_writers_declare_one_set_of_write_options(registry: ComponentRegistry) -> None:
    specs = {name: registry.get(name).spec.config for name in SQL_WRITERS}
    for key in WRITE_OPTIONS:
        assert len({json.dumps(spec["properties"][key], sort_keys=True) for spec in specs.values()}) == 1, key
    reference = specs["mysql.writer"]["properties"]
    assert reference["write_mode"] == {**reference["write_mode"], "enum": ["append", "upsert", "replace", "scd2"],
                                       "default": "append"}
    assert reference["on_schema_change"]["default"] == "append_new_columns"
    assert "default" not in reference["delete_missing"] and "default" not in reference["hard_delete_column"]
    assert reference["create_if_missing"]["default"] is True
    assert reference["primary_key"]["default"] == []
    for name, spec in specs.items():
        assert "table" in spec["required"], name
        assert {k: v for k, v in spec["properties"]["table"].items() if k in ("type", "minLength")} == \
            {"type": "string", "minLength": 1}, name


def test_the_sql_extractors_declare_one_set_of_source_options(registry: ComponentRegistry) -> None:
    specs = [registry.get(name).spec.config["properties"] for name in SQL_EXTRACTORS]
    for key in ("columns", "limit"):
        assert len({json.dumps(spec[key], sort_keys=True) for spec in specs}) == 1, key
    assert all(spec["query"]["minLength"] == spec["table"]["minLength"] == 1 for spec in specs)


def test_components_show_prints_the_same_write_options(capsys: pytest.CaptureFixture[str]) -> None:
    shown = []
    for name in SQL_WRITERS:
        assert main(["--json", "components", "show", name]) == 0
        properties = json.loads(capsys.readouterr().out)["config"]["properties"]
        shown.append({key: properties[key] for key in WRITE_OPTIONS})
    assert all(options == shown[0] for options in shown)


# ------------------------------------------------------------------------------------ a missing client library


def test_a_missing_client_library_names_the_package_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pymysql", None)  # what `import pymysql` meets where it is not installed
    with pytest.raises(ClientMissing) as info:
        import_client("pymysql", project="pymysql", family="mysql")
    problem = MySQLSettings(host="h", database="d", user="u").explain(info.value, "read")
    assert problem.message == ("the mysql connection needs the Python package 'pymysql' (module 'pymysql'), "
                               "which is not installed")
    assert problem.hint.startswith("pip install pymysql")


@pytest.mark.parametrize(("client", "module", "project_name"), [
    ("extractor", "pymysql", "pymysql"), ("writer", "pymysql", "pymysql"), ("doctor", "pymysql", "pymysql"),
    ("extractor", "connectorx", "connectorx")])
def test_every_mysql_client_explains_a_missing_library(env: Env, project: Path, monkeypatch: pytest.MonkeyPatch,
                                                       client: str, module: str, project_name: str) -> None:
    from osiris_drivers.doctor import check_connection

    (project / "rows.csv").write_text("id\n1\n", encoding="utf-8")
    monkeypatch.setitem(sys.modules, module, None)
    if client == "doctor":
        verdict = check_connection("@mysql.test", "mysql", env.db.fields)
        assert not verdict.ok
        error = verdict.message
    elif client == "extractor":
        error = failed_error(env.run([extract("read", table="t"), write_csv("out", "read", "o.csv")]), "read")
    else:
        error = failed_error(env.run([extract_csv("rows", "rows.csv"), write_mysql("write", "rows", "t")]), "write")
    assert f"needs the Python package '{project_name}'" in error and f"pip install {project_name}" in error


def _specs_requirement(registry: ComponentRegistry, name: str) -> Any:
    return registry.get(name).spec.requirements


def test_the_install_hint_names_what_the_spec_requires(registry: ComponentRegistry) -> None:
    """The projects `import_client` names are the ones the components' specs list (what --e2b-install-deps
    installs)."""
    calls = {(node.args[0].value, kw.value.value)
             for path in PACKAGE.rglob("*.py")
             for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
             if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "import_client"
             and isinstance(node.args[0], ast.Constant)
             for kw in node.keywords if kw.arg == "project" and isinstance(kw.value, ast.Constant)}
    assert calls == {("pymysql", "pymysql"), ("psycopg2", "psycopg2-binary"), ("supabase", "supabase"),
                     ("connectorx", "connectorx")}
    required = {p for name in (*SQL_WRITERS, *SQL_EXTRACTORS) for p in _specs_requirement(registry, name)}
    assert {project for _, project in calls} <= required
