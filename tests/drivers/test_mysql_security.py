"""MySQL client safety: no file leaves the host because a server asks for it, TLS as configured, no host
injection. Rogue servers are `tests.support.rogue_mysql_server`; TLS refusals also run against the real MariaDB."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from osiris_core.errors import DriverError
from osiris_drivers.doctor import check_connection
from osiris_drivers.mysql.connection import SESSION_TIME_ZONE, MySQLSettings
from osiris_drivers.sql.connectorx import guarded_batches, open_stream
from tests.support.databases import MySQLDatabase
from tests.support.mysql_env import Env, extract, sql, write_mysql
from tests.support.rogue_mysql_server import RogueMySQLProcess, RogueMySQLServer
from tests.support.runs import assert_succeeded, extract_csv, failed_error, write_csv
from tests.support.tls_certs import Certificate, self_signed

SECRET = "AWS_SECRET_ACCESS_KEY=rogue-must-never-read-this-42"


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    """A host file a rogue server would like to read (think /proc/self/environ or ~/.ssh/id_rsa)."""
    path = tmp_path / "host-secrets" / "environ"
    path.parent.mkdir()
    path.write_text(SECRET + "\n", encoding="utf-8")
    return path


@pytest.fixture
def csv_rows(project: Path) -> dict[str, Any]:
    (project / "rows.csv").write_text("id,name\n1,a\n2,b\n", encoding="utf-8")
    return extract_csv("rows", str(project / "rows.csv"))


def rogue_fields(server: RogueMySQLServer | RogueMySQLProcess, **overrides: Any) -> dict[str, Any]:
    return {"host": server.host, "port": server.port, "database": "app", "user": "app", "password": "pw",
            **overrides}


# ------------------------------------------------------------------------------------------ LOCAL INFILE


def test_the_writer_sends_only_its_own_file_even_when_the_server_asks_for_another_at_load_time(
        env: Env, csv_rows: dict[str, Any], secret_file: Path) -> None:
    """The server behaves until the writer's LOAD DATA, then names a host file instead of the writer's CSV."""
    with RogueMySQLServer(secret_file, play_along=True) as server:
        rogue = env.connection("rogue", **rogue_fields(server))
        result = env.run([csv_rows, write_mysql("write", "rows", "target", connection=rogue)])
    error = failed_error(result, "write")
    assert "asked for a local file this step does not send" in error and str(secret_file) in error
    assert [q for q in server.queries if q.startswith("LOAD DATA LOCAL INFILE")]  # the attack came at the load
    assert server.infile_requests == 1
    assert server.file_bytes == b""  # nothing of the file, nor of the writer's own rows
    assert "rogue-must-never-read-this" not in env.logs_text()


@pytest.mark.parametrize("client", ["extractor", "writer", "doctor"])
def test_no_session_sends_a_file_to_a_server_that_asks_for_one_at_once(
        env: Env, csv_rows: dict[str, Any], secret_file: Path, client: str) -> None:
    """The server answers the session's first statement (the time-zone setup) with a LOCAL INFILE request."""
    with RogueMySQLServer(secret_file) as server:
        rogue = env.connection("rogue", **rogue_fields(server))
        if client == "doctor":
            verdict = check_connection(rogue, "mysql", rogue_fields(server))
            assert not verdict.ok
            error = verdict.message
        elif client == "extractor":
            result = env.run([extract("read", connection=rogue, table="t"), write_csv("out", "read", "out.csv")])
            error = failed_error(result, "read")
        else:
            result = env.run([csv_rows, write_mysql("write", "rows", "t", connection=rogue)])
            error = failed_error(result, "write")
    assert "asked for a local file this step does not send" in error
    assert server.infile_requests >= 1
    assert server.file_bytes == b""


def test_the_connectorx_stream_sends_no_file_either(tmp_path: Path, secret_file: Path) -> None:
    """ConnectorX's Rust client talks to the server on its own connections (in a child process: it holds the GIL)."""
    with RogueMySQLProcess(secret_file, tmp_path / "record") as server:
        settings = MySQLSettings.model_validate(rogue_fields(server))

        def describe(exc: BaseException, panic: bool) -> DriverError:
            return DriverError(str(exc), step_id="read")

        def read_all() -> None:
            reader = open_stream(settings.connectorx_url(), "SELECT 1", describe,
                                 pre_execution_query=[SESSION_TIME_ZONE])
            list(guarded_batches(reader, describe))

        with pytest.raises(DriverError):
            read_all()
        assert server.infile_requests >= 1
        assert server.file_bytes == b""


def test_the_writer_still_loads_its_own_file(env: Env, mysql_db: MySQLDatabase, csv_rows: dict[str, Any]) -> None:
    result = env.run([csv_rows, write_mysql("write", "rows", "loaded", write_mode="replace")])
    assert_succeeded(result)
    assert sql(mysql_db, "SELECT id, name FROM loaded ORDER BY id") == [(1, "a"), (2, "b")]


# ------------------------------------------------------------------------------------------------- TLS


def test_tls_required_against_a_server_without_tls_fails_with_a_clear_error(
        env: Env, mysql_db: MySQLDatabase, csv_rows: dict[str, Any]) -> None:
    """The local MariaDB runs without TLS (have_ssl DISABLED): `require` must fail, never fall back."""
    have_ssl = str(sql(mysql_db, "SHOW VARIABLES LIKE 'have_ssl'")[0][1])
    tls = env.connection("tls", ssl_mode="require")
    result = env.run([csv_rows, write_mysql("write", "rows", "tls_target", connection=tls)])
    verdict = check_connection(tls, "mysql", {**mysql_db.fields, "ssl_mode": "verify-full"})
    if have_ssl == "YES":  # a server with TLS: the same settings work (and verify-full needs its CA)
        assert_succeeded(result)
        return
    error = failed_error(result, "write")
    assert "no TLS with MySQL at" in error and "ssl_mode require" in error and "have_ssl" in error
    assert not verdict.ok and "no TLS with MySQL at" in verdict.message
    assert "tls_target" not in [str(t) for (t,) in sql(mysql_db, "SHOW TABLES")]
    plain = env.connection("plain", ssl_mode="disable")
    assert_succeeded(env.run([csv_rows, write_mysql("write", "rows", "tls_target", connection=plain)], name="plain"))


def test_the_extractor_refuses_tls_modes_its_row_stream_cannot_honour(env: Env) -> None:
    tls = env.connection("tls", ssl_mode="verify-ca")
    result = env.run([extract("read", connection=tls, query="SELECT 1 AS x"), write_csv("out", "read", "out.csv")])
    error = failed_error(result, "read")
    assert "ssl_mode verify-ca cannot be honoured" in error and "no TLS" in error


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Certificate]:
    directory = tmp_path_factory.mktemp("certs")
    return {
        "local": self_signed(directory, "local", common_name="localhost", alt_names="DNS:localhost,IP:127.0.0.1"),
        "elsewhere": self_signed(directory, "elsewhere", common_name="db.example.com", alt_names="DNS:db.example.com"),
    }


@pytest.mark.parametrize(("served", "ssl_mode", "trusted", "outcome"), [
    ("local", "disable", None, "plain"),
    ("local", "prefer", None, "tls"),
    ("local", "require", None, "tls"),
    ("local", "verify-ca", "local", "tls"),
    ("local", "verify-full", "local", "tls"),
    ("local", "verify-ca", "elsewhere", "refused"),
    ("local", "verify-ca", None, "refused"),  # the system CAs do not know a self-signed certificate
    ("elsewhere", "verify-ca", "elsewhere", "tls"),
    ("elsewhere", "verify-full", "elsewhere", "refused"),  # signed by the trusted CA, but for another host
])
def test_ssl_modes_check_the_certificate_as_documented(
        certificates: dict[str, Certificate], secret_file: Path, served: str, ssl_mode: str, trusted: str | None,
        outcome: str) -> None:
    with RogueMySQLServer(secret_file, play_along=True, tls=certificates[served].server_context()) as server:
        fields = rogue_fields(server, ssl_mode=ssl_mode,
                              **({"ssl_ca": str(certificates[trusted].cert)} if trusted else {}))
        verdict = check_connection("@mysql.tls", "mysql", fields)
    if outcome == "refused":
        assert not verdict.ok
        assert "TLS with MySQL at 127.0.0.1" in verdict.message and "certificate" in verdict.message
        assert server.handshakes == 0  # no credentials went to a server that failed the check
    else:
        assert verdict.ok, verdict.message
        assert server.tls_sessions == (1 if outcome == "tls" else 0)


def test_prefer_sessions_share_one_tls_context_and_each_still_uses_tls(
        certificates: dict[str, Certificate], secret_file: Path) -> None:
    """`ssl_mode: prefer` builds pymysql's unverified context once per process, not once per session."""
    with RogueMySQLServer(secret_file, play_along=True, tls=certificates["local"].server_context()) as server:
        settings = MySQLSettings.model_validate(rogue_fields(server, ssl_mode="prefer"))
        first, second = settings.connect(), settings.connect()
        with first, second:
            assert vars(first)["ctx"] is vars(second)["ctx"]
        assert server.tls_sessions == 2


def test_an_unreadable_ca_file_is_a_clear_error(tmp_path: Path, secret_file: Path) -> None:
    with RogueMySQLServer(secret_file, play_along=True) as server:
        verdict = check_connection("@mysql.tls", "mysql", rogue_fields(server, ssl_mode="verify-ca",
                                                                      ssl_ca=str(tmp_path / "missing.pem")))
    assert not verdict.ok and "cannot use ssl_ca" in verdict.message and "missing.pem" in verdict.message


# ------------------------------------------------------------------------------------------ host names


@pytest.mark.parametrize("host", ["db/x?socket=/tmp/evil.sock&", "db?prefer_socket=false", "db:3307", "db host",
                                  "user@db", "db#frag", ""])
def test_a_host_that_could_carry_url_parameters_is_refused(host: str) -> None:
    with pytest.raises(ValidationError, match="host"):
        MySQLSettings.model_validate({"host": host, "database": "d", "user": "u"})


@pytest.mark.parametrize("host", ["db.internal", "127.0.0.1", "::1", "[fe80::1]", "my_db-1.example.com"])
def test_host_names_and_addresses_are_accepted(host: str) -> None:
    settings = MySQLSettings.model_validate({"host": host, "database": "d", "user": "u@x", "password": "p@ss/?#"})
    assert settings.connectorx_url().startswith("mysql://u%40x:p%40ss%2F%3F%23@")


def test_a_pipeline_with_an_injected_host_stops_before_any_connection(env: Env, csv_rows: dict[str, Any]) -> None:
    bad = env.connection("bad", host="127.0.0.1/x?socket=/tmp/evil.sock&")
    result = env.run([csv_rows, write_mysql("write", "rows", "t", connection=bad)])
    assert result.exit_code == 2
    error = next(card.error for card in result.card.steps if card.step_id == "write")
    assert error is not None and "config 'host'" in error and "is not a host name or IP address" in error
