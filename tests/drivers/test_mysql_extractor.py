"""`mysql.extractor` against the real MariaDB, through the real compiler and runner (helpers shared with the writer)."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from osiris_core.errors import CompileError, DriverError
from osiris_drivers.connection import ConnectionFailed
from osiris_drivers.mysql.connection import MySQLSettings
from tests.support.databases import MySQLDatabase
from tests.support.mysql_env import (
    EXPECTED_FIRST_ROW,
    EXPECTED_TYPES,
    Env,
    create_types_table,
    extract,
    extract_direct,
    free_port,
    fresh_table,
    read_csv,
)
from tests.support.runs import assert_succeeded, failed_error, rows_written_metrics, step, write_csv


def test_types_map_to_exact_arrow_types(mysql_db: MySQLDatabase, tmp_path: Path) -> None:
    create_types_table(mysql_db)
    table = extract_direct(mysql_db, tmp_path, query="SELECT * FROM all_types ORDER BY id").read_all()
    assert dict(zip(table.schema.names, table.schema.types, strict=True)) == EXPECTED_TYPES
    first, nulls = table.to_pylist()
    assert first == EXPECTED_FIRST_ROW
    assert nulls == {name: (2 if name == "id" else None) for name in EXPECTED_TYPES}


def test_timestamp_is_read_in_utc_whatever_the_server_zone(mysql_db: MySQLDatabase, tmp_path: Path) -> None:
    fresh_table(mysql_db, "stamps", "s TIMESTAMP(6) NULL",
                "SET time_zone = '+05:00'", "INSERT INTO stamps VALUES ('2024-06-01 17:00:00.25')")
    table = extract_direct(mysql_db, tmp_path, table="stamps").read_all()
    assert table.column("s").to_pylist() == [dt.datetime(2024, 6, 1, 12, 0, 0, 250000, tzinfo=dt.UTC)]


def test_time_outside_a_day_is_a_clear_error(mysql_db: MySQLDatabase, tmp_path: Path) -> None:
    fresh_table(mysql_db, "durations", "d TIME", "INSERT INTO durations VALUES ('-838:59:59')")
    reader = extract_direct(mysql_db, tmp_path, table="durations")
    with pytest.raises(DriverError, match="has no Arrow form") as info:
        reader.read_all()
    assert "CAST such columns AS CHAR" in str(info.value)
    text = extract_direct(mysql_db, tmp_path, query="SELECT CAST(d AS CHAR) AS d FROM durations").read_all()
    assert text.column("d").to_pylist() == ["-838:59:59"]


# ------------------------------------------------------------------------------------ query, table, columns, limit


def test_query_and_table_with_columns_and_limit(env: Env) -> None:
    fresh_table(env.db, "people", "id INT PRIMARY KEY, `Name` VARCHAR(20), `order` INT",
                "INSERT INTO people VALUES (1, 'Ann', 30), (2, 'Bob', 10), (3, 'Cid', 20)")
    run = env.run([
        extract("by-query", query="SELECT `Name`, `order` FROM people WHERE `order` > 15 ORDER BY `order`;"),
        write_csv("query-csv", "by-query", "out/query.csv"),
        extract("by-table", table="people", columns=["order", "id"], limit=2),
        write_csv("table-csv", "by-table", "out/table.csv"),
        extract("qualified", table=f"{env.db.database}.people"),
        write_csv("qualified-csv", "qualified", "out/qualified.csv"),
    ])
    assert_succeeded(run)
    assert read_csv(env.project / "out/query.csv") == [["Name", "order"], ["Cid", "20"], ["Ann", "30"]]
    table_rows = read_csv(env.project / "out/table.csv")
    assert table_rows[0] == ["order", "id"]
    assert len(table_rows) == 3
    assert {tuple(r) for r in table_rows[1:]} <= {("30", "1"), ("10", "2"), ("20", "3")}
    assert sorted(read_csv(env.project / "out/qualified.csv")[1:]) == [
        ["1", "Ann", "30"], ["2", "Bob", "10"], ["3", "Cid", "20"]]
    assert [step(run, s).rows_out for s in ("by-query", "by-table", "qualified")] == [2, 2, 3]


@pytest.mark.parametrize(("config", "compiled", "message"), [
    ({"query": "SELECT 1", "table": "people"}, "query and table exclude each other",
     "set exactly one of `query` and `table`"),
    ({}, "one of query, table is required", "set exactly one of `query` and `table`"),
    ({"query": "SELECT 1", "limit": 5}, "limit is not allowed when query is set",
     "`columns` and `limit` apply to `table` only"),
])
def test_query_xor_table(env: Env, config: dict[str, Any], compiled: str, message: str) -> None:
    with pytest.raises(CompileError, match=compiled):  # refused before anything runs (the spec's rules)
        env.run([extract("read", **config), write_csv("out", "read", "out/x.csv")])
    assert not (env.project / "out").exists()
    with pytest.raises(DriverError, match=re.escape(message)):  # the driver checks it too
        extract_direct(env.db, env.project, **config)


def test_limit_zero_gives_typed_empty_stream(mysql_db: MySQLDatabase, tmp_path: Path) -> None:
    create_types_table(mysql_db)
    table = extract_direct(mysql_db, tmp_path, table="all_types", limit=0).read_all()
    assert table.num_rows == 0
    assert dict(zip(table.schema.names, table.schema.types, strict=True)) == EXPECTED_TYPES


# ------------------------------------------------------------------------------------ streaming


def create_numbers(db: MySQLDatabase, rows: int) -> None:
    """`numbers(n, label)` with n = 0 … rows-1, generated by the server."""
    digits = "(SELECT 0 AS d UNION ALL SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3 UNION ALL SELECT 4 " \
             "UNION ALL SELECT 5 UNION ALL SELECT 6 UNION ALL SELECT 7 UNION ALL SELECT 8 UNION ALL SELECT 9)"
    joins = ", ".join(f"{digits} AS d{i}" for i in range(6))
    number = " + ".join(f"d{i}.d * {10 ** i}" for i in range(6))
    fresh_table(db, "numbers", "n INT PRIMARY KEY, label VARCHAR(20)",
                f"INSERT INTO numbers SELECT n, CONCAT('row-', n) FROM (SELECT {number} AS n FROM {joins}) AS g "
                f"WHERE n < {rows}")


def test_streams_in_many_batches(env: Env, tmp_path: Path) -> None:
    rows = 300_000
    create_numbers(env.db, rows)
    reader = extract_direct(env.db, tmp_path, table="numbers")
    batches = count = total = 0
    for batch in reader:
        batches += 1
        count += batch.num_rows
        total += sum(batch.column("n").to_pylist())
    assert batches > 1
    assert (count, total) == (rows, rows * (rows - 1) // 2)
    run = env.run([extract("read", table="numbers"), write_csv("out", "read", "out/numbers.csv")])
    assert_succeeded(run)
    assert step(run, "read").rows_out == rows
    assert rows_written_metrics(run, "out") == [rows]


def test_tables_with_an_integer_key_are_read_in_key_pages(env: Env, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Pages bound ConnectorX's read-ahead; they must add up to exactly the table, in key order."""
    from osiris_drivers.sql import pages

    monkeypatch.setattr(pages, "PAGE_ROWS", 1_000)
    create_numbers(env.db, 2_500)
    whole = extract_direct(env.db, tmp_path, table="numbers").read_all()
    assert whole.column_names == ["n", "label"]
    assert whole.column("n").to_pylist() == list(range(2_500))
    only_label = extract_direct(env.db, tmp_path, table="numbers", columns=["label"]).read_all()
    assert only_label.column_names == ["label"] and only_label.num_rows == 2_500
    limited = extract_direct(env.db, tmp_path, table="numbers", limit=1_500).read_all()
    assert limited.column("n").to_pylist() == list(range(1_500))
    exact = extract_direct(env.db, tmp_path, table="numbers", limit=2_000).read_all()
    assert exact.num_rows == 2_000
    fresh_table(env.db, "no_key", "n INT, label VARCHAR(20)", "INSERT INTO no_key VALUES (1, 'a'), (2, 'b')")
    assert extract_direct(env.db, tmp_path, table="no_key").read_all().num_rows == 2


# ------------------------------------------------------------------------------------ credentials and failures


def check_mysql(fields: dict[str, Any]) -> str:
    """The doctor's check of a `mysql` connection."""
    return MySQLSettings.from_connection(fields).doctor()


@pytest.fixture
def special_user(mysql_db: MySQLDatabase) -> Iterator[tuple[str, str]]:
    """A MariaDB user whose password has every URL-special character, dropped afterwards."""
    user = f"osiris_{uuid.uuid4().hex[:8]}"
    password = "p@ss:w/rd#1%?&=+ é'\"\\;${x}"
    hosts = ("%", "localhost", "127.0.0.1")
    with mysql_db.connect() as con, con.cursor() as cursor:
        for host in hosts:
            cursor.execute(f"CREATE USER '{user}'@'{host.replace('%', '%%')}' IDENTIFIED BY %s", (password,))
            cursor.execute(f"GRANT ALL ON `{mysql_db.database}`.* TO '{user}'@'{host}'")
    try:
        yield user, password
    finally:
        with mysql_db.connect() as con, con.cursor() as cursor:
            for host in hosts:
                cursor.execute(f"DROP USER IF EXISTS '{user}'@'{host}'")


def test_password_with_special_characters(env: Env, special_user: tuple[str, str]) -> None:
    user, password = special_user
    fresh_table(env.db, "secret_things", "id INT, v VARCHAR(10)", "INSERT INTO secret_things VALUES (1, 'x')")
    ref = env.connection("special", user=user, password=password)
    run = env.run([extract("read", ref, table="secret_things"), write_csv("out", "read", "out/s.csv"),
                   extract("again", ref, query="SELECT CURRENT_USER() AS who"), write_csv("who", "again", "who.csv")])
    assert_succeeded(run)
    assert read_csv(env.project / "out/s.csv") == [["id", "v"], ["1", "x"]]
    assert read_csv(env.project / "who.csv")[1][0].startswith(f"{user}@")
    assert password not in env.logs_text()
    verdict = check_mysql({**env.db.fields, "user": user, "password": password})
    assert verdict.startswith("ok: MariaDB ")
    assert password not in verdict


def test_bad_credentials(env: Env) -> None:
    secret = "Wr0ng-S3cret-pw!"
    ref = env.connection("bad", user="root", password=secret)
    run = env.run([extract("read", ref, table="anything"), write_csv("out", "read", "out/x.csv")])
    error = failed_error(run, "read")
    assert error.startswith("step 'read': access denied for user 'root' at 127.0.0.1:")
    assert "check user and password" in error
    assert step(run, "out").status == "skipped"
    assert secret not in env.logs_text()
    with pytest.raises(ConnectionFailed, match="access denied") as info:
        check_mysql({**env.db.fields, "password": secret})
    assert secret not in str(info.value)
    assert not info.value.transient


def test_unreachable_host(env: Env, tmp_path: Path) -> None:
    port = free_port()
    secret = "unreach-S3cret"
    ref = env.connection("down", port=port, password=secret)
    run = env.run([extract("read", ref, query="SELECT 1 AS x"), write_csv("out", "read", "out/x.csv")])
    error = failed_error(run, "read")
    assert f"cannot connect to MySQL at 127.0.0.1:{port} (Connection refused)" in error
    assert "check host and port" in error
    assert secret not in env.logs_text()
    with pytest.raises(DriverError) as info:
        extract_direct(env.db, tmp_path, port=port, query="SELECT 1")
    assert info.value.transient
    with pytest.raises(ConnectionFailed, match="cannot connect") as check:
        check_mysql({**env.db.fields, "port": port})
    assert check.value.transient


def test_missing_table_and_bad_sql(env: Env) -> None:
    run = env.run([extract("read", table="no_such_table"), write_csv("out", "read", "out/x.csv")])
    error = failed_error(run, "read")
    assert f"Table '{env.db.database}.no_such_table' doesn't exist" in error
    assert "check the table name" in error
    run = env.run([extract("read", query="SELECT nope FROM numbers_missing"), write_csv("out", "read", "o.csv")])
    assert "doesn't exist" in failed_error(run, "read")
    run = env.run([extract("read", query="SELECT 1 AS a, 2 AS a"), write_csv("out", "read", "o.csv")])
    assert "give every selected column a distinct name" in failed_error(run, "read")


def test_check_mysql_verdict(mysql_db: MySQLDatabase) -> None:
    verdict = check_mysql({**mysql_db.fields, "default": True})
    assert verdict.startswith("ok: MariaDB ")
    assert f"127.0.0.1:{mysql_db.port}/{mysql_db.database}" in verdict
    with pytest.raises(ConnectionFailed, match=r"database 'nope_db' does not exist"):
        check_mysql({**mysql_db.fields, "database": "nope_db"})


def test_wide_decimals_travel_exactly(mysql_db: MySQLDatabase, tmp_path: Path) -> None:
    fresh_table(mysql_db, "wide_decimals", "id INT PRIMARY KEY, d28 DECIMAL(28,0), d20 DECIMAL(20,1)",
                "INSERT INTO wide_decimals VALUES (1, 9999999999999999999999999999, 1234567890123456789.5)")
    row = extract_direct(mysql_db, tmp_path, table="wide_decimals").read_all().to_pylist()[0]
    assert row["d28"] == Decimal("9999999999999999999999999999")
    assert row["d20"] == Decimal("1234567890123456789.5")


@pytest.mark.parametrize("whole", [True, False])
def test_a_whole_read_lets_other_threads_run_while_the_database_works(mysql_db: MySQLDatabase, whole: bool) -> None:
    """Key pages are read whole: ConnectorX's stream holds the GIL while the database works (the control), which
    stopped the writer's thread — encoding and sending the previous page — for as long."""
    import threading
    import time

    from osiris_drivers.sql.connectorx import open_stream

    settings = MySQLSettings.model_validate(mysql_db.fields)
    done = threading.Event()

    def read() -> None:
        try:
            reader = open_stream(settings.connectorx_url(), "SELECT SLEEP(2) AS s",
                                 lambda exc, _: DriverError(str(exc), step_id="read"), whole=whole)
            assert reader.read_all().num_rows == 1
        finally:
            done.set()

    worker = threading.Thread(target=read)
    gaps, last = [], time.perf_counter()
    worker.start()
    while not done.is_set():
        now = time.perf_counter()
        gaps.append(now - last)
        last = now
    worker.join()
    assert (max(gaps) < 1.0) is whole  # the stream stalls ~2 s; a whole read only for thread switches
