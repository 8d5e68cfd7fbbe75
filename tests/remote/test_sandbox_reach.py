"""A cloud sandbox cannot reach this machine, its private networks or its sockets: `--e2b` refuses connections
that name them before a sandbox is created (one line: the connection, the host, the fix), `--e2b-allow-private-hosts`
lets them through, and the local sandbox with `--e2b-like` (and so `osiris parity --e2b-like`) fails where E2B
would, while it still reaches them without it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from osiris_cli.main import main
from osiris_core.errors import InputError
from osiris_remote.reachability import check_public_hosts, connection_hosts
from tests.support.databases import PostgresDatabase

SECRET = "pw-Reach-s3cret"

REFUSED: list[tuple[dict[str, Any], str]] = [
    ({"host": "127.0.0.1"}, "'127.0.0.1', a loopback address"),
    ({"host": "localhost"}, "'localhost', a name of this machine"),
    ({"host": "db.localhost"}, "'db.localhost', a name of this machine"),
    ({"host": "::1"}, "'::1', a loopback address"),
    ({"host": "[::ffff:127.0.0.1]:5432"}, "'::ffff:127.0.0.1', a loopback address"),
    ({"host": "0.0.0.0"}, "'0.0.0.0', the unspecified address"),
    ({"host": "10.1.2.3"}, "'10.1.2.3', a private-network address"),
    ({"host": "172.16.0.9"}, "'172.16.0.9', a private-network address"),
    ({"host": "192.168.1.20"}, "'192.168.1.20', a private-network address"),
    ({"host": "169.254.169.254"}, "'169.254.169.254', a link-local address"),
    ({"host": "fe80::1%eth0"}, "'fe80::1%eth0', a link-local address"),
    ({"host": "fd12:3456::1"}, "'fd12:3456::1', a private-network address"),
    ({"host": "100.64.0.7"}, "'100.64.0.7', not a public address"),
    ({"host": "/var/run/postgresql"}, "'/var/run/postgresql', a Unix socket of this machine"),
    ({"host": "93.184.216.34,127.0.0.1"}, "'127.0.0.1', a loopback address"),
    ({"host": "2130706433"}, "'2130706433', resolving to 127.0.0.1, a loopback address"),
    ({"unix_socket": "/tmp/mysql.sock"}, "'/tmp/mysql.sock', a Unix socket"),
    ({"url": "http://localhost:54321"}, "field 'url' names 'localhost'"),
    ({"url": "http://127.0.0.1:54321", "sql_url": "https://93.184.216.34/pg/query"}, "field 'url' names '127.0.0.1'"),
    ({"url": "https://93.184.216.34", "sql_url": "http://[::1]:8080/pg/query"}, "field 'sql_url' names '::1'"),
    ({"pg_dsn": f"postgresql://postgres:{SECRET}@127.0.0.1:5432/postgres"}, "field 'pg_dsn' names '127.0.0.1'"),
    ({"pg_dsn": f"postgresql://u:{SECRET}@93.184.216.34:5432,10.0.0.2:5433/db"}, "names '10.0.0.2'"),
    ({"pg_dsn": f"postgresql://u:{SECRET}@/db?host=/var/run/postgresql"}, "names '/var/run/postgresql'"),
    ({"pg_dsn": f"postgresql://u:{SECRET}@93.184.216.34/db?hostaddr=192.168.0.5"}, "names '192.168.0.5'"),
    ({"pg_dsn": "postgresql:///postgres"}, "names no host (so a Unix socket of this machine)"),
    ({"pg_dsn": f"host=localhost dbname=postgres password={SECRET}"}, "field 'pg_dsn' names 'localhost'"),
    ({"pg_dsn": f"dbname=x password='{SECRET}' host='10.9.8.7'"}, "names '10.9.8.7'"),
]


@pytest.mark.parametrize(("fields", "named"), REFUSED)
def test_hosts_a_cloud_sandbox_cannot_reach_are_refused_by_name(fields: dict[str, Any], named: str) -> None:
    with pytest.raises(InputError) as refused:
        check_public_hosts("@family.alias", {"user": "u", "password": SECRET, **fields})
    message = refused.value.render()
    assert message.startswith("connection @family.alias: field '") and named in message, message
    assert "an E2B sandbox cannot reach" in message and "--e2b-allow-private-hosts" in message
    assert SECRET not in message and "\n" not in message


@pytest.mark.parametrize("fields", [
    {"host": "93.184.216.34", "port": 5432, "password": SECRET},
    {"host": "2606:2800:220:1:248:1893:25c8:1946"},
    {"url": "https://93.184.216.34", "service_role_key": SECRET},
    {"pg_dsn": f"postgresql://postgres:{SECRET}@93.184.216.34:5432/postgres?sslmode=verify-ca"},
    {"host": "no-such-host.invalid"},  # not resolvable here: the run will tell
    {"ssl_mode": "require", "database": "localhost"},  # not a host field
])
def test_public_hosts_pass(fields: dict[str, Any]) -> None:
    check_public_hosts("@family.alias", fields)


def test_every_field_that_holds_a_host_is_read() -> None:
    hosts = connection_hosts({"host": "a", "url": "https://b", "sql_url": "http://c:1/q", "pg_dsn": "postgresql://u@d/x",
                              "replica_host": "e", "database": "not-a-host", "port": 5432})
    assert [(h.field, h.host) for h in hosts] == [("host", "a"), ("url", "b"), ("sql_url", "c"), ("pg_dsn", "d"),
                                                  ("replica_host", "e")]


# --- through the CLI -------------------------------------------------------------------------------------------

def _pipeline(project: Path, host: str, *, port: int = 5432, database: str = "postgres",
              user: str = "postgres") -> Path:
    (project / "osiris_connections.yaml").write_text(yaml.safe_dump({"connections": {"postgres": {"main": {
        "host": host, "port": port, "database": database, "user": user, "password": "${PG_PASSWORD}"}}}}))
    (project / "data.csv").write_text("id,name\n1,a\n2,b\n")
    path = project / "p.yaml"
    path.write_text(yaml.safe_dump({"oml_version": "0.1.0", "name": "reach", "steps": [
        {"id": "read", "component": "filesystem.csv_extractor", "mode": "read", "config": {"path": "data.csv"}},
        {"id": "load", "component": "postgres.writer", "mode": "write", "needs": ["read"],
         "config": {"connection": "@postgres.main", "table": "reach_test", "write_mode": "replace",
                    "create_if_missing": True}}]}))
    return path


def _card(project: Path) -> dict[str, Any]:
    latest = sorted((project / "logs").glob("run_*"))[-1]
    return dict(json.loads((latest / "run_card.json").read_text()))


@pytest.fixture
def _e2b_api_nowhere(monkeypatch: pytest.MonkeyPatch) -> None:
    """An API key, and an E2B API that refuses connections: creating a sandbox fails at once (exit 1)."""
    monkeypatch.setenv("E2B_API_KEY", "e2b_0000000000000000000000000000000000000000")
    monkeypatch.setenv("E2B_API_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("PG_PASSWORD", SECRET)


@pytest.mark.usefixtures("_e2b_api_nowhere")
def test_e2b_refuses_a_private_host_before_creating_a_sandbox(project: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", str(_pipeline(project, "127.0.0.1")), "--e2b"]) == 2
    out = capsys.readouterr().out
    error = next(line for line in out.splitlines() if line.startswith("Error: "))
    assert error.startswith("Error: connection @postgres.main: field 'host' names '127.0.0.1', a loopback address, "
                            "which an E2B sandbox cannot reach — ")
    assert "--e2b-allow-private-hosts" in error and SECRET not in out
    card = _card(project)
    assert card["exit_code"] == 2 and [s["status"] for s in card["steps"]] == ["skipped", "skipped"]
    assert "could not create an E2B sandbox" not in out, "the host was checked only after creating the sandbox"


@pytest.mark.usefixtures("_e2b_api_nowhere")
def test_the_opt_out_lets_a_private_host_through_to_sandbox_creation(project: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", str(_pipeline(project, "10.1.2.3")), "--e2b", "--e2b-allow-private-hosts"]) == 1
    out = capsys.readouterr().out
    assert "could not create an E2B sandbox" in out and "cannot reach" not in out


def test_the_flags_are_checked_before_anything_runs(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pipeline = str(_pipeline(project, "127.0.0.1"))
    assert main(["run", pipeline, "--e2b-allow-private-hosts"]) == 2
    assert "--e2b-allow-private-hosts applies only to sandbox runs" in capsys.readouterr().err
    assert main(["run", pipeline, "--e2b", "--e2b-like"]) == 2
    assert "--e2b-like applies to --sandbox local only" in capsys.readouterr().err
    assert main(["run", pipeline, "--e2b", "--e2b-timeout", "86401"]) == 2
    assert "--e2b-timeout 86401 is longer than any E2B sandbox lives" in capsys.readouterr().err
    assert not (project / "logs").exists()


def test_the_local_sandbox_reaches_this_machine_unless_asked_to_be_like_e2b(
        project: Path, pg_db: PostgresDatabase, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("PG_PASSWORD", pg_db.password or SECRET)  # the test server trusts local users
    pipeline = str(_pipeline(project, pg_db.host, port=pg_db.port, database=pg_db.database, user=pg_db.user))
    assert main(["parity", pipeline]) == 0
    assert "Parity: identical" in capsys.readouterr().out
    assert main(["run", pipeline, "--sandbox", "local", "--e2b-like"]) == 2
    assert "which an E2B sandbox cannot reach" in _card(project)["error"]
    capsys.readouterr()
    assert main(["parity", pipeline, "--e2b-like"]) == 1
    out = capsys.readouterr().out
    assert f"sandbox run: connection @postgres.main: field 'host' names '{pg_db.host}'" in out
    assert main(["parity", pipeline, "--e2b-like", "--e2b-allow-private-hosts"]) == 0
