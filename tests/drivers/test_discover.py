"""`osiris discover` against the real servers and files: every family lists its tables (or CSV files) with row
estimates and columns (type, nullability, primary key), fails in its own words with the right exit code, and
`--emit-pipeline` writes a pipeline that validates and copies the tables."""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest
import yaml

from osiris_cli.main import main
from osiris_drivers.filesystem.discover import SAMPLE_BYTES
from tests.support.databases import MySQLDatabase, PostgresDatabase
from tests.support.postgrest_openapi import OpenApiPostgrestServer

SERVICE_KEY = "discover-service-key-5150"
PASSWORD = "d1sc0ver-pw-8086"


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def connections(project: Path, families: dict[str, dict[str, Any]]) -> None:
    (project / "osiris_connections.yaml").write_text(yaml.safe_dump({"connections": families}), encoding="utf-8")


def discover(capsys: pytest.CaptureFixture[str], *argv: str, code: int = 0) -> Any:
    """`osiris discover ARGV --json`: exactly one JSON document on stdout (exit 0), or the one-line error."""
    capsys.readouterr()
    assert main(["discover", *argv, "--json"]) == code
    out, err = capsys.readouterr()
    if code:
        assert out == "" and err.count("\n") == 1 and "Traceback" not in err
        return err
    return json.loads(out)


def relation(found: dict[str, Any], name: str) -> dict[str, Any]:
    return next(r for r in found["tables"] if r["name"] == name)


def columns(found: dict[str, Any], name: str) -> list[tuple[str, str, bool | None, bool]]:
    return [(c["name"], c["type"], c["nullable"], c["primary_key"]) for c in relation(found, name)["columns"]]


# ------------------------------------------------------------------------------------------------------ MariaDB


@pytest.fixture(scope="module")
def mysql_films(mysql_db: MySQLDatabase) -> Iterator[MySQLDatabase]:
    with mysql_db.connect() as session, session.cursor() as cursor:
        cursor.execute("CREATE TABLE disc_films (id INT PRIMARY KEY, title VARCHAR(120) NOT NULL, "
                       "rating DECIMAL(3,1) NULL, released DATE NULL, UNIQUE KEY (title))")
        cursor.execute("INSERT INTO disc_films VALUES (1, 'Alien', 8.5, '1979-05-25'), (2, 'Brazil', NULL, NULL), "
                       "(3, 'Heat', 8.3, '1995-12-15')")
        cursor.execute("ANALYZE TABLE disc_films")
        cursor.fetchall()
        cursor.execute("CREATE VIEW disc_rated AS SELECT id, rating FROM disc_films WHERE rating IS NOT NULL")
    yield mysql_db
    with mysql_db.connect() as session, session.cursor() as cursor:
        cursor.execute("DROP VIEW IF EXISTS disc_rated")
        cursor.execute("DROP TABLE IF EXISTS disc_films")


def test_mariadb_lists_a_tables_columns_types_and_keys(project: Path, mysql_films: MySQLDatabase,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    connections(project, {"mysql": {"main": mysql_films.fields}})
    found = discover(capsys, "@mysql.main")
    assert (found["connection"], found["family"], found["schema"]) == ("@mysql.main", "mysql", mysql_films.database)
    assert found["location"] == f"mysql://127.0.0.1:{mysql_films.port}/{mysql_films.database}"
    assert mysql_films.database in found["schemas"] and "information_schema" in found["schemas"]
    films = relation(found, "disc_films")
    assert (films["kind"], films["rows"], films["schema"]) == ("table", 3, mysql_films.database)
    assert films["target"] == f"mysql://127.0.0.1:{mysql_films.port}/{mysql_films.database}/disc_films"
    listed = columns(found, "disc_films")
    assert [(n, t.split("(")[0] if n == "id" else t, null, key) for n, t, null, key in listed] == [
        ("id", "int", False, True), ("title", "varchar(120)", False, False), ("rating", "decimal(3,1)", True, False),
        ("released", "date", True, False)]  # a UNIQUE NOT NULL column is not the primary key
    view = relation(found, "disc_rated")
    assert (view["kind"], view["rows"]) == ("view", None)
    assert [c[0] for c in columns(found, "disc_rated")] == ["id", "rating"]

    capsys.readouterr()
    assert main(["discover", "@mysql"]) == 0  # the default alias; text output
    out = capsys.readouterr().out
    assert "disc_films — table, ~3 rows" in out and "disc_rated — view" in out
    assert re.search(r"\n  title +varchar\(120\) +no\n", out)


def test_mariadb_schema_option_and_its_errors(project: Path, mysql_films: MySQLDatabase,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    connections(project, {"mysql": {"main": mysql_films.fields}})
    other = discover(capsys, "@mysql.main", "--schema", "information_schema")
    assert other["schema"] == "information_schema" and any(r["name"] == "TABLES" for r in other["tables"])
    err = discover(capsys, "@mysql.main", "--schema", "no_such_db", code=2)
    assert f"error: @mysql.main: schema 'no_such_db' does not exist at 127.0.0.1:{mysql_films.port}" in err
    assert mysql_films.database in err  # the hint lists the schemas there are


def test_bad_references_are_exit_2_and_unreachable_servers_exit_1_without_secrets(
        project: Path, mysql_db: MySQLDatabase, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    down = closed_port()
    connections(project, {
        "mysql": {"down": {**mysql_db.fields, "port": down, "password": PASSWORD},
                  "env": {**mysql_db.fields, "password": "${DISC_UNSET_PW}"},
                  "badport": {**mysql_db.fields, "port": "not-a-port"}},
        "postgres": {"down": {"host": "127.0.0.1", "port": down, "database": "x", "user": "u",
                              "password": PASSWORD}},
    })
    monkeypatch.delenv("DISC_UNSET_PW", raising=False)
    err = discover(capsys, "@mysql.down", code=1)
    assert err.startswith(f"error: @mysql.down: cannot connect to MySQL at 127.0.0.1:{down} (Connection refused)")
    err = discover(capsys, "@postgres.down", code=1)
    assert err.startswith(f"error: @postgres.down: cannot connect to PostgreSQL at 127.0.0.1:{down}")
    assert "no connection '@mysql.nope'" in discover(capsys, "@mysql.nope", code=2)
    assert "no connection family 'oracle'" in discover(capsys, "@oracle.x", code=2)
    assert "invalid connection reference 'mysql.down'" in discover(capsys, "mysql.down", code=2)
    assert "environment variable DISC_UNSET_PW is not set" in discover(capsys, "@mysql.env", code=2)
    assert "@mysql.badport: mysql connection field 'port'" in discover(capsys, "@mysql.badport", code=2)
    assert PASSWORD not in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------------ PostgreSQL


@pytest.fixture(scope="module")
def pg_films(pg_db: PostgresDatabase) -> Iterator[PostgresDatabase]:
    connection = pg_db.connect()
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE disc_films (id bigint PRIMARY KEY, title varchar(40) NOT NULL, "
                       "budget numeric(12,2), shown timestamptz, tags text[])")
        cursor.execute("INSERT INTO disc_films SELECT g, 'film ' || g, g * 1000, now(), NULL "
                       "FROM generate_series(1, 250) g")
        cursor.execute("ANALYZE disc_films")
        cursor.execute("CREATE VIEW disc_totals AS SELECT count(*) AS films, sum(budget) AS budget FROM disc_films")
        cursor.execute('CREATE SCHEMA "disc sales"')
        cursor.execute('CREATE TABLE "disc sales".orders (order_id int, customer text NOT NULL, '
                       "PRIMARY KEY (order_id, customer))")
    yield pg_db
    with connection.cursor() as cursor:
        cursor.execute('DROP SCHEMA "disc sales" CASCADE; DROP VIEW disc_totals; DROP TABLE disc_films')
    connection.close()


def pg_fields(db: PostgresDatabase) -> dict[str, Any]:
    return {"host": db.host, "port": db.port, "database": db.database, "user": db.user}


def test_postgres_lists_tables_views_and_other_schemas(project: Path, pg_films: PostgresDatabase,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    connections(project, {"postgres": {"main": pg_fields(pg_films)}})
    found = discover(capsys, "@postgres.main")
    assert found["schema"] == "public" and {"public", "disc sales"} <= set(found["schemas"])
    films = relation(found, "disc_films")
    assert (films["kind"], films["rows"]) == ("table", 250)  # the planner's estimate, exact after ANALYZE
    assert films["target"] == f"postgresql://127.0.0.1:{pg_films.port}/{pg_films.database}/public.disc_films"
    assert columns(found, "disc_films") == [
        ("id", "bigint", False, True), ("title", "character varying(40)", False, False),
        ("budget", "numeric(12,2)", True, False), ("shown", "timestamp with time zone", True, False),
        ("tags", "text[]", True, False)]
    totals = relation(found, "disc_totals")
    assert (totals["kind"], totals["rows"]) == ("view", None)
    sales = discover(capsys, "@postgres.main", "--schema", "disc sales")
    assert columns(sales, "orders") == [("order_id", "integer", False, True), ("customer", "text", False, True)]
    assert relation(sales, "orders")["target"].endswith("/disc%20sales.orders")
    assert "schema 'nope' does not exist" in discover(capsys, "@postgres.main", "--schema", "nope", code=2)


# ------------------------------------------------------------------------------------------------------ Supabase


@pytest.fixture(scope="module")
def openapi_server(pg_films: PostgresDatabase) -> Iterator[OpenApiPostgrestServer]:
    server = OpenApiPostgrestServer(pg_films.dsn, api_key=SERVICE_KEY, schema="public,disc sales")
    try:
        yield server
    finally:
        server.stop()


def test_supabase_through_postgrest_openapi_and_through_pg_dsn(
        project: Path, pg_films: PostgresDatabase, openapi_server: OpenApiPostgrestServer,
        capsys: pytest.CaptureFixture[str]) -> None:
    connection = pg_films.connect()  # the API role sees only what it is granted (the emulator's roles now exist)
    with connection.cursor() as cursor:
        cursor.execute('GRANT USAGE ON SCHEMA public, "disc sales" TO service_role; '
                       'GRANT SELECT ON ALL TABLES IN SCHEMA public, "disc sales" TO service_role')
    connection.close()
    connections(project, {"supabase": {
        "rest": {"url": openapi_server.url, "service_role_key": SERVICE_KEY},
        "dsn": {"url": openapi_server.url, "service_role_key": SERVICE_KEY, "pg_dsn": pg_films.dsn},
        "badkey": {"url": openapi_server.url, "anon_key": "wrong-key-31337"},
        "nokey": {"url": openapi_server.url},
    }})
    rest = discover(capsys, "@supabase.rest")
    assert (rest["schema"], rest["location"]) == ("public", f"{openapi_server.url}/")
    films = relation(rest, "disc_films")
    assert (films["kind"], films["rows"], films["target"]) == ("table", 250, f"{openapi_server.url}/public.disc_films")
    assert columns(rest, "disc_films") == [
        ("id", "bigint", False, True), ("title", "character varying(40)", False, False),
        ("budget", "numeric", True, False), ("shown", "timestamp with time zone", True, False),
        ("tags", "text[]", True, False)]  # PostgREST names types without their modifiers (bar a varchar's length)
    assert relation(rest, "disc_totals")["kind"] == "view"  # PostgreSQL cannot write through it
    assert ("GET", "/rest/v1/") in openapi_server.requests
    assert ("HEAD", "/rest/v1/disc_films") in openapi_server.requests
    sales = discover(capsys, "@supabase.rest", "--schema", "disc sales")
    assert columns(sales, "orders") == [("order_id", "integer", False, True), ("customer", "text", False, True)]

    dsn = discover(capsys, "@supabase.dsn")  # pg_dsn: the PostgreSQL catalog, targets still the project's URIs
    assert columns(dsn, "disc_films")[1] == ("title", "character varying(40)", False, False)
    assert relation(dsn, "disc_films")["target"] == f"{openapi_server.url}/public.disc_films"
    assert {"public", "disc sales"} <= set(dsn["schemas"])

    assert "PostgREST" in discover(capsys, "@supabase.rest", "--schema", "hidden", code=2)
    err = discover(capsys, "@supabase.badkey", code=1)
    assert "@supabase.badkey: Supabase at 127.0.0.1" in err and "refused the key (HTTP 401" in err
    assert "wrong-key-31337" not in err
    assert "has no key and no pg_dsn" in discover(capsys, "@supabase.nokey", code=2)


# ------------------------------------------------------------------------------------------------------ DuckDB


def test_duckdb_file_is_listed_read_only(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = project / "warehouse.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE TABLE sales (id INTEGER PRIMARY KEY, region VARCHAR NOT NULL, amount DECIMAL(10,2))")
        con.execute("INSERT INTO sales SELECT i, 'r' || (i % 3), i FROM range(40) t(i)")
        con.execute("CREATE VIEW by_region AS SELECT region, sum(amount) AS total FROM sales GROUP BY region")
        con.execute("CREATE SCHEMA staging")
        con.execute("CREATE TABLE staging.raw (payload JSON)")
    before = path.read_bytes()
    connections(project, {"duckdb": {"wh": {"path": str(path)}, "gone": {"path": str(project / "gone.duckdb")}}})
    found = discover(capsys, "@duckdb.wh")
    assert (found["schema"], found["schemas"]) == ("main", ["main", "staging"])
    sales = relation(found, "sales")
    assert (sales["kind"], sales["rows"], sales["target"]) == ("table", 40, f"duckdb://{path}#main.sales")
    assert columns(found, "sales") == [("id", "INTEGER", False, True), ("region", "VARCHAR", False, False),
                                       ("amount", "DECIMAL(10,2)", True, False)]
    assert relation(found, "by_region")["kind"] == "view"
    assert columns(discover(capsys, "@duckdb.wh", "--schema", "staging"), "raw") == [("payload", "JSON", True, False)]
    assert path.read_bytes() == before  # opened read-only
    assert "no DuckDB file at" in discover(capsys, "@duckdb.gone", code=1)
    assert not (project / "gone.duckdb").exists()


# ------------------------------------------------------------------------------------------------------ CSV files


def test_csv_files_of_a_folder_a_glob_or_a_file(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = project / "data"
    data.mkdir()
    (data / "movies.csv").write_text("id,title,rating\n1,Alien,8.5\n2,Brazil,\n3,Heat,8.3\n", encoding="utf-8")
    (data / "people.CSV").write_text("name;born\nAnn;1970-01-02\nBob;1981-03-04\n", encoding="utf-8")
    (data / "notes.txt").write_text("not a csv", encoding="utf-8")
    (data / "broken.csv").write_text("a,b\n1,2,3\n", encoding="utf-8")
    big = data / "big.csv"
    with big.open("w", encoding="utf-8") as stream:
        stream.write("n,label\n")
        for i in range(200_000):
            stream.write(f"{i},label-{i % 97}\n")
    assert big.stat().st_size > 2 * SAMPLE_BYTES
    connections(project, {"filesystem": {"data": {"path": "data"}, "glob": {"path": "data/m*.csv"},
                                         "one": {"path": "data/people.CSV"}, "none": {"path": "nowhere"}}})
    found = discover(capsys, "@filesystem.data")
    assert (found["schema"], found["schemas"]) == (None, [])
    assert [r["name"] for r in found["tables"]] == ["big.csv", "broken.csv", "movies.csv", "people.CSV"]
    movies = relation(found, "movies.csv")
    assert (movies["kind"], movies["rows"], movies["target"]) == ("file", 3, (data / "movies.csv").as_uri())
    assert columns(found, "movies.csv") == [("id", "int64", False, False), ("title", "string", False, False),
                                            ("rating", "double", True, False)]
    assert columns(found, "people.CSV") == [("name", "string", False, False), ("born", "date32[day]", False, False)]
    assert relation(found, "broken.csv")["note"].startswith("cannot parse")
    estimate = relation(found, "big.csv")["rows"]
    assert 180_000 < estimate < 220_000  # extrapolated from the first SAMPLE_BYTES, not counted
    assert [r["name"] for r in discover(capsys, "@filesystem.glob")["tables"]] == ["movies.csv"]
    assert [r["name"] for r in discover(capsys, "@filesystem.one")["tables"]] == ["people.CSV"]
    assert "--schema does not apply" in discover(capsys, "@filesystem.data", "--schema", "x", code=2)
    assert "nowhere" in discover(capsys, "@filesystem.none", code=1)


# ------------------------------------------------------------------------------------------------------ --emit-pipeline


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, Any]:
    capsys.readouterr()
    assert main([*argv, "--json"]) == 0
    result: dict[str, Any] = json.loads(capsys.readouterr().out)
    return result


def test_emitted_pipeline_from_mariadb_validates_and_copies_the_tables(
        project: Path, mysql_films: MySQLDatabase, capsys: pytest.CaptureFixture[str]) -> None:
    connections(project, {"mysql": {"main": mysql_films.fields}})
    written = run_json(capsys, "discover", "@mysql.main", "--emit-pipeline", "disc_films",
                       f"{mysql_films.database}.disc_rated", "-o", "copy.yaml")
    assert written == {"file": "copy.yaml", "pipeline": "copy-mysql-main", "target": "output/mysql_main.duckdb",
                       "steps": ["extract-disc_films", "write-disc_films", "extract-disc_rated", "write-disc_rated"]}
    assert run_json(capsys, "validate", "copy.yaml")["valid"] is True
    card = run_json(capsys, "run", "copy.yaml")
    assert card["status"] == "succeeded"
    with duckdb.connect("output/mysql_main.duckdb", read_only=True) as con:
        assert con.execute("SELECT count(*) FROM disc_films").fetchone() == (3,)
        assert con.execute("SELECT count(*) FROM disc_rated").fetchone() == (2,)


def test_emitted_pipelines_from_csv_files_and_duckdb_run(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "in").mkdir()
    (project / "in" / "a.b.csv").write_text("k;v\n1;x\n2;y\n", encoding="utf-8")
    (project / "in" / "a_b.csv").write_text("k,v\n3,z\n", encoding="utf-8")
    connections(project, {"filesystem": {"in": {"path": "in"}},
                          "duckdb": {"copied": {"path": "output/filesystem_in.duckdb"}}})
    written = run_json(capsys, "discover", "@filesystem.in", "--emit-pipeline", "a.b", "a_b.csv", "-o", "files.yaml")
    assert written["steps"] == ["extract-a-b", "write-a-b", "extract-a_b_2", "write-a_b_2"]
    assert run_json(capsys, "run", "files.yaml")["status"] == "succeeded"
    with duckdb.connect("output/filesystem_in.duckdb", read_only=True) as con:
        assert con.execute('SELECT * FROM "a_b" ORDER BY k').fetchall() == [(1, "x"), (2, "y")]  # `;` sniffed
        assert con.execute('SELECT * FROM "a_b_2"').fetchall() == [(3, "z")]
    # A DuckDB file has no extractor component: a processor step attaches it read-only.
    run_json(capsys, "discover", "@duckdb.copied", "--emit-pipeline", "a_b", "-o", "from_duckdb.yaml")
    assert run_json(capsys, "run", "from_duckdb.yaml")["status"] == "succeeded"
    with duckdb.connect("output/duckdb_copied.duckdb", read_only=True) as con:
        assert con.execute("SELECT count(*) FROM a_b").fetchone() == (2,)


def test_emit_pipeline_refusals(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "in").mkdir()
    (project / "in" / "a.csv").write_text("k\n1\n", encoding="utf-8")
    (project / "taken.yaml").write_text("mine\n", encoding="utf-8")
    connections(project, {"filesystem": {"in": {"path": "in"}}})
    assert "taken.yaml already exists" in discover(capsys, "@filesystem.in", "--emit-pipeline", "a", "-o",
                                                   "taken.yaml", code=2)
    assert (project / "taken.yaml").read_text(encoding="utf-8") == "mine\n"
    assert "no table 'zz' in @filesystem.in" in discover(capsys, "@filesystem.in", "--emit-pipeline", "zz", "-o",
                                                          "new.yaml", code=2)
    assert not (project / "new.yaml").exists()
    assert "--emit-pipeline needs -o FILE" in discover(capsys, "@filesystem.in", "--emit-pipeline", "a", code=2)
    assert "-o/--output goes with --emit-pipeline" in discover(capsys, "@filesystem.in", "-o", "x.yaml", code=2)
    capsys.readouterr()
    assert main(["discover", "@filesystem.in", "--emit-pipeline", "a", "-o", "-"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert [s["component"] for s in printed["steps"]] == ["filesystem.csv_extractor", "duckdb.writer"]
