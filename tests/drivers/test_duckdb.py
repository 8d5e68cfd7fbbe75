"""`duckdb.processor` and `duckdb.writer`, driven through the real compiler and runner."""

from __future__ import annotations

import csv
import datetime as dt
import shutil
from collections.abc import Mapping
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest

from osiris_core.driver import MAIN_OUTPUT, ROWS_WRITTEN
from osiris_core.errors import CompileError, DriverError
from osiris_core.registry import ComponentRegistry
from osiris_core.runner import RunResult
from osiris_drivers.duckdb.processor.driver import DuckDBProcessor, DuckDBProcessorConfig
from osiris_drivers.duckdb.writer.driver import DuckDBWriter, DuckDBWriterConfig
from tests.support import runs
from tests.support.runs import Recorder, assert_succeeded, failed_error, rows_written_metrics, run_file, step
from tests.support.runs import extract_csv as extract

REPO_ROOT = Path(__file__).resolve().parents[2]
DB = "db/test.duckdb"

# --------------------------------------------------------------------------------------------- helpers


def run_pipeline(registry: ComponentRegistry, project: Path, steps: list[dict[str, Any]],
                 name: str = "duckdb-test") -> RunResult:
    return runs.run_pipeline(registry, project, steps, name)


def process(step_id: str, needs: list[str], query: str) -> dict[str, Any]:
    return {"id": step_id, "component": "duckdb.processor", "mode": "transform", "needs": needs,
            "config": {"query": query}}


def write_db(step_id: str, need: str, table: str, path: str = DB, **config: Any) -> dict[str, Any]:
    return {"id": step_id, "component": "duckdb.writer", "mode": "write", "needs": [need],
            "config": {"path": path, "table": table, **config}}


def query(project: Path, sql: str, path: str = DB) -> list[tuple[Any, ...]]:
    with duckdb.connect(str(project / path), read_only=True) as con:
        return con.execute(sql).fetchall()


def columns(project: Path, table: str, path: str = DB) -> list[tuple[str, str]]:
    with duckdb.connect(str(project / path), read_only=True) as con:
        return [(str(row[0]), str(row[1])) for row in con.execute(f"DESCRIBE {table}").fetchall()]


def primary_key(project: Path, table: str, schema: str = "main", path: str = DB) -> list[str]:
    rows = query(project, "SELECT constraint_column_names FROM duckdb_constraints() "
                          f"WHERE constraint_type = 'PRIMARY KEY' AND table_name = '{table}' "
                          f"AND schema_name = '{schema}'", path)
    return [str(c) for c in rows[0][0]] if rows else []


def load_csv_into(registry: ComponentRegistry, project: Path, source: str, table: str,
                  **writer_config: Any) -> RunResult:
    """extract `source` (CSV text) → duckdb.writer into `table` of DB."""
    (project / "in.csv").write_text(source, encoding="utf-8")
    return run_pipeline(registry, project, [
        extract("read-in", "in.csv"),
        write_db("write-db", "read-in", table, **writer_config),
    ])


def create_table(project: Path, *statements: str) -> None:
    (project / DB).parent.mkdir(parents=True, exist_ok=True)
    with duckdb.connect(str(project / DB)) as con:
        for statement in statements:
            con.execute(statement)


def process_direct(query_text: str, inputs: Mapping[str, pa.Table | pa.RecordBatchReader],
                   tmp: Path) -> pa.Table:
    outputs = DuckDBProcessor().run(step_id="proc", config=DuckDBProcessorConfig(query=query_text),
                                    inputs=inputs, ctx=Recorder().context(tmp))
    data = outputs[MAIN_OUTPUT]
    assert isinstance(data, pa.RecordBatchReader)
    return data.read_all()


def stream(table: pa.Table) -> pa.RecordBatchReader:
    return pa.RecordBatchReader.from_batches(table.schema, table.to_batches())


# ------------------------------------------------------------------------------------ processor

PEOPLE = "id,name\n1,Ann\n2,Bob\n3,Cid\n"
ORDERS = "order_id,person_id,amount\n10,1,5.5\n11,1,4.5\n12,2,7.25\n13,9,100.0\n"


def test_processor_two_named_inputs(registry: ComponentRegistry, project: Path) -> None:
    (project / "people.csv").write_text(PEOPLE, encoding="utf-8")
    (project / "orders.csv").write_text(ORDERS, encoding="utf-8")
    run = run_pipeline(registry, project, [
        extract("load-people", "people.csv"),
        extract("load-orders", "orders.csv"),
        process("join-them", ["load-people", "load-orders"], """
            SELECT p.name, COUNT(o.order_id) AS orders, SUM(o.amount) AS total
            FROM load_people AS p LEFT JOIN load_orders AS o ON o.person_id = p.id
            GROUP BY p.name ORDER BY p.name"""),
        write_db("write-db", "join-them", "totals", write_mode="replace"),
    ])
    assert_succeeded(run)
    assert query(project, "SELECT * FROM totals ORDER BY name") == [
        ("Ann", 2, 10.0), ("Bob", 1, 7.25), ("Cid", 0, None)]
    assert columns(project, "totals") == [("name", "VARCHAR"), ("orders", "BIGINT"), ("total", "DOUBLE")]
    card = step(run, "join-them")
    assert (card.rows_in, card.rows_out) == (7, 3)
    assert step(run, "write-db").rows_out == 3


def test_processor_input_df_alias_with_one_input(registry: ComponentRegistry, project: Path) -> None:
    (project / "people.csv").write_text(PEOPLE, encoding="utf-8")
    run = run_pipeline(registry, project, [
        extract("load-people", "people.csv"),
        process("upper", ["load-people"], "SELECT id, upper(name) AS name FROM input_df WHERE id > 1 ORDER BY id"),
        write_db("write-db", "upper", "people", write_mode="replace"),
    ])
    assert_succeeded(run)
    assert query(project, "SELECT * FROM people ORDER BY id") == [(2, "BOB"), (3, "CID")]
    # the step's own SQL name works too when there is one input
    run = run_pipeline(registry, project, [
        extract("load-people", "people.csv"),
        process("count-them", ["load-people"], "SELECT COUNT(*) AS n FROM load_people"),
        write_db("write-db", "count-them", "counted", write_mode="replace"),
    ])
    assert_succeeded(run)
    assert query(project, "SELECT n FROM counted") == [(3,)]


def test_processor_no_input_df_with_two_inputs(registry: ComponentRegistry, project: Path) -> None:
    (project / "people.csv").write_text(PEOPLE, encoding="utf-8")
    (project / "orders.csv").write_text(ORDERS, encoding="utf-8")
    run = run_pipeline(registry, project, [
        extract("load-people", "people.csv"),
        extract("load-orders", "orders.csv"),
        process("bad", ["load-people", "load-orders"], "SELECT * FROM input_df"),
        write_db("write-db", "bad", "never"),
    ])
    error = failed_error(run, "bad")
    assert "SQL failed" in error
    assert "tables available: ['load_orders', 'load_people']" in error
    assert step(run, "write-db").status == "skipped"
    assert not (project / DB).exists()


def test_processor_sql_error_names_available_tables(registry: ComponentRegistry, project: Path) -> None:
    (project / "people.csv").write_text(PEOPLE, encoding="utf-8")
    run = run_pipeline(registry, project, [
        extract("load-people", "people.csv"),
        process("bad-sql", ["load-people"], "SELECT no_such_column FROM load_people"),
        write_db("write-db", "bad-sql", "never"),
    ])
    error = failed_error(run, "bad-sql")
    assert error.startswith("step 'bad-sql': SQL failed:")
    assert "no_such_column" in error
    assert "tables available: ['load_people', 'input_df']" in error
    assert step(run, "write-db").status == "skipped"
    assert run.exit_code == 1


def test_processor_unknown_table_error(tmp_path: Path) -> None:
    with pytest.raises(DriverError, match=r"tables available: \['a_b', 'input_df'\]") as info:
        process_direct("SELECT * FROM a-b", {"a_b": pa.table({"x": [1]})}, tmp_path)
    assert info.value.step_id == "proc"


def test_processor_sql_error_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(DriverError) as info:
        process_direct("SELECT nope FROM input_df", {"src": pa.table({"a": [1]})}, tmp_path)
    assert "\n" not in str(info.value)


def test_processor_output_columns_and_types(tmp_path: Path) -> None:
    source = pa.table({"a": [1, 2, 3], "label": ["x", "y", None]})
    result = process_direct("""
        SELECT a::INTEGER AS i, label AS s, a / 2 AS half, DATE '2024-01-02' + a::INTEGER AS day,
               a > 1 AS flag, (a * 1.25)::DECIMAL(10, 2) AS amount, a::BIGINT * 10000000000 AS big,
               TIMESTAMP '2024-01-02 03:04:05' AS ts
        FROM input_df ORDER BY a""", {"src": stream(source)}, tmp_path)
    assert result.schema.names == ["i", "s", "half", "day", "flag", "amount", "big", "ts"]
    assert [f.type for f in result.schema] == [
        pa.int32(), pa.string(), pa.float64(), pa.date32(), pa.bool_(), pa.decimal128(10, 2), pa.int64(),
        pa.timestamp("us")]
    assert result.to_pylist() == [
        {"i": 1, "s": "x", "half": 0.5, "day": dt.date(2024, 1, 3), "flag": False, "amount": Decimal("1.25"),
         "big": 10000000000, "ts": dt.datetime(2024, 1, 2, 3, 4, 5)},
        {"i": 2, "s": "y", "half": 1.0, "day": dt.date(2024, 1, 4), "flag": True, "amount": Decimal("2.50"),
         "big": 20000000000, "ts": dt.datetime(2024, 1, 2, 3, 4, 5)},
        {"i": 3, "s": None, "half": 1.5, "day": dt.date(2024, 1, 5), "flag": True, "amount": Decimal("3.75"),
         "big": 30000000000, "ts": dt.datetime(2024, 1, 2, 3, 4, 5)},
    ]


def test_processor_types_reach_the_table(registry: ComponentRegistry, project: Path) -> None:
    (project / "in.csv").write_text("n,price,name,ok,day\n1,2.5,a,true,2024-01-02\n", encoding="utf-8")
    run = run_pipeline(registry, project, [
        extract("read-in", "in.csv"),
        process("cast-them", ["read-in"], "SELECT n::SMALLINT AS n, price::DECIMAL(8, 3) AS price, name, ok, day, "
                                          "n::UTINYINT AS tiny FROM input_df"),
        write_db("write-db", "cast-them", "typed", write_mode="replace"),
    ])
    assert_succeeded(run)
    assert columns(project, "typed") == [
        ("n", "SMALLINT"), ("price", "DECIMAL(8,3)"), ("name", "VARCHAR"), ("ok", "BOOLEAN"), ("day", "DATE"),
        ("tiny", "UTINYINT")]
    assert query(project, "SELECT * FROM typed") == [(1, Decimal("2.500"), "a", True, dt.date(2024, 1, 2), 1)]


def test_processor_many_batches_and_no_inputs(registry: ComponentRegistry, project: Path) -> None:
    rows = 300_000  # more than one DuckDB record batch
    run = run_pipeline(registry, project, [
        process("generate", [], f"SELECT range AS n, range % 7 AS m FROM range({rows})"),
        write_db("write-db", "generate", "numbers", write_mode="replace"),
    ])
    assert_succeeded(run)
    assert query(project, "SELECT COUNT(*), SUM(n), COUNT(DISTINCT m) FROM numbers") == [
        (rows, rows * (rows - 1) // 2, 7)]
    assert step(run, "generate").rows_out == rows
    assert step(run, "write-db").rows_in == rows
    assert rows_written_metrics(run, "write-db") == [rows]


def test_processor_keeps_column_order_and_quoted_names(tmp_path: Path) -> None:
    source = pa.table({"a": [1], "m": [2], "z": [3]})
    result = process_direct('SELECT z, a, m, a + z AS "Sum Of", 1 AS "order" FROM input_df', {"t": source},
                            tmp_path)
    assert result.schema.names == ["z", "a", "m", "Sum Of", "order"]
    assert result.to_pylist() == [{"z": 3, "a": 1, "m": 2, "Sum Of": 4, "order": 1}]


def test_processor_reads_a_streamed_input_twice(registry: ComponentRegistry, project: Path) -> None:
    (project / "in.csv").write_text("n\n1\n2\n3\n4\n", encoding="utf-8")
    run = run_pipeline(registry, project, [
        extract("read-in", "in.csv"),
        process("above-avg", ["read-in"], "SELECT n FROM input_df WHERE n > (SELECT AVG(n) FROM input_df)"),
        write_db("write-db", "above-avg", "above", write_mode="replace"),
    ])
    assert_succeeded(run)
    assert query(project, "SELECT n FROM above ORDER BY n") == [(3,), (4,)]


# ------------------------------------------------------------------------------------ writer: modes


def test_append_twice_doubles_rows(registry: ComponentRegistry, project: Path) -> None:
    source = "id,name\n1,a\n2,b\n3,c\n"
    for expected in (3, 6):
        run = load_csv_into(registry, project, source, "items", write_mode="append")
        assert_succeeded(run)
        assert rows_written_metrics(run, "write-db") == [3]
        assert step(run, "write-db").rows_out == 3
        assert query(project, "SELECT COUNT(*) FROM items") == [(expected,)]
    assert query(project, "SELECT id, COUNT(*) FROM items GROUP BY id ORDER BY id") == [(1, 2), (2, 2), (3, 2)]


def test_append_is_the_default_mode(registry: ComponentRegistry, project: Path) -> None:
    assert_succeeded(load_csv_into(registry, project, "id\n1\n", "items"))
    assert_succeeded(load_csv_into(registry, project, "id\n2\n", "items"))
    assert query(project, "SELECT id FROM items ORDER BY id") == [(1,), (2,)]


def test_append_matches_columns_by_name(registry: ComponentRegistry, project: Path) -> None:
    create_table(project, "CREATE TABLE items (id BIGINT, name VARCHAR, extra VARCHAR DEFAULT 'd')")
    run = load_csv_into(registry, project, "name,id\nx,7\n", "items", write_mode="append")
    assert_succeeded(run)
    assert query(project, "SELECT * FROM items") == [(7, "x", "d")]


def test_replace_twice_leaves_only_new_rows(registry: ComponentRegistry, project: Path) -> None:
    assert_succeeded(load_csv_into(registry, project, "id,name\n1,a\n2,b\n3,c\n", "items", write_mode="replace"))
    assert_succeeded(load_csv_into(registry, project, "id,name\n4,d\n5,e\n6,f\n", "items", write_mode="replace"))
    assert query(project, "SELECT * FROM items ORDER BY id") == [(4, "d"), (5, "e"), (6, "f")]
    run = load_csv_into(registry, project, "id,name\n9,z\n", "items", write_mode="replace")
    assert_succeeded(run)
    assert query(project, "SELECT * FROM items ORDER BY id") == [(9, "z")]
    assert rows_written_metrics(run, "write-db") == [1]
    assert step(run, "write-db").rows_out == 1


def test_replace_takes_the_new_schema(registry: ComponentRegistry, project: Path) -> None:
    assert_succeeded(load_csv_into(registry, project, "id,name\n1,a\n", "items", write_mode="replace"))
    assert_succeeded(load_csv_into(registry, project, "code,score,flag\nx,1.5,true\n", "items",
                                   write_mode="replace", primary_key=["code"]))
    assert columns(project, "items") == [("code", "VARCHAR"), ("score", "DOUBLE"), ("flag", "BOOLEAN")]
    assert primary_key(project, "items") == ["code"]
    assert query(project, "SELECT * FROM items") == [("x", 1.5, True)]


def test_upsert_updates_and_inserts(registry: ComponentRegistry, project: Path) -> None:
    run = load_csv_into(registry, project, "id,name,score\n1,a,10\n2,b,20\n3,c,30\n", "items",
                        write_mode="upsert", primary_key=["id"])
    assert_succeeded(run)
    assert primary_key(project, "items") == ["id"]
    run = load_csv_into(registry, project, "id,name,score\n2,B,21\n3,C,31\n4,d,40\n", "items",
                        write_mode="upsert", primary_key=["id"])
    assert_succeeded(run)
    assert query(project, "SELECT * FROM items ORDER BY id") == [
        (1, "a", 10), (2, "B", 21), (3, "C", 31), (4, "d", 40)]
    assert rows_written_metrics(run, "write-db") == [3]
    assert step(run, "write-db").rows_out == 3


def test_upsert_composite_key(registry: ComponentRegistry, project: Path) -> None:
    key = ["region", "day"]
    first = "region,day,sales\neu,1,10\neu,2,20\nus,1,30\n"
    assert_succeeded(load_csv_into(registry, project, first, "sales", write_mode="upsert", primary_key=key))
    assert primary_key(project, "sales") == key
    second = "region,day,sales\neu,2,25\nus,2,40\nus,1,35\n"
    assert_succeeded(load_csv_into(registry, project, second, "sales", write_mode="upsert", primary_key=key))
    assert query(project, "SELECT * FROM sales ORDER BY region, day") == [
        ("eu", 1, 10), ("eu", 2, 25), ("us", 1, 35), ("us", 2, 40)]


def test_upsert_into_existing_table_with_key(registry: ComponentRegistry, project: Path) -> None:
    create_table(project, "CREATE TABLE items (id INTEGER PRIMARY KEY, name VARCHAR)",
                 "INSERT INTO items VALUES (1, 'old'), (2, 'keep')")
    run = load_csv_into(registry, project, "id,name\n1,new\n3,added\n", "items", write_mode="upsert",
                        primary_key=["id"], create_if_missing=False)
    assert_succeeded(run)
    assert query(project, "SELECT * FROM items ORDER BY id") == [(1, "new"), (2, "keep"), (3, "added")]
    assert columns(project, "items") == [("id", "INTEGER"), ("name", "VARCHAR")]


def test_upsert_without_primary_key_fails_cleanly(registry: ComponentRegistry, project: Path) -> None:
    with pytest.raises(CompileError, match='primary_key is required when write_mode is "upsert"'):
        load_csv_into(registry, project, "id\n1\n", "items", write_mode="upsert")  # refused before running
    assert not (project / DB).exists()
    config = DuckDBWriterConfig(path=str(project / DB), table="items", write_mode="upsert")
    with pytest.raises(DriverError, match="write_mode upsert needs primary_key") as info:  # the driver checks too
        DuckDBWriter().run(step_id="w", config=config, inputs={"src": pa.table({"id": [1]})},
                           ctx=Recorder().context(project))
    assert "set primary_key" in info.value.render() and "\n" not in info.value.render()
    assert not (project / DB).exists()


def test_upsert_into_table_without_key_fails_and_keeps_rows(registry: ComponentRegistry, project: Path) -> None:
    create_table(project, "CREATE TABLE items (id BIGINT, name VARCHAR)", "INSERT INTO items VALUES (1, 'a')")
    run = load_csv_into(registry, project, "id,name\n1,b\n", "items", write_mode="upsert", primary_key=["id"])
    error = failed_error(run, "write-db")
    assert "writing items in db/test.duckdb failed" in error
    assert query(project, "SELECT * FROM items") == [(1, "a")]


def test_upsert_honours_configured_primary_key(registry: ComponentRegistry, project: Path) -> None:
    create_table(project, "CREATE TABLE items (id BIGINT, version BIGINT, name VARCHAR, PRIMARY KEY (id, version))",
                 "INSERT INTO items VALUES (1, 1, 'a')")
    run = load_csv_into(registry, project, "id,version,name\n1,2,b\n", "items", write_mode="upsert",
                        primary_key=["id"])
    rows = query(project, "SELECT * FROM items ORDER BY ALL")
    # either a clean error (key mismatch) with the table untouched, or id=1 updated in place
    assert (run.card.status == "failed" and rows == [(1, 1, "a")]) or rows == [(1, 2, "b")]


def test_primary_key_column_missing_from_input(registry: ComponentRegistry, project: Path) -> None:
    run = load_csv_into(registry, project, "id,name\n1,a\n", "items", write_mode="upsert", primary_key=["ID", "nope"])
    error = failed_error(run, "write-db")
    assert "primary_key columns ['ID', 'nope'] are not in the input" in error
    assert "input columns: ['id', 'name']" in error


@pytest.mark.parametrize("mode", ["append", "upsert"])
def test_create_if_missing_false_on_missing_table(registry: ComponentRegistry, project: Path, mode: str) -> None:
    create_table(project, "CREATE TABLE other (x INTEGER)")
    run = load_csv_into(registry, project, "id\n1\n", "items", write_mode=mode, primary_key=["id"],
                        create_if_missing=False)
    error = failed_error(run, "write-db")
    assert "table items does not exist" in error
    assert "create_if_missing" in error
    assert rows_written_metrics(run, "write-db") == []
    assert query(project, "SELECT table_name FROM information_schema.tables ORDER BY 1") == [("other",)]


def test_create_if_missing_false_on_existing_table_appends(registry: ComponentRegistry, project: Path) -> None:
    create_table(project, "CREATE TABLE items (id BIGINT)", "INSERT INTO items VALUES (1)")
    run = load_csv_into(registry, project, "id\n2\n", "items", write_mode="append", create_if_missing=False)
    assert_succeeded(run)
    assert query(project, "SELECT id FROM items ORDER BY id") == [(1,), (2,)]


def test_schema_qualified_table(registry: ComponentRegistry, project: Path) -> None:
    assert_succeeded(load_csv_into(registry, project, "id,name\n1,a\n", "stage.things", write_mode="replace",
                                   primary_key=["id"]))
    assert_succeeded(load_csv_into(registry, project, "id,name\n2,b\n", "stage.things", write_mode="append"))
    assert_succeeded(load_csv_into(registry, project, "id,name\n1,A\n", "stage.things", write_mode="upsert",
                                   primary_key=["id"]))
    assert query(project, "SELECT * FROM stage.things ORDER BY id") == [(1, "A"), (2, "b")]
    assert query(project, "SELECT table_schema, table_name FROM information_schema.tables") == [("stage", "things")]
    assert primary_key(project, "things", schema="stage") == ["id"]
    # the same name unqualified is a different table, in main
    assert_succeeded(load_csv_into(registry, project, "id,name\n9,m\n", "things"))
    assert query(project, "SELECT * FROM main.things") == [(9, "m")]
    assert query(project, "SELECT COUNT(*) FROM stage.things") == [(2,)]


def test_schema_qualified_missing_table_with_create_if_missing_false(registry: ComponentRegistry,
                                                                    project: Path) -> None:
    create_table(project, "CREATE TABLE things (id BIGINT)")  # main.things must not satisfy stage.things
    run = load_csv_into(registry, project, "id\n1\n", "stage.things", create_if_missing=False)
    assert "table stage.things does not exist" in failed_error(run, "write-db")
    assert query(project, "SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name = 'stage'") == [(0,)]


# ------------------------------------------------------------------------------------ writer: atomicity


def test_replace_failing_on_duplicate_key_keeps_table(registry: ComponentRegistry, project: Path) -> None:
    assert_succeeded(load_csv_into(registry, project, "id,name\n1,a\n2,b\n", "items", write_mode="replace",
                                   primary_key=["id"]))
    before = query(project, "SELECT * FROM items ORDER BY id")
    schema_before = columns(project, "items")
    run = load_csv_into(registry, project, "id,name,extra\n3,c,x\n3,d,y\n", "items", write_mode="replace",
                        primary_key=["id"])
    error = failed_error(run, "write-db")
    assert "writing items in db/test.duckdb failed" in error
    assert "the table was left unchanged" in error
    assert rows_written_metrics(run, "write-db") == []
    assert query(project, "SELECT * FROM items ORDER BY id") == before == [(1, "a"), (2, "b")]
    assert columns(project, "items") == schema_before
    assert primary_key(project, "items") == ["id"]


def test_failed_replace_into_new_schema_creates_nothing(registry: ComponentRegistry, project: Path) -> None:
    create_table(project, "CREATE TABLE keep (x INTEGER)")
    run = load_csv_into(registry, project, "id\n1\n1\n", "fresh.items", write_mode="replace", primary_key=["id"])
    failed_error(run, "write-db")
    assert query(project, "SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name = 'fresh'") == [(0,)]
    assert query(project, "SELECT table_name FROM information_schema.tables") == [("keep",)]


def test_append_type_conflict_keeps_table(registry: ComponentRegistry, project: Path) -> None:
    assert_succeeded(load_csv_into(registry, project, "id,name\n1,a\n2,b\n", "items", write_mode="replace"))
    run = load_csv_into(registry, project, "id,name\n3,c\nnot-a-number,d\n", "items", write_mode="append")
    error = failed_error(run, "write-db")
    assert "not-a-number" in error
    assert query(project, "SELECT * FROM items ORDER BY id") == [(1, "a"), (2, "b")]


def test_upsert_type_conflict_keeps_table(registry: ComponentRegistry, project: Path) -> None:
    assert_succeeded(load_csv_into(registry, project, "id,score\n1,10\n2,20\n", "items", write_mode="upsert",
                                   primary_key=["id"]))
    run = load_csv_into(registry, project, "id,score\n1,11\n5,oops\n", "items", write_mode="upsert",
                        primary_key=["id"])
    failed_error(run, "write-db")
    assert query(project, "SELECT * FROM items ORDER BY id") == [(1, 10), (2, 20)]


def test_append_duplicate_key_keeps_table(registry: ComponentRegistry, project: Path) -> None:
    assert_succeeded(load_csv_into(registry, project, "id,name\n1,a\n", "items", write_mode="replace",
                                   primary_key=["id"]))
    run = load_csv_into(registry, project, "id,name\n2,b\n1,dup\n", "items", write_mode="append")
    assert "the table was left unchanged" in failed_error(run, "write-db")
    assert query(project, "SELECT * FROM items ORDER BY id") == [(1, "a")]


def test_append_never_drops_existing_rows_case_insensitive(registry: ComponentRegistry, project: Path) -> None:
    create_table(project, "CREATE TABLE events (id BIGINT, v VARCHAR)", "INSERT INTO events VALUES (1, 'keep')")
    run = load_csv_into(registry, project, "id,v\n2,new\n", "Events", write_mode="append")
    assert_succeeded(run)
    assert query(project, "SELECT * FROM events ORDER BY id") == [(1, "keep"), (2, "new")]


# ------------------------------------------------------------------------------------ writer: names, order


def test_reserved_and_mixed_case_names(registry: ComponentRegistry, project: Path) -> None:
    first = 'order,Select,MixedCase,"from"\n1,a,1.5,x\n2,b,2.5,y\n'
    assert_succeeded(load_csv_into(registry, project, first, "MixedTable", write_mode="upsert",
                                   primary_key=["order"]))
    assert columns(project, '"MixedTable"') == [
        ("order", "BIGINT"), ("Select", "VARCHAR"), ("MixedCase", "DOUBLE"), ("from", "VARCHAR")]
    assert query(project, "SELECT table_name FROM information_schema.tables") == [("MixedTable",)]
    assert primary_key(project, "MixedTable") == ["order"]
    second = 'MixedCase,order,"from",Select\n9.5,2,z,B\n3.5,3,w,c\n'
    run = load_csv_into(registry, project, second, "MixedTable", write_mode="upsert", primary_key=["order"])
    assert_succeeded(run)
    assert query(project, 'SELECT "order", "Select", "MixedCase", "from" FROM "MixedTable" ORDER BY "order"') == [
        (1, "a", 1.5, "x"), (2, "B", 9.5, "z"), (3, "c", 3.5, "w")]
    assert_succeeded(load_csv_into(registry, project, second, "MixedTable", write_mode="replace",
                                   primary_key=["order", "Select"]))
    assert primary_key(project, "MixedTable") == ["order", "Select"]
    assert query(project, 'SELECT COUNT(*) FROM "MixedTable"') == [(2,)]


def test_table_name_with_quote_and_space(registry: ComponentRegistry, project: Path) -> None:
    assert_succeeded(load_csv_into(registry, project, "id\n1\n", 'odd "name" here', write_mode="replace"))
    assert_succeeded(load_csv_into(registry, project, "id\n2\n", 'odd "name" here', write_mode="append"))
    assert query(project, 'SELECT id FROM "odd ""name"" here" ORDER BY id') == [(1,), (2,)]


def test_column_order_kept(registry: ComponentRegistry, project: Path) -> None:
    assert_succeeded(load_csv_into(registry, project, "z,a,m\n1,x,2.5\n", "ordered", write_mode="replace"))
    assert [name for name, _ in columns(project, "ordered")] == ["z", "a", "m"]
    assert query(project, "SELECT * FROM ordered") == [(1, "x", 2.5)]


def test_writer_from_processor_stream_replace(registry: ComponentRegistry, project: Path) -> None:
    (project / "people.csv").write_text(PEOPLE, encoding="utf-8")
    run = run_pipeline(registry, project, [
        extract("load-people", "people.csv"),
        process("rename", ["load-people"], "SELECT name AS m, id AS z FROM input_df ORDER BY id"),
        write_db("write-db", "rename", "people", write_mode="replace", primary_key=["z"]),
    ])
    assert_succeeded(run)
    assert columns(project, "people") == [("m", "VARCHAR"), ("z", "BIGINT")]
    assert query(project, "SELECT * FROM people ORDER BY z") == [("Ann", 1), ("Bob", 2), ("Cid", 3)]
    assert [step(run, s).rows_out for s in ("load-people", "rename", "write-db")] == [3, 3, 3]
    assert rows_written_metrics(run, "write-db") == [3]


def test_writer_direct_call_reports_metric_and_event(tmp_path: Path) -> None:
    recorder = Recorder()
    path = tmp_path / "sub" / "direct.duckdb"
    config = DuckDBWriterConfig(path=str(path), table="t", write_mode="append")
    outputs = DuckDBWriter().run(step_id="w", config=config, inputs={"src": stream(pa.table({"a": [1, 2]}))},
                                 ctx=recorder.context(tmp_path))
    assert outputs == {}
    assert recorder.metrics == [(ROWS_WRITTEN, 2, "rows")]
    assert recorder.events == [("output_written", {"target": f"duckdb://{path}#main.t", "rows": 2})]
    with pytest.raises(DriverError, match="needs exactly one input, got 2"):
        DuckDBWriter().run(step_id="w", config=config, inputs={"a": pa.table({"a": [1]}), "b": pa.table({"a": [1]})},
                           ctx=recorder.context(tmp_path))
    with duckdb.connect(str(path), read_only=True) as con:
        assert con.execute("SELECT a FROM t ORDER BY a").fetchall() == [(1,), (2,)]


def test_writer_empty_input_creates_typed_table(registry: ComponentRegistry, project: Path) -> None:
    (project / "in.csv").write_text("id,name\n1,a\n", encoding="utf-8")
    run = run_pipeline(registry, project, [
        extract("read-in", "in.csv"),
        process("none", ["read-in"], "SELECT * FROM input_df WHERE false"),
        write_db("write-db", "none", "empty", write_mode="replace"),
    ])
    assert_succeeded(run)
    assert columns(project, "empty") == [("id", "BIGINT"), ("name", "VARCHAR")]
    assert query(project, "SELECT COUNT(*) FROM empty") == [(0,)]
    assert rows_written_metrics(run, "write-db") == [0]
    assert step(run, "write-db").rows_out == 0


# ------------------------------------------------------------------------------------ the bundled example


def rounded(value: Fraction, digits: int) -> float:
    """SQL ROUND: half away from zero (Python's round() would round 131.25 to 131.2)."""
    exact = Decimal(value.numerator) / Decimal(value.denominator)
    return float(exact.quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP))


def exact_mean(values: list[int] | list[Fraction]) -> Fraction:
    return sum((Fraction(v) for v in values), Fraction(0)) / len(values)


def expected_director_stats(data: Path) -> dict[int, dict[str, Any]]:
    """The example's statistics, computed in plain Python from the CSV files."""
    with (data / "movies.csv").open(encoding="utf-8", newline="") as handle:
        movies = list(csv.DictReader(handle))
    with (data / "directors.csv").open(encoding="utf-8", newline="") as handle:
        names = {int(row["director_id"]): row["name"] for row in csv.DictReader(handle)}
    stats: dict[int, dict[str, Any]] = {}
    for director_id, name in names.items():
        own = [m for m in movies if int(m["director_id"]) == director_id]
        budgets = [int(m["budget_usd"]) for m in own if m["budget_usd"]]
        box = [int(m["box_office_usd"]) for m in own if m["box_office_usd"]]
        rois = [Fraction(int(m["box_office_usd"]), int(m["budget_usd"])) for m in own
                if m["box_office_usd"] and m["budget_usd"] and int(m["budget_usd"]) != 0]
        stats[director_id] = {
            "director_id": director_id,
            "director_name": name,
            "movie_count": len(own),
            "unique_genres": len({m["genre"] for m in own}),
            "avg_runtime_minutes": rounded(exact_mean([int(m["runtime_minutes"]) for m in own]), 1),
            "first_movie_year": min(int(m["release_year"]) for m in own),
            "latest_movie_year": max(int(m["release_year"]) for m in own),
            "avg_budget_usd": rounded(exact_mean(budgets), 2),
            "avg_box_office_usd": rounded(exact_mean(box), 2),
            "total_box_office_usd": sum(box),
            "avg_roi": rounded(exact_mean(rois), 2),
        }
    return stats


def test_movies_local_example(registry: ComponentRegistry, project: Path) -> None:
    shutil.copytree(REPO_ROOT / "examples", project / "examples")
    run = run_file(registry, project, project / "examples" / "movies_local.yaml")
    assert_succeeded(run)
    expected = expected_director_stats(project / "examples" / "data")
    assert len(expected) == 10

    with duckdb.connect(str(project / "output" / "osiris.duckdb"), read_only=True) as con:
        result = con.execute("SELECT * FROM director_stats ORDER BY director_id")
        names = [d[0] for d in result.description]
        db_rows = [dict(zip(names, row, strict=True)) for row in result.fetchall()]
    assert names == list(expected[1])
    assert primary_key(project, "director_stats", path="output/osiris.duckdb") == ["director_id"]
    assert len(db_rows) == 10

    # two directors checked field by field: Nolan (a zero and a missing budget, excluded from the ROI)
    # and Villeneuve (one very high ROI that dominates the average)
    by_id = {row["director_id"]: row for row in db_rows}
    for director_id in (1, 4):
        assert by_id[director_id] == expected[director_id]
    assert by_id[1]["movie_count"] == 7
    assert by_id[1]["total_box_office_usd"] == 2331249000
    assert by_id[4]["avg_roi"] == expected[4]["avg_roi"] > 30
    assert db_rows == [expected[i] for i in sorted(expected)]  # and the other eight as well

    with (project / "output" / "director_stats.csv").open(encoding="utf-8", newline="") as handle:
        csv_rows = list(csv.reader(handle))
    assert csv_rows[0] == names
    assert csv_rows[1:] == [["" if v is None else str(v) for v in row.values()] for row in db_rows]

    assert [step(run, s).rows_out for s in ("extract-movies", "extract-directors", "compute-director-stats",
                                            "write-director-stats-csv", "write-director-stats-duckdb")] == [
        46, 10, 10, 10, 10]
    assert rows_written_metrics(run, "write-director-stats-csv") == [10]
    assert rows_written_metrics(run, "write-director-stats-duckdb") == [10]

    # running it again (write_mode replace) leaves the same 10 rows, not 20
    assert_succeeded(run_file(registry, project, project / "examples" / "movies_local.yaml"))
    with duckdb.connect(str(project / "output" / "osiris.duckdb"), read_only=True) as con:
        assert con.execute("SELECT COUNT(*) FROM director_stats").fetchall() == [(10,)]
