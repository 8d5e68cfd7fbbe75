"""`filesystem.csv_extractor` and `filesystem.csv_writer`, driven through the real compiler and runner."""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Iterator, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from osiris_core.driver import MAIN_OUTPUT, ROWS_WRITTEN
from osiris_core.errors import CompileError, DriverError
from osiris_core.registry import ComponentRegistry
from osiris_core.runner import RunResult
from osiris_drivers.filesystem.csv_extractor.driver import BLOCK_SIZE, CsvExtractor, CsvExtractorConfig
from osiris_drivers.filesystem.csv_writer.driver import CsvWriter, CsvWriterConfig
from tests.support import runs
from tests.support.runs import Recorder, assert_succeeded, events, metrics, rows_written_metrics, step, write_csv
from tests.support.runs import extract_csv as extract

# --------------------------------------------------------------------------------------------- helpers


def run_pipeline(registry: ComponentRegistry, project: Path, steps: list[dict[str, Any]],
                 name: str = "csv-test") -> RunResult:
    return runs.run_pipeline(registry, project, steps, name)


def temp_leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


def copy_csv(registry: ComponentRegistry, project: Path, source: bytes, *,
             extract_config: Mapping[str, Any] | None = None,
             write_config: Mapping[str, Any] | None = None) -> bytes:
    """Run extract → write over `source`; return the bytes written (the run must succeed)."""
    (project / "in.csv").write_bytes(source)
    run = run_pipeline(registry, project, [
        extract("read-in", "in.csv", **dict(extract_config or {})),
        write_csv("write-out", "read-in", "out/out.csv", **dict(write_config or {})),
    ])
    assert_succeeded(run)
    return (project / "out" / "out.csv").read_bytes()


def read_direct(path: Path, **config: Any) -> pa.Table:
    """Call the extractor as the runner does and read its stream to the end."""
    recorder = Recorder()
    outputs = CsvExtractor().run(step_id="read", config=CsvExtractorConfig(path=str(path), **config), inputs={},
                                 ctx=recorder.context(path.parent))
    data = outputs[MAIN_OUTPUT]
    assert isinstance(data, pa.RecordBatchReader)
    table = data.read_all()
    assert recorder.events == [("source_opened", {"target": path.absolute().as_uri(), "columns": table.schema.names})]
    return table


def write_direct(table: pa.Table | pa.RecordBatchReader, path: Path, **config: Any) -> Recorder:
    recorder = Recorder()
    outputs = CsvWriter().run(step_id="write", config=CsvWriterConfig(path=str(path), **config),
                              inputs={"src": table}, ctx=recorder.context(path.parent))
    assert outputs == {}
    return recorder


@pytest.fixture
def _umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


# ------------------------------------------------------------------------------------ extractor options


@pytest.mark.parametrize(("delimiter", "source"), [
    (";", b"id;label;score\n1;x,y;2.5\n2;plain;3\n"),
    ("\t", b"id\tlabel\tscore\n1\tx,y\t2.5\n2\tplain\t3\n"),
    ("|", b"id|label|score\n1|x,y|2.5\n2|plain|3\n"),
])
def test_extractor_delimiter(registry: ComponentRegistry, project: Path, delimiter: str, source: bytes) -> None:
    out = copy_csv(registry, project, source, extract_config={"delimiter": delimiter})
    assert out == b'id,label,score\n1,"x,y",2.5\n2,plain,3.0\n'


def test_extractor_wrong_delimiter_yields_one_column(project: Path) -> None:
    path = project / "semi.csv"
    path.write_bytes(b"a;b\n1;2\n")
    table = read_direct(path)
    assert table.schema.names == ["a;b"]
    assert read_direct(path, delimiter=";").to_pylist() == [{"a": 1, "b": 2}]


def test_extractor_header_false_with_column_names(registry: ComponentRegistry, project: Path) -> None:
    out = copy_csv(registry, project, b"1,alpha\n2,beta\n3,gamma\n",
                   extract_config={"header": False, "column_names": ["num", "word"]})
    assert out == b"num,word\n1,alpha\n2,beta\n3,gamma\n"  # the first data row is not eaten as a header
    table = read_direct(project / "in.csv", header=False, column_names=["num", "word"])
    assert table.schema.field("num").type == pa.int64()
    assert table.column("num").to_pylist() == [1, 2, 3]


def test_extractor_header_true_with_column_names_replaces_header(registry: ComponentRegistry,
                                                                 project: Path) -> None:
    out = copy_csv(registry, project, b"p,q\n1,2\n3,4\n", extract_config={"column_names": ["x", "y"]})
    assert out == b"x,y\n1,2\n3,4\n"


def test_extractor_header_false_without_column_names_fails_cleanly(registry: ComponentRegistry,
                                                                   project: Path) -> None:
    (project / "in.csv").write_bytes(b"1,2\n")
    with pytest.raises(CompileError, match="column_names is required when header is false") as info:
        run_pipeline(registry, project, [
            extract("read-in", "in.csv", header=False),
            write_csv("write-out", "read-in", "out.csv"),
        ])
    assert str(info.value.location).endswith("csv-test.yaml:11:9")  # the step's `header` key
    assert info.value.hint == "set column_names, or header: true"
    assert not (project / "out.csv").exists()
    with pytest.raises(DriverError, match="header is false but no column_names"):  # the driver checks it too
        read_direct(project / "in.csv", header=False)


def test_extractor_column_names_count_mismatch_fails_cleanly(registry: ComponentRegistry, project: Path) -> None:
    (project / "in.csv").write_bytes(b"1,2\n3,4\n")
    run = run_pipeline(registry, project, [
        extract("read-in", "in.csv", header=False, column_names=["a", "b", "c"]),
        write_csv("write-out", "read-in", "out.csv"),
    ])
    card = step(run, "read-in")
    assert card.status == "failed"
    assert card.error is not None
    assert "cannot parse in.csv" in card.error
    assert "Expected 3 columns, got 2" in card.error
    assert step(run, "write-out").status == "skipped"


def test_extractor_encoding_latin1(registry: ComponentRegistry, project: Path) -> None:
    source = "name,city\nJosé,Zürich\nRenée,Orléans\n".encode("latin-1")
    assert b"\xe9" in source
    out = copy_csv(registry, project, source, extract_config={"encoding": "latin-1"})
    assert out.decode("utf-8") == "name,city\nJosé,Zürich\nRenée,Orléans\n"


def test_extractor_encoding_utf16(registry: ComponentRegistry, project: Path) -> None:
    source = "naïve,n\ncafé,1\nthé,2\n".encode("utf-16")
    out = copy_csv(registry, project, source, extract_config={"encoding": "utf-16"})
    assert out.decode("utf-8") == "naïve,n\ncafé,1\nthé,2\n"


@pytest.mark.parametrize("target", ["read-in", "write-out"])
def test_unknown_encoding_is_a_compile_error(registry: ComponentRegistry, project: Path, target: str) -> None:
    """The driver config's own checks run at compile time: nothing is read or written."""
    (project / "in.csv").write_bytes(b"a\n1\n")
    bad = {"encoding": "no-such-codec"}
    with pytest.raises(CompileError) as info:
        run_pipeline(registry, project, [
            extract("read-in", "in.csv", **(bad if target == "read-in" else {})),
            write_csv("write-out", "read-in", "out.csv", **(bad if target == "write-out" else {})),
        ])
    assert info.value.message == f"invalid config for step '{target}' at encoding: unknown encoding 'no-such-codec'"
    assert info.value.location is not None and info.value.location.column == 21  # the encoding's value
    assert not (project / "out.csv").exists() and not list((project / "logs").glob("run_*"))


def test_extractor_wrong_encoding_is_an_error_not_hex(registry: ComponentRegistry, project: Path) -> None:
    (project / "in.csv").write_bytes("name\nJosé\n".encode("latin-1"))
    run = run_pipeline(registry, project, [
        extract("read-in", "in.csv"),
        write_csv("write-out", "read-in", "out.csv"),
    ])
    written = (project / "out.csv").read_bytes() if (project / "out.csv").exists() else b""
    assert b"4a6f73e9" not in written  # 'José' must never silently become hex
    assert step(run, "read-in").status == "failed"


def test_extractor_quotechar(registry: ComponentRegistry, project: Path) -> None:
    source = b"id,label\n1,'x,y'\n2,'it''s'\n"
    out = copy_csv(registry, project, source, extract_config={"quotechar": "'"})
    assert out == b"id,label\n1,\"x,y\"\n2,it's\n"
    # with the default quotechar the single quotes are data and the comma splits the field
    with pytest.raises(DriverError, match="Expected 2 columns, got 3"):
        read_direct(project / "in.csv")


def test_extractor_quoting_minimal_reads_quoted_delimiter(project: Path) -> None:
    path = project / "q.csv"
    path.write_bytes(b'id,label\n1,"x,y"\n2,"say ""hi"""\n')
    assert read_direct(path).column("label").to_pylist() == ["x,y", 'say "hi"']


def test_extractor_quoting_none_treats_quotes_as_data(registry: ComponentRegistry, project: Path) -> None:
    path = project / "q.csv"
    path.write_bytes(b'id,label\n1,"hi"\n2,5"\n')
    assert read_direct(path, quoting="none").column("label").to_pylist() == ['"hi"', '5"']
    assert read_direct(path).column("label").to_pylist()[0] == "hi"
    # a quoted field holding the delimiter splits into two fields when quoting is none: a clean failed step
    (project / "in.csv").write_bytes(b'id,label\n1,"x,y"\n')
    run = run_pipeline(registry, project, [
        extract("read-in", "in.csv", quoting="none"),
        write_csv("write-out", "read-in", "out.csv"),
    ])
    card = step(run, "read-in")
    assert card.status == "failed"
    assert card.error is not None
    assert "Expected 2 columns, got 3" in card.error
    assert "\n" not in card.error


def test_extractor_newlines_in_values_small_file(registry: ComponentRegistry, project: Path) -> None:
    source = b'id,note\n1,"first\nsecond"\n2,plain\n'
    out = copy_csv(registry, project, source, extract_config={"newlines_in_values": True})
    assert out == source


def test_extractor_newlines_in_values_across_read_blocks(project: Path) -> None:
    """A quoted multi-line value straddling the first read block: only newlines_in_values reads it right."""
    row = b'1,"' + b"x" * 1000 + b'"\n'
    filler_rows = BLOCK_SIZE // len(row)
    multi_line = "line\n" * 2000 + "end"
    content = (b"id,text\n" + row * filler_rows + b'2,"' + multi_line.encode() + b'"\n' + b"3,tail\n")
    assert len(content) > BLOCK_SIZE
    path = project / "big.csv"
    path.write_bytes(content)
    table = read_direct(path, newlines_in_values=True)
    assert table.num_rows == filler_rows + 2
    assert table.column("text")[filler_rows].as_py() == multi_line
    assert table.column("id").to_pylist()[-2:] == [2, 3]
    with pytest.raises(DriverError, match=f"cannot parse {path}: CSV parse error"):
        read_direct(path, newlines_in_values=False)


def test_extractor_null_values(registry: ComponentRegistry, project: Path) -> None:
    path = project / "n.csv"
    path.write_bytes(b"a,b,c\nNA,,x\n1,2,NA\n")
    custom = read_direct(path, null_values=["NA"])
    assert custom.to_pylist() == [{"a": None, "b": "", "c": "x"}, {"a": 1, "b": "2", "c": None}]
    default = read_direct(path)
    assert default.to_pylist() == [{"a": "NA", "b": None, "c": "x"}, {"a": "1", "b": 2, "c": "NA"}]
    # end to end, with the writer's null_value marking the nulls
    out = copy_csv(registry, project, b"a,b\nNA,x\n-,y\n3,\n", extract_config={"null_values": ["NA", "-"]},
                   write_config={"null_value": "<null>"})
    assert out == b'a,b\n<null>,x\n<null>,y\n3,""\n'  # "" is no null value here: an empty string, kept quoted


def test_extractor_missing_file_fails_and_skips_the_rest(registry: ComponentRegistry, project: Path) -> None:
    run = run_pipeline(registry, project, [
        extract("read-in", "data/missing.csv"),
        write_csv("write-out", "read-in", "out.csv"),
        write_csv("write-again", "read-in", "again.csv"),
    ])
    assert run.card.status == "failed"
    assert run.exit_code == 1
    card = step(run, "read-in")
    assert card.status == "failed"
    assert card.error_type == "DriverError"
    assert card.error is not None
    assert "\n" not in card.error
    assert card.error.startswith("step 'read-in': CSV file not found: data/missing.csv")
    assert [step(run, s).status for s in ("write-out", "write-again")] == ["skipped", "skipped"]
    assert run.card.error is not None
    assert "data/missing.csv" in run.card.error
    assert not (project / "out.csv").exists()
    assert not (project / "again.csv").exists()
    names = [e["event"] for e in events(run)]
    assert names.count("step_failed") == 1
    assert names.count("step_skipped") == 2


def test_extractor_directory_path_is_not_a_file(registry: ComponentRegistry, project: Path) -> None:
    (project / "somedir").mkdir()
    run = run_pipeline(registry, project, [
        extract("read-in", "somedir"),
        write_csv("write-out", "read-in", "out.csv"),
    ])
    assert step(run, "read-in").status == "failed"
    assert step(run, "write-out").status == "skipped"


def test_extractor_infers_types(project: Path) -> None:
    path = project / "t.csv"
    path.write_bytes(b"i,f,s,b,d\n1,1.5,x,true,2024-01-02\n2,,y,false,2024-02-03\n")
    table = read_direct(path)
    assert [f.type for f in table.schema] == [pa.int64(), pa.float64(), pa.string(), pa.bool_(), pa.date32()]
    assert table.column("f").to_pylist() == [1.5, None]


def test_extractor_rejects_unknown_config_key_at_compile(registry: ComponentRegistry, project: Path) -> None:
    with pytest.raises(CompileError, match="unknown config key 'delim'"):
        run_pipeline(registry, project, [extract("read-in", "in.csv", delim=";")])


# ------------------------------------------------------------------------------------ writer options

SIMPLE = b"id,name,score\n1,Alice,3.5\n2,Bob,4.25\n"


@pytest.mark.parametrize(("delimiter", "expected"), [
    (";", b"id;name;score\n1;Alice;3.5\n2;Bob;4.25\n"),
    ("\t", b"id\tname\tscore\n1\tAlice\t3.5\n2\tBob\t4.25\n"),
    ("|", b"id|name|score\n1|Alice|3.5\n2|Bob|4.25\n"),
])
def test_writer_delimiter(registry: ComponentRegistry, project: Path, delimiter: str, expected: bytes) -> None:
    assert copy_csv(registry, project, SIMPLE, write_config={"delimiter": delimiter}) == expected


def test_writer_delimiter_quotes_values_containing_it(registry: ComponentRegistry, project: Path) -> None:
    out = copy_csv(registry, project, b"a,b\n1,x;y\n2,x|y\n", write_config={"delimiter": ";"})
    assert out == b'a;b\n1;"x;y"\n2;x|y\n'


def test_writer_header_false(registry: ComponentRegistry, project: Path) -> None:
    assert copy_csv(registry, project, SIMPLE, write_config={"header": False}) == b"1,Alice,3.5\n2,Bob,4.25\n"


def test_writer_header_false_empty_input_writes_empty_file(project: Path) -> None:
    target = project / "empty.csv"
    recorder = write_direct(pa.table({"a": pa.array([], pa.int64())}), target, header=False)
    assert target.read_bytes() == b""
    assert recorder.metrics == [(ROWS_WRITTEN, 0, "rows")]
    write_direct(pa.table({"a": pa.array([], pa.int64())}), target)
    assert target.read_bytes() == b"a\n"


def test_writer_encoding_latin1(registry: ComponentRegistry, project: Path) -> None:
    out = copy_csv(registry, project, "name\nJosé\n".encode(), write_config={"encoding": "latin-1"})
    assert out == b"name\nJos\xe9\n"
    assert b"\xc3\xa9" not in out


def test_writer_encoding_utf16(registry: ComponentRegistry, project: Path) -> None:
    out = copy_csv(registry, project, "name\nJosé\n".encode(), write_config={"encoding": "utf-16"})
    assert out == "name\nJosé\n".encode("utf-16")


def test_writer_unencodable_value_fails_cleanly(registry: ComponentRegistry, project: Path) -> None:
    (project / "in.csv").write_bytes("name\nJosé\n".encode())
    (project / "out").mkdir()
    (project / "out" / "out.csv").write_bytes(b"previous\n")
    run = run_pipeline(registry, project, [
        extract("read-in", "in.csv"),
        write_csv("write-out", "read-in", "out/out.csv", encoding="ascii"),
    ])
    card = step(run, "write-out")
    assert card.status == "failed"
    assert card.error_type == "DriverError"
    assert card.error is not None
    assert "cannot write out/out.csv" in card.error
    assert "\n" not in card.error
    assert (project / "out" / "out.csv").read_bytes() == b"previous\n"
    assert temp_leftovers(project / "out") == []


@pytest.mark.parametrize(("newline", "expected"), [
    ("\r\n", b"id,name,score\r\n1,Alice,3.5\r\n2,Bob,4.25\r\n"),
    ("\r", b"id,name,score\r1,Alice,3.5\r2,Bob,4.25\r"),
    ("\n", b"id,name,score\n1,Alice,3.5\n2,Bob,4.25\n"),
])
def test_writer_newline_raw_bytes(registry: ComponentRegistry, project: Path, newline: str,
                                  expected: bytes) -> None:
    assert copy_csv(registry, project, SIMPLE, write_config={"newline": newline}) == expected


def test_writer_newline_crlf_with_multiline_value_is_not_translated(project: Path) -> None:
    target = project / "ml.csv"
    write_direct(pa.table({"note": ["a\nb", "c"]}), target, newline="\r\n")
    assert target.read_bytes() == b'note\r\n"a\nb"\r\nc\r\n'


QUOTING_SOURCE = b'id,label,score\n1,plain,2.5\n2,"x,y",3.0\n3,"say ""hi""",\n'


@pytest.mark.parametrize(("quoting", "expected"), [
    ("minimal", b'id,label,score\n1,plain,2.5\n2,"x,y",3.0\n3,"say ""hi""",\n'),
    ("all", b'"id","label","score"\n"1","plain","2.5"\n"2","x,y","3.0"\n"3","say ""hi""",""\n'),
    ("nonnumeric", b'"id","label","score"\n1,"plain",2.5\n2,"x,y",3.0\n3,"say ""hi""",""\n'),
])
def test_writer_quoting(registry: ComponentRegistry, project: Path, quoting: str, expected: bytes) -> None:
    assert copy_csv(registry, project, QUOTING_SOURCE, write_config={"quoting": quoting}) == expected


def test_writer_quoting_none_plain_values(registry: ComponentRegistry, project: Path) -> None:
    assert copy_csv(registry, project, SIMPLE, write_config={"quoting": "none"}) == SIMPLE


def test_writer_quoting_none_with_delimiter_in_value_fails_cleanly(registry: ComponentRegistry,
                                                                   project: Path) -> None:
    (project / "in.csv").write_bytes(b'id,label\n1,ok\n2,"x,y"\n')
    (project / "out").mkdir()
    target = project / "out" / "out.csv"
    target.write_bytes(b"untouched,content\n")
    before = target.stat().st_mtime_ns
    run = run_pipeline(registry, project, [
        extract("read-in", "in.csv"),
        write_csv("write-out", "read-in", "out/out.csv", quoting="none"),
        write_csv("write-after", "write-out", "out/after.csv"),
    ])
    assert run.card.status == "failed"
    card = step(run, "write-out")
    assert card.status == "failed"
    assert card.error_type == "DriverError"
    assert card.error is not None
    assert "\n" not in card.error
    assert "Traceback" not in card.error
    assert card.error.startswith("step 'write-out': cannot write out/out.csv: need to escape")
    assert "choose another quoting" in card.error
    assert target.read_bytes() == b"untouched,content\n"
    assert target.stat().st_mtime_ns == before
    assert temp_leftovers(project / "out") == []
    assert step(run, "write-after").status == "skipped"
    assert rows_written_metrics(run, "write-out") == []


def test_writer_quoting_none_failure_leaves_no_new_file(registry: ComponentRegistry, project: Path) -> None:
    (project / "in.csv").write_bytes(b'id,label\n1,ok\n2,"x,y"\n')
    run = run_pipeline(registry, project, [
        extract("read-in", "in.csv"),
        write_csv("write-out", "read-in", "fresh/out.csv", quoting="none"),
    ])
    assert step(run, "write-out").status == "failed"
    assert not (project / "fresh" / "out.csv").exists()
    assert temp_leftovers(project / "fresh") == []


def test_writer_quotechar(registry: ComponentRegistry, project: Path) -> None:
    out = copy_csv(registry, project, b"id,label\n1,\"x,y\"\n2,it's\n3,plain\n", write_config={"quotechar": "'"})
    assert out == b"id,label\n1,'x,y'\n2,'it''s'\n3,plain\n"


def test_writer_quotechar_with_quoting_all(registry: ComponentRegistry, project: Path) -> None:
    out = copy_csv(registry, project, b"a,b\n1,x\n", write_config={"quotechar": "'", "quoting": "all"})
    assert out == b"'a','b'\n'1','x'\n"


def test_writer_null_value(registry: ComponentRegistry, project: Path) -> None:
    out = copy_csv(registry, project, b"a,b,c\n1,,x\n,2.5,\n", write_config={"null_value": "NULL"})
    assert out == b"a,b,c\n1,NULL,x\nNULL,2.5,NULL\n"


def test_writer_null_value_default_is_empty(project: Path) -> None:
    target = project / "n.csv"
    write_direct(pa.table({"a": [1, None], "b": [None, "x"]}), target)
    assert target.read_bytes() == b"a,b\n1,\n,x\n"


def test_writer_all_options_together(registry: ComponentRegistry, project: Path) -> None:
    out = copy_csv(registry, project, "id,name,note\n1,José,\n2,Zoë,a;b\n".encode(), write_config={
        "delimiter": ";", "header": False, "encoding": "latin-1", "newline": "\r\n", "quotechar": "'",
        "quoting": "minimal", "null_value": "-",
    })
    assert out == b"1;Jos\xe9;-\r\n2;Zo\xeb;'a;b'\r\n"


def test_writer_cell_formatting(project: Path) -> None:
    target = project / "types.csv"
    table = pa.table({
        "flag": [True, False],
        "day": [dt.date(2024, 1, 2), dt.date(1999, 12, 31)],
        "moment": [dt.datetime(2024, 1, 2, 3, 4, 5), dt.datetime(2024, 1, 2, 3, 4, 5, 600000)],
        "amount": pa.array([Decimal("1.50"), Decimal("-2.00")], pa.decimal128(10, 2)),
        "blob": [b"\x00\xff", b"ab"],
        "big": [2**62, -1],
    })
    write_direct(table, target)
    assert target.read_text(encoding="utf-8") == (
        "flag,day,moment,amount,blob,big\n"
        "true,2024-01-02,2024-01-02 03:04:05,1.50,00ff,4611686018427387904\n"
        "false,1999-12-31,2024-01-02 03:04:05.600000,-2.00,6162,-1\n"
    )


# ------------------------------------------------------------------------------------ writer behaviour


def test_writer_keeps_column_order(registry: ComponentRegistry, project: Path) -> None:
    out = copy_csv(registry, project, b"z,a,m\n1,2,3\n4,5,6\n")
    assert out == b"z,a,m\n1,2,3\n4,5,6\n"
    target = project / "direct.csv"
    write_direct(pa.table({"z": [1], "a": ["x"], "m": [2.5]}), target)
    assert target.read_bytes() == b"z,a,m\n1,x,2.5\n"


def test_round_trip_is_byte_identical(registry: ComponentRegistry, project: Path) -> None:
    source = b'id,name,city,score,active\n1,Alice,"Paris, FR",3.5,true\n2,Bob,,4.25,false\n3,"Eve ""E""",Oslo,,true\n'
    assert copy_csv(registry, project, source) == source


def test_round_trip_with_options_is_byte_identical(registry: ComponentRegistry, project: Path) -> None:
    dialect = {"delimiter": ";", "quotechar": "'", "encoding": "latin-1"}
    source = "id;name;note\n1;José;'a;b'\n2;Zoë;plain\n".encode("latin-1")
    assert copy_csv(registry, project, source, extract_config=dialect,
                    write_config={**dialect, "newline": "\n"}) == source


def test_rows_written_metric_and_run_card(registry: ComponentRegistry, project: Path) -> None:
    rows = 1234
    source = "id,value\n" + "".join(f"{i},{i * 2}\n" for i in range(rows))
    (project / "in.csv").write_text(source, encoding="utf-8")
    run = run_pipeline(registry, project, [
        extract("read-in", "in.csv"),
        write_csv("write-out", "read-in", "out.csv"),
    ])
    assert_succeeded(run)
    assert len((project / "out.csv").read_text(encoding="utf-8").splitlines()) == rows + 1
    assert rows_written_metrics(run, "write-out") == [rows]
    units = [m.get("unit") for m in metrics(run) if m["metric"] == ROWS_WRITTEN]
    assert units == ["rows"]
    assert step(run, "write-out").rows_out == rows
    assert step(run, "write-out").rows_in == rows
    assert step(run, "read-in").rows_out == rows
    written = [e for e in events(run) if e["event"] == "output_written"]
    assert written == [{**written[0], "step_id": "write-out", "target": (project / "out.csv").as_uri(), "rows": rows}]


def test_rows_written_with_two_writers_of_one_source(registry: ComponentRegistry, project: Path) -> None:
    (project / "in.csv").write_bytes(SIMPLE)
    run = run_pipeline(registry, project, [
        extract("read-in", "in.csv"),
        write_csv("write-a", "read-in", "a.csv"),
        write_csv("write-b", "read-in", "b.csv", header=False),
    ])
    assert_succeeded(run)
    assert (project / "a.csv").read_bytes() == SIMPLE
    assert (project / "b.csv").read_bytes() == b"1,Alice,3.5\n2,Bob,4.25\n"
    assert rows_written_metrics(run, "write-a") == [2]
    assert rows_written_metrics(run, "write-b") == [2]
    assert [step(run, s).rows_out for s in ("read-in", "write-a", "write-b")] == [2, 2, 2]


def test_writer_replaces_existing_file_and_creates_parents(registry: ComponentRegistry, project: Path) -> None:
    target = project / "deep" / "er" / "out.csv"
    target.parent.mkdir(parents=True)
    target.write_bytes(b"old,content,that,is,longer\n" * 100)
    (project / "in.csv").write_bytes(SIMPLE)
    run = run_pipeline(registry, project, [
        extract("read-in", "in.csv"),
        write_csv("write-out", "read-in", "deep/er/out.csv"),
    ])
    assert_succeeded(run)
    assert target.read_bytes() == SIMPLE
    assert temp_leftovers(target.parent) == []
    run = run_pipeline(registry, project, [
        extract("read-in", "in.csv"),
        write_csv("write-out", "read-in", "new/dir/out.csv"),
    ])
    assert_succeeded(run)
    assert (project / "new" / "dir" / "out.csv").read_bytes() == SIMPLE


def test_writer_streams_batches(project: Path) -> None:
    schema = pa.schema([("n", pa.int64())])
    batches = [pa.record_batch([pa.array(range(i * 10, i * 10 + 10))], schema=schema) for i in range(5)]
    target = project / "stream.csv"
    recorder = write_direct(pa.RecordBatchReader.from_batches(schema, iter(batches)), target)
    assert target.read_text(encoding="utf-8") == "n\n" + "".join(f"{i}\n" for i in range(50))
    assert recorder.metrics == [(ROWS_WRITTEN, 50, "rows")]
    assert recorder.events == [("output_written", {"target": target.as_uri(), "rows": 50})]


def test_writer_needs_exactly_one_input(project: Path) -> None:
    config = CsvWriterConfig(path=str(project / "x.csv"))
    ctx = Recorder().context(project)
    table = pa.table({"a": [1]})
    with pytest.raises(DriverError, match="needs exactly one input, got 2"):
        CsvWriter().run(step_id="w", config=config, inputs={"a": table, "b": table}, ctx=ctx)
    with pytest.raises(DriverError, match="needs exactly one input, got 0"):
        CsvWriter().run(step_id="w", config=config, inputs={}, ctx=ctx)
    assert not (project / "x.csv").exists()


@pytest.mark.usefixtures("_umask_022")
def test_writer_output_respects_umask(project: Path) -> None:
    target = project / "perm.csv"
    write_direct(pa.table({"a": [1]}), target)
    assert target.stat().st_mode & 0o777 == 0o644


def test_nanosecond_timestamps_are_written_exactly(registry: ComponentRegistry, project: Path) -> None:
    (project / "ns.csv").write_text("id,seen\n1,2024-01-01 12:00:00.123456789\n")
    run = run_pipeline(registry, project, [
        extract("read", "ns.csv", null_values=[""]),
        {"id": "ns", "component": "duckdb.processor", "mode": "transform", "needs": ["read"],
         "config": {"query": "SELECT id, CAST(seen AS TIMESTAMP_NS) AS seen FROM input_df"}},
        write_csv("write", "ns", "out/ns.csv")])
    assert_succeeded(run)
    assert (project / "out/ns.csv").read_text() == "id,seen\n1,2024-01-01 12:00:00.123456789\n"


# ------------------------------------------------------------------ declared types, NULL rule, decimal comma


def test_numbers_with_leading_zeros_stay_text(project: Path) -> None:
    """Before: `"01234"` was read as the integer 1234."""
    path = project / "codes.csv"
    path.write_bytes(b'zip,n,price,ref\n"01234",5,007.50,0\n00501,-6,0.5,10\n')
    table = read_direct(path)
    assert [f.type for f in table.schema] == [pa.string(), pa.int64(), pa.string(), pa.int64()]
    assert table.to_pylist() == [{"zip": "01234", "n": 5, "price": "007.50", "ref": 0},
                                 {"zip": "00501", "n": -6, "price": "0.5", "ref": 10}]
    assert read_direct(path, column_types={"zip": "int32"}).column("zip").to_pylist() == [1234, 501]  # asked for


def test_declared_column_types(project: Path) -> None:
    """Before: no way to declare a type; money became float64."""
    path = project / "typed.csv"
    path.write_bytes(b"s,i8,u16,f32,money,big,flag,day,at,at_tz,clock,rest\n"
                     b"007,-5,65535,1.5,12.50,1234567890123456789012345678901234567.8,true,2024-02-29,"
                     b"2024-01-02 03:04:05,2024-01-02T03:04:05+01:00,10:11:12,x\n"
                     b",,,,,,,,,,,\n")
    table = read_direct(path, column_types={
        "s": "string", "i8": "int8", "u16": "uint16", "f32": "float32", "money": "decimal(12,2)",
        "big": "decimal( 38 , 1 )", "flag": "bool", "day": "date", "at": "timestamp", "at_tz": "timestamptz",
        "clock": "time"})
    assert [f.type for f in table.schema] == [
        pa.string(), pa.int8(), pa.uint16(), pa.float32(), pa.decimal128(12, 2), pa.decimal128(38, 1), pa.bool_(),
        pa.date32(), pa.timestamp("us"), pa.timestamp("us", tz="UTC"), pa.time64("us"), pa.string()]
    first, empty = table.to_pylist()
    assert first["s"] == "007" and first["money"] == Decimal("12.50") and first["day"] == dt.date(2024, 2, 29)
    assert first["big"] == Decimal("1234567890123456789012345678901234567.8")
    assert first["at_tz"] == dt.datetime(2024, 1, 2, 2, 4, 5, tzinfo=dt.UTC)
    assert first["clock"] == dt.time(10, 11, 12) and first["u16"] == 65535
    assert all(value is None for value in empty.values())


@pytest.mark.parametrize(("column_types", "message"), [
    ({"n": "integer"}, "does not match"),
    ({"n": "decimal(5,7)"}, "decimal(5,7): precision must be 1 to 38 and scale at most the precision"),
    ({"n": "decimal(39,0)"}, "precision must be 1 to 38"),
])
def test_a_bad_column_type_is_a_compile_error(registry: ComponentRegistry, project: Path,
                                              column_types: dict[str, str], message: str) -> None:
    with pytest.raises(CompileError, match=re.escape(message)) as info:
        run_pipeline(registry, project, [extract("read", "in.csv", column_types=column_types)])
    assert info.value.location is not None and info.value.location.line is not None


def test_a_value_that_does_not_fit_its_type_names_the_file(registry: ComponentRegistry, project: Path) -> None:
    (project / "in.csv").write_bytes(b"n,money\n1,1.25\n300,1.005\n")
    for column_types, problem in (({"n": "int8"}, "invalid value '300'"),
                                  ({"money": "decimal(5,2)"}, "Rescaling Decimal value would cause data loss")):
        run = run_pipeline(registry, project, [extract("read", "in.csv", column_types=column_types),
                                               write_csv("write", "read", "out.csv")])
        error = runs.failed_error(run, "read")
        assert error.startswith("step 'read': cannot parse in.csv:") and problem in error
        assert not (project / "out.csv").exists()
    with pytest.raises(DriverError, match=r"column_types names \['nope'\], not columns of .*in.csv"):
        read_direct(project / "in.csv", column_types={"nope": "int8"})


def test_decimal_comma(project: Path) -> None:
    path = project / "de.csv"
    path.write_bytes(b"label;amount;share\nx;1234,50;0,25\ny;-0,05;1\n")
    inferred = read_direct(path, delimiter=";", decimal_separator=",")
    assert inferred.column("share").to_pylist() == [0.25, 1.0]
    exact = read_direct(path, delimiter=";", decimal_separator=",", column_types={"amount": "decimal(10,2)"})
    assert exact.column("amount").to_pylist() == [Decimal("1234.50"), Decimal("-0.05")]
    quoted = project / "quoted.csv"
    quoted.write_bytes(b'amount\n"1,5"\n')  # with the default delimiter the value must be quoted
    assert read_direct(quoted, decimal_separator=",").column("amount").to_pylist() == [1.5]
    assert read_direct(path, delimiter=";").column("share").type == pa.string()  # "0,25" is no number by default


def test_empty_string_and_null_are_kept_apart(registry: ComponentRegistry, project: Path) -> None:
    """Before: a quoted "" was read as NULL. Now: unquoted empty (or a null value) = NULL, quoted = text."""
    path = project / "in.csv"
    path.write_bytes(b'id,a\n1,""\n2,\n3,"NA"\n4,NA\n')
    table = read_direct(path, null_values=["", "NA"])
    assert table.column("a").to_pylist() == ["", None, "NA", None]
    assert read_direct(path, null_values=["", "NA"], quoted_nulls=True).column("a").to_pylist() == \
        [None, None, None, None]
    # the writer keeps the difference: an empty string is written quoted, NULL bare
    out = copy_csv(registry, project, path.read_bytes())
    assert out == b'id,a\n1,""\n2,\n3,NA\n4,NA\n'
    (project / "again.csv").write_bytes(out)
    assert read_direct(project / "again.csv").column("a").to_pylist() == ["", None, "NA", "NA"]


def test_a_quoted_empty_number_is_an_error_with_the_fix(project: Path) -> None:
    path = project / "quoted.csv"
    path.write_bytes(b'"n","m"\n"1","2"\n"","3"\n')  # every field quoted, as some exporters write
    with pytest.raises(DriverError, match="set quoted_nulls: true"):
        read_direct(path, column_types={"n": "int64"})
    assert read_direct(path, quoted_nulls=True).column("n").to_pylist() == [1, None]


# ------------------------------------------------------------------------------------ many files by glob


def _three_files(project: Path) -> None:
    (project / "data" / "sub").mkdir(parents=True)
    (project / "data" / "b.csv").write_text("id,code\n3,003\n")
    (project / "data" / "a.csv").write_text("id,code\n1,001\n2,002\n")
    (project / "data" / "sub" / "c.csv").write_text("id,code\n4,004\n")
    (project / "data" / ".hidden.csv").write_text("other,header\n")
    (project / "data" / "notes.txt").write_text("not csv\n")


def test_a_glob_reads_every_matching_file_as_one_table(project: Path) -> None:
    _three_files(project)
    table = read_direct(Path("data/*.csv"), filename_column="source_file")
    assert table.schema.names == ["id", "code", "source_file"]
    assert table.to_pylist() == [{"id": 1, "code": "001", "source_file": "data/a.csv"},
                                 {"id": 2, "code": "002", "source_file": "data/a.csv"},
                                 {"id": 3, "code": "003", "source_file": "data/b.csv"}]
    deep = read_direct(Path("data/**/*.csv"))
    assert deep.column("id").to_pylist() == [1, 2, 3, 4]


def test_a_glob_streams_file_after_file(project: Path) -> None:
    (project / "data").mkdir()
    row = b"x" * 100 + b"\n"
    for name in ("a", "b"):
        (project / "data" / f"{name}.csv").write_bytes(b"text\n" + row * (BLOCK_SIZE // len(row) + 10))
    outputs = CsvExtractor().run(step_id="read", config=CsvExtractorConfig(path="data/*.csv"), inputs={},
                                 ctx=Recorder().context(project))
    reader = outputs[MAIN_OUTPUT]
    assert isinstance(reader, pa.RecordBatchReader)
    sizes = [batch.num_rows for batch in reader]
    assert len(sizes) >= 4 and sum(sizes) == 2 * (BLOCK_SIZE // len(row) + 10)  # blocks, never whole files


def test_a_file_with_another_header_is_an_error_naming_it(registry: ComponentRegistry, project: Path) -> None:
    _three_files(project)
    (project / "data" / "b2.csv").write_text("id,label\n9,x\n")
    run = run_pipeline(registry, project, [extract("read", "data/*.csv"), write_csv("write", "read", "out.csv")])
    error = runs.failed_error(run, "read")
    assert error.startswith("step 'read': data/b2.csv has the columns ['id', 'label'], data/a.csv has ['id', 'code']")
    assert step(run, "write").status == "skipped" and not (project / "out.csv").exists()


def test_glob_errors(project: Path) -> None:
    _three_files(project)
    with pytest.raises(DriverError, match=r"no CSV file matches data/\*\.tsv"):
        read_direct(Path("data/*.tsv"))
    with pytest.raises(DriverError, match="filename_column 'code' is also a column of data/a.csv"):
        read_direct(Path("data/*.csv"), filename_column="code")


def test_a_glob_runs_in_the_sandbox_like_here(registry: ComponentRegistry, project: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    """The sandbox uploads every file the glob matches on the host (and nothing else)."""
    from osiris_cli.main import main

    _three_files(project)
    (project / "p.yaml").write_text(
        'oml_version: "0.1.0"\nname: glob\nsteps:\n'
        "  - {id: read, component: filesystem.csv_extractor, mode: read,\n"
        "     config: {path: 'data/**/*.csv', filename_column: file, column_types: {code: string}}}\n"
        "  - {id: write, component: filesystem.csv_writer, mode: write, needs: [read], config: {path: out.csv}}\n")
    assert main(["run", "p.yaml"]) == 0
    local = (project / "out.csv").read_text()
    (project / "out.csv").unlink()
    assert main(["run", "p.yaml", "--sandbox", "local"]) == 0
    assert (project / "out.csv").read_text() == local == (
        "id,code,file\n1,001,data/a.csv\n2,002,data/a.csv\n3,003,data/b.csv\n4,004,data/sub/c.csv\n")
    capsys.readouterr()
    assert main(["parity", "p.yaml"]) == 0
