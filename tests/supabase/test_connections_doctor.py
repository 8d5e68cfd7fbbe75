"""`osiris connections doctor` against the real servers: every family's own check, OK for good connections,
an actionable FAIL in the family's words otherwise."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import duckdb
import pytest
import yaml

from osiris_cli.main import main
from tests.supabase.conftest import SERVICE_KEY
from tests.support.databases import MySQLDatabase, PostgresDatabase
from tests.support.postgrest_server import PostgrestServer


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_doctor_checks_every_connection_for_real(project: Path, pg_db: PostgresDatabase, mysql_db: MySQLDatabase,
                                                postgrest: PostgrestServer, capsys: pytest.CaptureFixture[str]) -> None:
    pg_fields = {"host": pg_db.host, "port": pg_db.port, "database": pg_db.database, "user": pg_db.user}
    down_port = closed_port()
    duckdb.connect(str(project / "local.duckdb")).close()
    (project / "rows.csv").write_text("id\n1\n", encoding="utf-8")
    (project / "osiris_connections.yaml").write_text(yaml.safe_dump({"connections": {
        "duckdb": {"local": {"path": str(project / "local.duckdb")}, "gone": {"path": str(project / "gone.duckdb")}},
        "filesystem": {"rows": {"path": str(project / "rows.csv")}},
        "mysql": {"main": mysql_db.fields},
        "postgres": {"main": pg_fields, "down": {**pg_fields, "port": down_port, "password": "pg-d0wn-pw"}},
        "supabase": {
            "main": {"url": postgrest.url, "service_role_key": SERVICE_KEY, "sql_url": postgrest.sql_url,
                     "pg_dsn": pg_db.dsn},
            "badkey": {"url": postgrest.url, "service_role_key": "not-the-key-777", "sql_url": postgrest.sql_url},
        },
    }}))
    assert main(["connections", "doctor", "--json"]) == 1
    verdicts = {v["connection"]: v for v in json.loads(capsys.readouterr().out)}
    assert verdicts["@mysql.main"]["ok"], verdicts["@mysql.main"]
    assert verdicts["@postgres.main"]["ok"] and "connected as" in verdicts["@postgres.main"]["message"]
    assert verdicts["@supabase.main"]["ok"]
    message = verdicts["@supabase.main"]["message"]
    assert message.startswith("PostgREST ok (as service_role); pg_dsn: connected as"), message
    assert message.endswith("; HTTP SQL ok; writers use psycopg2 over pg_dsn (ddl_channel: auto)"), message
    assert not verdicts["@postgres.down"]["ok"]
    assert verdicts["@postgres.down"]["message"].startswith(  # the family's words, not libpq's raw text
        f"cannot connect to PostgreSQL at 127.0.0.1:{down_port} (Connection refused) — check host and port")
    assert verdicts["@duckdb.local"]["ok"] and verdicts["@filesystem.rows"]["ok"]
    assert not verdicts["@duckdb.gone"]["ok"] and "no DuckDB file at" in verdicts["@duckdb.gone"]["message"]
    assert not verdicts["@supabase.badkey"]["ok"]
    assert "Invalid API key — check url and key" in verdicts["@supabase.badkey"]["message"]
    text = json.dumps(verdicts)
    assert "pg-d0wn-pw" not in text and "not-the-key-777" not in text and SERVICE_KEY not in text
    assert main(["connections", "doctor", "@postgres.main", "@mysql.main"]) == 0
    out = capsys.readouterr().out
    assert out.count("OK") == 2 and "@supabase" not in out
