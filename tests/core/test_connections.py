"""Connections file: references, default aliases, environment substitution and actionable errors."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from osiris_core.connections import Connections, find_connections_file, parse_reference
from osiris_core.errors import ConnectionConfigError, YamlError


def write(tmp_path: Path, text: str) -> Connections:
    path = tmp_path / "osiris_connections.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return Connections.load(path)


CONNECTIONS = """\
connections:
  mysql:
    primary:
      host: db1
      password: ${DB_PASSWORD}
      default: true
    replica:
      host: ${REPLICA_HOST:-replica.local}
      password: "p@ss:w/rd#1"
  postgres:
    only:
      dsn: postgresql://u:${PG_PW}@h/db
"""


def test_default_alias_and_env_substitution(tmp_path: Path) -> None:
    connections = write(tmp_path, CONNECTIONS)
    resolved = connections.resolve(parse_reference("@mysql"), environ={"DB_PASSWORD": "s3"})
    assert resolved == {"host": "db1", "password": "s3"}
    assert str(connections.normalise(parse_reference("@mysql"))) == "@mysql.primary"


def test_env_default_and_special_characters(tmp_path: Path) -> None:
    connections = write(tmp_path, CONNECTIONS)
    resolved = connections.resolve(parse_reference("@mysql.replica"), environ={})
    assert resolved == {"host": "replica.local", "password": "p@ss:w/rd#1"}
    assert connections.resolve(parse_reference("@mysql.replica"), environ={"REPLICA_HOST": "r2"})["host"] == "r2"


def test_single_alias_is_the_default(tmp_path: Path) -> None:
    connections = write(tmp_path, CONNECTIONS)
    resolved = connections.resolve(parse_reference("@postgres"), environ={"PG_PW": "x y"})
    assert resolved == {"dsn": "postgresql://u:x y@h/db"}


def test_missing_env_var_names_it_without_values(tmp_path: Path) -> None:
    connections = write(tmp_path, CONNECTIONS)
    with pytest.raises(ConnectionConfigError) as info:
        connections.resolve(parse_reference("@mysql.primary"), environ={})
    assert "DB_PASSWORD" in info.value.render()
    assert "export DB_PASSWORD" in (info.value.hint or "")


@pytest.mark.parametrize(("reference", "message"), [
    ("@nosql", "no connection family 'nosql'"),
    ("@mysql.nope", "no connection '@mysql.nope'"),
])
def test_unknown_references(tmp_path: Path, reference: str, message: str) -> None:
    connections = write(tmp_path, CONNECTIONS)
    with pytest.raises(ConnectionConfigError, match=message):
        connections.normalise(parse_reference(reference))


def test_family_without_default(tmp_path: Path) -> None:
    connections = write(tmp_path, "connections:\n  mysql:\n    a: {host: x}\n    b: {host: y}\n")
    with pytest.raises(ConnectionConfigError, match="has no default alias"):
        connections.normalise(parse_reference("@mysql"))


def test_two_defaults_is_an_error_with_location(tmp_path: Path) -> None:
    with pytest.raises(ConnectionConfigError) as info:
        write(tmp_path, "connections:\n  mysql:\n    a: {default: true}\n    b: {default: true}\n")
    assert info.value.location is not None and info.value.location.line == 3


def test_malformed_reference() -> None:
    with pytest.raises(ConnectionConfigError, match="invalid connection reference"):
        parse_reference("mysql.primary")


def test_bad_file_shape(tmp_path: Path) -> None:
    with pytest.raises(ConnectionConfigError, match="top-level 'connections:'"):
        write(tmp_path, "mysql: {}\n")
    with pytest.raises(YamlError, match="invalid YAML"):
        write(tmp_path, "connections: [\n")


def test_lookup_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    near = tmp_path / "pipelines"
    near.mkdir()
    (near / "osiris_connections.yaml").write_text("connections: {}\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("OSIRIS_CONNECTIONS", raising=False)
    assert find_connections_file(None, search_dirs=(near,)) == near / "osiris_connections.yaml"
    (tmp_path / "osiris_connections.yaml").write_text("connections: {}\n")
    assert find_connections_file(None, search_dirs=(near,)) == tmp_path / "osiris_connections.yaml"
    monkeypatch.setenv("OSIRIS_CONNECTIONS", "/elsewhere.yaml")
    assert find_connections_file(None) == Path("/elsewhere.yaml")
    assert find_connections_file(Path("x.yaml")) == Path("x.yaml")
