"""The declared types of a table read through PostgREST, from its OpenAPI description (`source_types`).

PostgREST describes each column with `format` (the type: `integer`, `character varying`, `text[]`; modifiers
such as `(20)` or `(12,2)` are read when present), `maxLength` for `character varying(n)`, and lists NOT NULL
columns under `required`. What it does not describe (often numeric precision and fractional seconds) a copy
leaves undeclared (`numeric`, `timestamp`). JSON columns travel as their JSON text, as the SQL extractors
deliver them (PostgREST parses them, and a document's mixed-type arrays have no Arrow type).
"""

from __future__ import annotations

import json
import re
from typing import Any

import pyarrow as pa

from osiris_drivers.sql.source_types import SourceType, with_source

FORMAT = re.compile(r"^(?P<head>[a-z][a-z ]*?)(\((?P<first>\d+)(,(?P<second>\d+))?\))?"
                    r"(?P<zone> with(out)? time zone)?(?P<dims>(\[\])*)$")
_NUMERIC = "numeric"
_FRACTIONAL = ("time", "timestamp", "interval")


def rest_source(prop: Any, *, required: bool) -> SourceType | None:
    """One OpenAPI column property → its SourceType (None when it names no type this can read)."""
    match = FORMAT.match(str(prop.get("format") or "")) if isinstance(prop, dict) else None
    if match is None:
        return None
    base = match["head"] + (match["zone"] or "")
    first = int(match["first"]) if match["first"] else None
    length = prop.get("maxLength")
    if isinstance(length, bool) or not isinstance(length, int):
        length = None
    precision = scale = None
    if base == _NUMERIC:
        precision, scale = first, int(match["second"]) if match["second"] else (0 if first is not None else None)
    elif base.startswith(_FRACTIONAL):
        precision = first
    elif first is not None:
        length = first
    return SourceType(family="postgresql", type=base, nullable=not required, length=length, precision=precision,
                      scale=scale, array=len(match["dims"]) // 2)


def declared(table: pa.Table, definition: dict[str, Any] | None) -> pa.Table:
    """`table` with each column's declared type from the OpenAPI `definition` (as is when there is none).
    A column of no rows or only NULLs (Arrow type null) keeps NULL possible."""
    properties = (definition or {}).get("properties") or {}
    required = set((definition or {}).get("required") or [])
    fields = []
    for field in table.schema:
        source = rest_source(properties.get(field.name), required=field.name in required)
        if source is not None and pa.types.is_null(field.type):
            source = source.relaxed()
        fields.append(with_source(field, source))
    return pa.Table.from_arrays(table.columns, schema=pa.schema(fields))


JSON_FORMATS = frozenset({"json", "jsonb"})


def json_columns(definition: dict[str, Any] | None) -> frozenset[str]:
    """The columns the definition says are json/jsonb (not arrays of them)."""
    properties = (definition or {}).get("properties") or {}
    return frozenset(name for name, prop in properties.items()
                     if isinstance(prop, dict) and prop.get("format") in JSON_FORMATS)


def as_text(rows: list[dict[str, Any]], columns: frozenset[str]) -> list[dict[str, Any]]:
    """`rows` with each of `columns` back as JSON text (NULL stays NULL)."""
    return [{k: (json.dumps(v, ensure_ascii=False) if k in columns and v is not None else v) for k, v in row.items()}
            for row in rows]
