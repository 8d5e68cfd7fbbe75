"""`mysql.writer` against the real MariaDB: modes, atomicity, names, types and the MySQL → MySQL round trip."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from osiris_core.driver import ROWS_WRITTEN
from osiris_core.errors import CompileError, DriverError
from osiris_drivers.mysql.writer import driver as writer_module
from osiris_drivers.mysql.writer.driver import MySQLWriter, MySQLWriterConfig
from tests.support.databases import MySQLDatabase
from tests.support.mysql_env import (
    EXPECTED_TYPES,
    Env,
    create_types_table,
    extract,
    extract_direct,
    fresh_table,
    sql,
    write_mysql,
)
from tests.support.runs import Recorder, assert_succeeded, failed_error, rows_written_metrics, step

# --------------------------------------------------------------------------------------------- helpers


def generate(step_id: str, values_sql: str) -> dict[str, Any]:
    """A duckdb.processor step with no inputs: typed rows from SQL."""
    return {"id": step_id, "component": "duckdb.processor", "mode": "transform", "config": {"query": values_sql}}


def write_values(env: Env, values_sql: str, table: str, **config: Any) -> Any:
    """Generate rows with DuckDB and write them with mysql.writer; the run result."""
    return env.run([generate("gen", values_sql), write_mysql("write", "gen", table, **config)])


def rows(db: MySQLDatabase, table: str, order: str = "1") -> list[tuple[Any, ...]]:
    return sql(db, f"SELECT * FROM `{table}` ORDER BY {order}")


def helper_tables(db: MySQLDatabase) -> list[str]:
    return [str(name) for (name,) in sql(db, "SHOW TABLES") if "__osiris" in str(name)]


def column_types(db: MySQLDatabase, table: str) -> list[tuple[str, str]]:
    return [(str(n), str(t)) for n, t in sql(db, "SELECT COLUMN_NAME, COLUMN_TYPE FROM information_schema.COLUMNS "
                                                 f"WHERE TABLE_SCHEMA = '{db.database}' AND TABLE_NAME = '{table}' "
                                                 "ORDER BY ORDINAL_POSITION")]


def primary_key(db: MySQLDatabase, table: str) -> list[str]:
    return [str(c) for (c,) in sql(db, "SELECT COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE "
                                       f"WHERE TABLE_SCHEMA = '{db.database}' AND TABLE_NAME = '{table}' "
                                       "AND CONSTRAINT_NAME = 'PRIMARY' ORDER BY ORDINAL_POSITION")]


def write_direct(db: MySQLDatabase, tmp: Path, data: pa.Table | pa.RecordBatchReader, *,
                 writer: type[MySQLWriter] = MySQLWriter, recorder: Recorder | None = None, **config: Any) -> None:
    settings = MySQLWriterConfig.model_validate({**db.fields, **config})
    outputs = writer().run(step_id="write", config=settings, inputs={"src": data},
                           ctx=(recorder or Recorder()).context(tmp))
    assert outputs == {}


class InsertingWriter(MySQLWriter):
    """The writer as it runs on servers with local_infile off: multi-row INSERTs."""

    use_load_data = False


def stream(schema: pa.Schema, *parts: pa.RecordBatch | Callable[[], None]) -> pa.RecordBatchReader:
    """Batches in order; a callable part runs when the stream reaches it (to inject a failure mid-load)."""

    def batches() -> Iterator[pa.RecordBatch]:
        for part in parts:
            if isinstance(part, pa.RecordBatch):
                yield part
            else:
                part()

    return pa.RecordBatchReader.from_batches(schema, batches())


# ------------------------------------------------------------------------------------ modes


def test_append_twice(env: Env) -> None:
    values = "SELECT * FROM (VALUES (1, 'a'), (2, 'b'), (3, 'c')) AS t(id, name)"
    for expected in (1, 2):
        run = write_values(env, values, "appended", write_mode="append")
        assert_succeeded(run)
        assert rows_written_metrics(run, "write") == [3]
        assert step(run, "write").rows_out == 3
        assert rows(env.db, "appended", "id, name") == [(i, n) for i, n in ((1, "a"), (2, "b"), (3, "c"))
                                                        for _ in range(expected)]
    assert column_types(env.db, "appended") == [("id", "int(11)"), ("name", "longtext")]
    assert helper_tables(env.db) == []


def test_replace_twice_and_with_fewer_rows(env: Env) -> None:
    first = "SELECT * FROM (VALUES (1, 'a'), (2, 'b'), (3, 'c')) AS t(id, name)"
    for _ in range(2):
        run = write_values(env, first, "replaced", write_mode="replace", primary_key=["id"])
        assert_succeeded(run)
        assert rows_written_metrics(run, "write") == [3]
        assert rows(env.db, "replaced") == [(1, "a"), (2, "b"), (3, "c")]
    run = write_values(env, "SELECT 9 AS id, 'z' AS name", "replaced", write_mode="replace", primary_key=["id"])
    assert_succeeded(run)
    assert rows(env.db, "replaced") == [(9, "z")]
    assert primary_key(env.db, "replaced") == ["id"]
    # replace takes the input's schema, as duckdb.writer does
    run = write_values(env, "SELECT 'k' AS code, 1.5::DOUBLE AS score", "replaced", write_mode="replace")
    assert_succeeded(run)
    assert column_types(env.db, "replaced") == [("code", "longtext"), ("score", "double")]
    assert rows(env.db, "replaced") == [("k", 1.5)]
    assert helper_tables(env.db) == []


def test_upsert_twice_with_composite_key(env: Env) -> None:
    key = ["region", "day"]
    first = "SELECT * FROM (VALUES ('eu', 1, 10), ('eu', 2, 20), ('us', 1, 30)) AS t(region, day, sales)"
    second = "SELECT * FROM (VALUES ('eu', 2, 25), ('us', 2, 40), ('us', 1, 35)) AS t(region, day, sales)"
    expected = [("eu", 1, 10), ("eu", 2, 25), ("us", 1, 35), ("us", 2, 40)]
    assert_succeeded(write_values(env, first, "sales", write_mode="upsert", primary_key=key))
    assert primary_key(env.db, "sales") == key
    assert column_types(env.db, "sales") == [("region", "varchar(255)"), ("day", "int(11)"), ("sales", "int(11)")]
    assert rows(env.db, "sales", "region, day") == [("eu", 1, 10), ("eu", 2, 20), ("us", 1, 30)]
    for _ in range(2):
        run = write_values(env, second, "sales", write_mode="upsert", primary_key=key)
        assert_succeeded(run)
        assert rows_written_metrics(run, "write") == [3]
        assert rows(env.db, "sales", "region, day") == expected
    assert helper_tables(env.db) == []


def test_upsert_into_existing_table_needs_a_matching_unique_key(env: Env) -> None:
    fresh_table(env.db, "keyed", "id INT NOT NULL, name VARCHAR(10), extra VARCHAR(5) DEFAULT 'd', UNIQUE KEY (id)",
                "INSERT INTO keyed (id, name) VALUES (1, 'old'), (2, 'keep')")
    values = "SELECT * FROM (VALUES ('new', 1), ('added', 3)) AS t(name, id)"
    run = write_values(env, values, "keyed", write_mode="upsert", primary_key=["id"], create_if_missing=False)
    assert_succeeded(run)
    assert rows(env.db, "keyed") == [(1, "new", "d"), (2, "keep", "d"), (3, "added", "d")]
    fresh_table(env.db, "unkeyed", "id INT, name VARCHAR(10)", "INSERT INTO unkeyed VALUES (1, 'a')")
    run = write_values(env, values, "unkeyed", write_mode="upsert", primary_key=["id"])
    error = failed_error(run, "write")
    assert "has no PRIMARY KEY or UNIQUE index on ['id']" in error
    assert "ADD UNIQUE (`id`)" in error
    assert rows(env.db, "unkeyed") == [(1, "a")]


def test_reserved_words_and_mixed_case(env: Env) -> None:
    first = ("SELECT * FROM (VALUES (1, 'a', 1.5, 'x'), (2, 'b', 2.5, 'y')) "
             'AS t("order", "Select", "MixedCase", "from")')
    assert_succeeded(write_values(env, first, "MixedTable", write_mode="upsert", primary_key=["order"]))
    assert [n for n, _ in column_types(env.db, "MixedTable")] == ["order", "Select", "MixedCase", "from"]
    second = ("SELECT * FROM (VALUES (9.5, 2, 'z', 'B'), (3.5, 3, 'w', 'c')) "
              'AS t("MixedCase", "order", "from", "Select")')
    assert_succeeded(write_values(env, second, "MixedTable", write_mode="upsert", primary_key=["order"]))
    assert sql(env.db, "SELECT `order`, `Select`, `MixedCase`, `from` FROM `MixedTable` ORDER BY `order`") == [
        (1, "a", Decimal("1.5"), "x"), (2, "B", Decimal("9.5"), "z"), (3, "c", Decimal("3.5"), "w")]
    third = '''SELECT 4 AS "order", 'd' AS "Select", 0.5 AS "MixedCase", 'v' AS "from"'''
    assert_succeeded(write_values(env, third, "MixedTable", write_mode="append", create_if_missing=False))
    assert sql(env.db, "SELECT COUNT(*) FROM `MixedTable`") == [(4,)]
    assert_succeeded(write_values(env, second, "MixedTable", write_mode="replace", primary_key=["order", "Select"]))
    assert primary_key(env.db, "MixedTable") == ["order", "Select"]
    assert sql(env.db, "SELECT COUNT(*) FROM `MixedTable`") == [(2,)]
    assert helper_tables(env.db) == []


@pytest.mark.parametrize("mode", ["append", "upsert", "replace"])
def test_create_if_missing_false(env: Env, mode: str) -> None:
    sql(env.db, "DROP TABLE IF EXISTS absent")
    run = write_values(env, "SELECT 1 AS id", "absent", write_mode=mode, primary_key=["id"], create_if_missing=False)
    error = failed_error(run, "write")
    assert f"table {env.db.database}.absent does not exist at 127.0.0.1:{env.db.port}" in error
    assert "create_if_missing: true" in error
    assert rows_written_metrics(run, "write") == []
    assert sql(env.db, "SHOW TABLES LIKE 'absent'") == []


def test_append_matches_columns_by_name_and_refuses_unknown_ones_under_fail(env: Env) -> None:
    fresh_table(env.db, "named", "id BIGINT, name VARCHAR(10), extra VARCHAR(5) DEFAULT 'd'")
    assert_succeeded(write_values(env, "SELECT 'x' AS NAME, 7 AS id", "named", create_if_missing=False))
    assert rows(env.db, "named") == [(7, "x", "d")]
    run = write_values(env, "SELECT 8 AS id, 'y' AS nope", "named", on_schema_change="fail")
    error = failed_error(run, "write")
    assert "the input's columns differ from table" in error
    assert "(added: nope LONGTEXT; removed: name, extra)" in error
    assert rows(env.db, "named") == [(7, "x", "d")]


def test_upsert_without_primary_key_and_unwritable_types(env: Env, tmp_path: Path) -> None:
    with pytest.raises(CompileError, match='primary_key is required when write_mode is "upsert"'):
        write_values(env, "SELECT 1 AS id", "nokey", write_mode="upsert")  # refused before running
    with pytest.raises(DriverError, match="write_mode upsert needs primary_key"):  # the driver checks it too
        write_direct(env.db, tmp_path, pa.table({"id": [1]}), table="nokey", write_mode="upsert")
    with pytest.raises(DriverError, match=r"column 'tags': no MySQL column type for Arrow list<item: string>"):
        write_direct(env.db, tmp_path, pa.table({"id": [1], "tags": [["a"]]}), table="lists")
    with pytest.raises(DriverError, match=r"primary_key columns \['ID'\] are not in the input"):
        write_direct(env.db, tmp_path, pa.table({"id": [1]}), table="t", primary_key=["ID"])
    assert sql(env.db, "SHOW TABLES LIKE 'lists'") == []


def test_bad_credentials_keep_the_password_out_of_logs(env: Env) -> None:
    secret = "writer-Wr0ng-pw"
    ref = env.connection("bad", password=secret)
    run = env.run([generate("gen", "SELECT 1 AS id"), write_mysql("write", "gen", "never", connection=ref)])
    assert "access denied for user 'root'" in failed_error(run, "write")
    assert secret not in env.logs_text()


def test_direct_call_reports_metric_and_event(mysql_db: MySQLDatabase, tmp_path: Path) -> None:
    recorder = Recorder()
    sql(mysql_db, "DROP TABLE IF EXISTS direct")
    write_direct(mysql_db, tmp_path, pa.table({"a": [1, 2]}), table="direct", recorder=recorder)
    assert recorder.metrics == [(ROWS_WRITTEN, 2, "rows")]
    assert recorder.events == [("output_written", {
        "target": f"mysql://127.0.0.1:{mysql_db.port}/{mysql_db.database}/direct", "rows": 2})]
    write_direct(mysql_db, tmp_path, pa.table({"a": pa.array([], pa.int64())}), table="direct",
                 write_mode="replace", recorder=recorder)
    assert recorder.metrics[-1] == (ROWS_WRITTEN, 0, "rows")
    assert rows(mysql_db, "direct") == []
    write_direct(mysql_db, tmp_path, pa.table({"a": [5]}), table=f"{mysql_db.database}.direct")
    assert rows(mysql_db, "direct") == [(5,)]


# ------------------------------------------------------------------------------------ atomicity


@pytest.fixture
def _small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """One LOAD DATA per batch, so a failure in the second batch comes after rows were really sent."""
    monkeypatch.setattr(writer_module, "CHUNK_BYTES", 1)


SCHEMA = pa.schema([("id", pa.int64()), ("v", pa.string())])


def batch(ids: list[int], values: list[str | None]) -> pa.RecordBatch:
    return pa.record_batch([pa.array(ids, pa.int64()), pa.array(values, pa.string())], schema=SCHEMA)


GOOD = batch([10, 11], ["ok", "ok"])


def seed(db: MySQLDatabase) -> None:
    fresh_table(db, "guarded", "id BIGINT PRIMARY KEY, v VARCHAR(5) NOT NULL",
                "INSERT INTO guarded VALUES (1, 'one'), (2, 'two')")


@pytest.mark.parametrize(("mode", "bad", "message"), [
    ("append", batch([12, 1], ["x", "dup"]), "Duplicate entry '1' for key 'PRIMARY'"),
    ("append", batch([12, 13], ["x", None]), "at row 4"),
    ("append", batch([12], ["much too long"]), "Data truncated for column 'v' at row 3"),
    ("upsert", batch([1, 13], ["upd", "much too long"]), "Data truncated for column 'v' at row 4"),
    ("upsert", batch([1, 13], ["upd", None]), "at row 4"),
    ("replace", batch([12, 10], ["x", "dup"]), "Duplicate entry '10'"),
])
@pytest.mark.usefixtures("_small_chunks")
def test_rejected_row_in_second_batch_changes_nothing(mysql_db: MySQLDatabase, tmp_path: Path, mode: str,
                                                      bad: pa.RecordBatch, message: str) -> None:
    seed(mysql_db)
    with pytest.raises(DriverError) as info:
        write_direct(mysql_db, tmp_path, stream(SCHEMA, GOOD, bad), table="guarded", write_mode=mode,
                     primary_key=["id"])
    assert message in str(info.value)
    assert "the table was left unchanged" in str(info.value)
    assert rows(mysql_db, "guarded") == [(1, "one"), (2, "two")]
    assert column_types(mysql_db, "guarded") == [("id", "bigint(20)"), ("v", "varchar(5)")]
    assert helper_tables(mysql_db) == []


@pytest.mark.parametrize("mode", ["append", "upsert", "replace"])
@pytest.mark.usefixtures("_small_chunks")
def test_upstream_failure_mid_stream_changes_nothing(mysql_db: MySQLDatabase, tmp_path: Path, mode: str) -> None:
    seed(mysql_db)

    def fail() -> None:
        raise DriverError("source broke", step_id="read")

    with pytest.raises(DriverError, match="step 'read': source broke"):
        write_direct(mysql_db, tmp_path, stream(SCHEMA, GOOD, fail), table="guarded", write_mode=mode,
                     primary_key=["id"])
    assert rows(mysql_db, "guarded") == [(1, "one"), (2, "two")]
    assert helper_tables(mysql_db) == []


@pytest.mark.parametrize("mode", ["append", "replace"])
@pytest.mark.usefixtures("_small_chunks")
def test_lost_connection_mid_load_changes_nothing(mysql_db: MySQLDatabase, tmp_path: Path, mode: str) -> None:
    seed(mysql_db)

    def kill_writer() -> None:
        others = sql(mysql_db, "SELECT ID FROM information_schema.PROCESSLIST "
                               f"WHERE DB = '{mysql_db.database}' AND ID <> CONNECTION_ID()")
        assert len(others) == 1  # the writer's session
        sql(mysql_db, f"KILL CONNECTION {others[0][0]}")

    with pytest.raises(DriverError) as info:
        write_direct(mysql_db, tmp_path, stream(SCHEMA, GOOD, kill_writer, batch([12], ["x"])), table="guarded",
                     write_mode=mode, primary_key=["id"])
    assert "lost the connection" in str(info.value) or "server has gone away" in str(info.value)
    assert info.value.transient
    assert rows(mysql_db, "guarded") == [(1, "one"), (2, "two")]
    assert helper_tables(mysql_db) == []


def test_failed_create_leaves_no_table(mysql_db: MySQLDatabase, tmp_path: Path) -> None:
    sql(mysql_db, "DROP TABLE IF EXISTS fresh")
    with pytest.raises(DriverError, match="Duplicate entry"):
        write_direct(mysql_db, tmp_path, pa.table({"id": [1, 1]}), table="fresh", write_mode="append",
                     primary_key=["id"])
    assert sql(mysql_db, "SHOW TABLES LIKE 'fresh'") == []
    assert helper_tables(mysql_db) == []


# ------------------------------------------------------------------------------------ values and types

TRICKY_TEXT = ['back\\slash "quote" comma, tab\t nl\n cr\r end', "\\N", "NULL", "", None]
TRICKY = pa.table({
    "id": pa.array([1, 2, 3, 4, 5], pa.int64()),
    "text": pa.array(TRICKY_TEXT, pa.string()),
    "emoji": pa.array(["😀 ✓ é", None, "x", '"', "\\"], pa.large_string()),
    "blob": pa.array([b'\x00\n\\",\r\t\xff', b"", None, b"\\N", b"NULL"], pa.binary()),
    "flag": pa.array([True, False, None, True, False]),
    "big_u": pa.array([2**64 - 1, 0, None, 1, 2], pa.uint64()),
    "amount": pa.array([Decimal("-1234567890.12"), Decimal("0.00"), None, Decimal("0.01"), Decimal("-0.01")],
                       pa.decimal128(12, 2)),
    "ratio": pa.array([-2.5, 1e300, 1 / 3, None, 5e-324], pa.float64()),
    "ratio32": pa.array([0.1, None, 1.5, -3.25, 0.0], pa.float32()),
    "day": pa.array([dt.date(1000, 1, 1), dt.date(2024, 2, 29), None, dt.date(9999, 12, 31), dt.date(1970, 1, 1)],
                    pa.date32()),
    "day64": pa.array([dt.date(2024, 1, 2), None, None, None, None], pa.date64()),
    "at": pa.array([dt.datetime(2024, 1, 2, 3, 4, 5, 123456), None, dt.datetime(1000, 1, 1), None, None],
                   pa.timestamp("us")),
    "zoned": pa.array([dt.datetime(2024, 6, 1, 12, tzinfo=dt.UTC), None, None, None, None],
                      pa.timestamp("us", tz="Europe/Paris")),
    "clock": pa.array([dt.time(23, 59, 59, 999999), dt.time(0), None, None, None], pa.time64("us")),
    "label": pa.array(["a", "b", "a", None, "b"]).dictionary_encode(),
})
TRICKY_TYPES = [
    ("id", "bigint(20)"), ("text", "longtext"), ("emoji", "longtext"), ("blob", "longblob"), ("flag", "tinyint(1)"),
    ("big_u", "bigint(20) unsigned"), ("amount", "decimal(12,2)"), ("ratio", "double"), ("ratio32", "float"),
    ("day", "date"), ("day64", "date"), ("at", "datetime(6)"), ("zoned", "datetime(6)"), ("clock", "time(6)"),
    ("label", "longtext"),
]


@pytest.mark.parametrize("writer", [MySQLWriter, InsertingWriter])
def test_values_survive_exactly(mysql_db: MySQLDatabase, tmp_path: Path, writer: type[MySQLWriter]) -> None:
    sql(mysql_db, "DROP TABLE IF EXISTS tricky")
    write_direct(mysql_db, tmp_path, TRICKY, writer=writer, table="tricky", write_mode="replace", primary_key=["id"])
    assert column_types(mysql_db, "tricky") == TRICKY_TYPES
    back = extract_direct(mysql_db, tmp_path, query="SELECT * FROM tricky ORDER BY id").read_all()
    expected = TRICKY.to_pydict()
    expected["zoned"] = [dt.datetime(2024, 6, 1, 12), None, None, None, None]  # stored as UTC wall time
    assert back.to_pydict() == expected
    write_direct(mysql_db, tmp_path, TRICKY.slice(0, 2), writer=writer, table="tricky", write_mode="upsert",
                 primary_key=["id"])
    write_direct(mysql_db, tmp_path, TRICKY.slice(0, 0), writer=writer, table="tricky", write_mode="append")
    assert extract_direct(mysql_db, tmp_path, query="SELECT * FROM tricky ORDER BY id").read_all().to_pydict() \
        == expected


def test_mysql_to_mysql_round_trip(env: Env) -> None:
    create_types_table(env.db, "source_types")
    for _ in range(2):
        run = env.run([extract("read", table="source_types"),
                       write_mysql("write", "read", "copied_types", write_mode="replace", primary_key=["id"])])
        assert_succeeded(run)
        assert [step(run, s).rows_out for s in ("read", "write")] == [2, 2]
    tmp = env.project
    source = extract_direct(env.db, tmp, query="SELECT * FROM source_types ORDER BY id").read_all()
    copied = extract_direct(env.db, tmp, query="SELECT * FROM copied_types ORDER BY id").read_all()
    # Every declared type is recreated (TIMESTAMP stays TIMESTAMP: docs/types.md), so the copy reads back equal.
    assert dict(zip(copied.schema.names, copied.schema.types, strict=True)) == EXPECTED_TYPES
    assert copied.equals(source)
    assert primary_key(env.db, "copied_types") == ["id"]
    assert helper_tables(env.db) == []
