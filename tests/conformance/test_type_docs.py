"""docs/types.md is generated from the type tables the writers use, and the metadata keys round trip."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from osiris_drivers.mysql.dialect import MYSQL
from osiris_drivers.postgres.dialect import POSTGRES
from osiris_drivers.sql import type_docs
from osiris_drivers.sql.source_types import SourceType, source_of, with_source
from osiris_drivers.supabase.rest_types import declared, json_columns

DOCS = Path(__file__).resolve().parents[2] / "docs" / "types.md"


def test_committed_types_doc_is_the_generated_one() -> None:
    assert DOCS.read_text(encoding="utf-8") == type_docs.render(), (
        "docs/types.md is stale: run `PYTHONPATH=src/python python -m osiris_drivers.sql.type_docs > docs/types.md`")


@pytest.mark.parametrize("source", [
    SourceType("postgresql", "character varying", nullable=False, length=20),
    SourceType("postgresql", "numeric", precision=38, scale=10),
    SourceType("postgresql", "text", array=2),
    SourceType("mysql", "enum", values=("a", "b'c", "ü,\"")),
    SourceType("mysql", "bigint", unsigned=True, nullable=False),
])
def test_source_types_round_trip_through_field_metadata(source: SourceType) -> None:
    field = with_source(pa.field("c", pa.string(), metadata={"other": "kept"}), source)
    assert source_of(field) == source
    assert field.nullable == source.nullable
    assert field.metadata[b"other"] == b"kept"


def test_foreign_or_broken_metadata_is_ignored() -> None:
    assert source_of(pa.field("c", pa.string())) is None
    assert source_of(pa.field("c", pa.string(), metadata={"osiris.family": "oracle", "osiris.type": "x"})) is None
    broken = {"osiris.family": "mysql", "osiris.type": "varchar", "osiris.length": "many"}
    assert source_of(pa.field("c", pa.string(), metadata=broken)) is None


def test_user_defined_types_are_never_emitted_as_ddl() -> None:
    """Only built-in type names reach CREATE TABLE; anything else is typed from its Arrow type."""
    hostile = with_source(pa.field("c", pa.string()),
                          SourceType("postgresql", "text); DROP TABLE x; --"))
    assert POSTGRES.field_type(hostile, key=False) == "TEXT"
    assert MYSQL.field_type(hostile, key=False) == "LONGTEXT"


def test_mysql_keys_get_indexable_types_across_families() -> None:
    text = with_source(pa.field("c", pa.string()), SourceType("postgresql", "text"))
    blob = with_source(pa.field("c", pa.binary()), SourceType("postgresql", "bytea"))
    assert [MYSQL.field_type(f, key=True) for f in (text, blob)] == ["VARCHAR(255)", "VARBINARY(255)"]
    assert [MYSQL.field_type(f, key=False) for f in (text, blob)] == ["LONGTEXT", "LONGBLOB"]


def test_mysql_keys_never_get_text_or_blob_types_in_the_same_family() -> None:
    fields = [with_source(pa.field("c", pa.string()), SourceType("mysql", t)) for t in ("text", "longblob", "json")]
    assert [MYSQL.field_type(f, key=True) for f in fields] == ["VARCHAR(255)", "VARBINARY(255)", "VARCHAR(255)"]
    assert [MYSQL.field_type(f, key=False) for f in fields] == ["TEXT", "LONGBLOB", "JSON"]


def test_postgrest_openapi_columns_become_source_types() -> None:
    """PostgREST's own OpenAPI form (format without modifiers, maxLength, required) and the modified form."""
    definition = {"required": ["v"], "properties": {
        "v": {"format": "character varying", "maxLength": 20}, "n": {"format": "numeric(12,2)"},
        "ts": {"format": "timestamp(3) without time zone"}, "a": {"format": "text[]"}, "x": {"format": "My Type"},
        "j": {"format": "jsonb"}}}
    data = pa.table({name: pa.array(["1"], pa.string()) for name in ("v", "n", "ts", "a", "x", "j")})
    sources = {f.name: source_of(f) for f in declared(data, definition).schema}
    assert sources == {
        "v": SourceType("postgresql", "character varying", nullable=False, length=20),
        "n": SourceType("postgresql", "numeric", precision=12, scale=2),
        "ts": SourceType("postgresql", "timestamp without time zone", precision=3),
        "a": SourceType("postgresql", "text", array=1), "x": None, "j": SourceType("postgresql", "jsonb")}
    assert json_columns(definition) == {"j"}
