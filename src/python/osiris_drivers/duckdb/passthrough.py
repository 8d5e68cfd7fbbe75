"""Which `duckdb.processor` output columns pass an input column through unchanged, so they keep its declared
type (`osiris_drivers.sql.source_types`).

DuckDB drops Arrow field metadata. A column keeps its input's declared type (and NOT NULL) only when that is
certain: the query is one SELECT from one input (no join, subquery, set operation, grouping or aggregate), and
the column is a plain reference to an input column or part of `*` (without REPLACE). A WHERE, ORDER BY, LIMIT
or DISTINCT keeps values as they are, so those are fine. Anything else is typed from its Arrow type.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from osiris_drivers.sql.source_types import source_of, with_source

if TYPE_CHECKING:
    import duckdb


def _parsed(con: duckdb.DuckDBPyConnection, query: str) -> dict[str, Any] | None:
    """The query's single SELECT node as DuckDB parses it, or None."""
    import duckdb

    try:
        row = con.execute("SELECT json_serialize_sql(?)", [query]).fetchone()
        document = json.loads(row[0]) if row else None
    except (duckdb.Error, ValueError, TypeError):
        return None
    if not isinstance(document, dict) or document.get("error") or len(document.get("statements") or []) != 1:
        return None
    node = document["statements"][0].get("node")
    return node if isinstance(node, dict) and node.get("type") == "SELECT_NODE" else None


def passed_through(con: duckdb.DuckDBPyConnection, query: str,
                   schemas: Mapping[str, pa.Schema]) -> dict[int, pa.Field]:
    """Output column position → the input field it passes through unchanged (see the module docstring).
    `schemas`: each name the query may read (inputs and `input_df`) → its schema."""
    node = _parsed(con, query)
    if node is None or node.get("group_expressions") or node.get("group_sets") or node.get("having") \
            or node.get("aggregate_handling") != "STANDARD_HANDLING" or (node.get("cte_map") or {}).get("map"):
        return {}
    table = node.get("from_table") or {}
    if table.get("type") != "BASE_TABLE" or table.get("schema_name") or table.get("column_name_alias"):
        return {}
    name = str(table.get("table_name", ""))
    schema = next((s for n, s in schemas.items() if n.lower() == name.lower()), None)
    if schema is None:
        return {}
    fields = {f.name.lower(): f for f in schema}
    qualifiers = {name.lower(), str(table.get("alias") or "").lower()} - {""}
    out: dict[int, pa.Field] = {}
    position = 0
    for expression in node.get("select_list") or []:
        kind = expression.get("class")
        if kind == "STAR":
            if expression.get("replace_list") or expression.get("columns") or expression.get("expr") \
                    or expression.get("rename_list") or expression.get("qualified_exclude_list"):
                return {}
            excluded = {str(e).lower() for e in expression.get("exclude_list") or []}
            for field in schema:
                if field.name.lower() not in excluded:
                    out[position] = field
                    position += 1
            continue
        if kind == "COLUMN_REF":
            parts = [str(p) for p in expression.get("column_names") or []]
            if len(parts) == 1 or (len(parts) == 2 and parts[0].lower() in qualifiers):
                field = fields.get(parts[-1].lower())
                if field is not None:
                    out[position] = field
        position += 1
    return out


def keep_sources(schema: pa.Schema, origins: Mapping[int, pa.Field]) -> pa.Schema:
    """The output schema with each passed-through column's declared type (and nullability) put back."""
    if not any(source_of(f) for f in origins.values()):
        return schema
    return pa.schema([with_source(field, source_of(origins[i])) if i in origins else field
                      for i, field in enumerate(schema)], metadata=schema.metadata)
