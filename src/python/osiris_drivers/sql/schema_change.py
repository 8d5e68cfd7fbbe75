"""`on_schema_change`: how a write into an existing table treats columns the input and the table do not share.

The input's columns (typed as the dialect would create them) are compared with the table's (as the database
reports them): *added* (in the input only), *removed* (in the table only; the writer's own `_osiris_*` columns never
count) and *type changed* (the input's type does not fit the table's column). The policy (dbt's names) decides:

- `ignore`: added input columns are not written, removed ones stay NULL, types are left to the load;
- `fail`: any difference stops the write before anything changes, naming the whole diff in one line;
- `append_new_columns` (the default): added columns are created (`ALTER TABLE … ADD COLUMN`) in the write's
  transaction; removed ones stay NULL; types are left to the load;
- `sync_all_columns`: also drops removed columns and widens a column whose new type holds every old value (a wider
  integer, float → double, more decimal digits, a longer or unbounded varchar); any other type change fails.

Type fit is decided on a coarse reading of SQL type names (`parse_type`) that covers PostgreSQL, MySQL/MariaDB and
DuckDB; text is never compared by length (Arrow strings have none: a value too long fails the load atomically).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from osiris_drivers.sql.dialect import Dialect

SchemaChangePolicy = Literal["ignore", "fail", "append_new_columns", "sync_all_columns"]
DEFAULT_POLICY: SchemaChangePolicy = "append_new_columns"


class SchemaChangeRefused(ValueError):
    """The policy refuses the difference: `message` names the diff, `hint` the way out."""

    def __init__(self, message: str, hint: str) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


@dataclass(frozen=True)
class SqlType:
    """A column type read coarsely: its family and, where it matters, its size (bits, length, precision)."""

    family: str
    size: int | None = None
    scale: int = 0


_INT_BITS = {"tinyint": 8, "int1": 8, "smallint": 16, "int2": 16, "mediumint": 24, "int": 32, "integer": 32,
             "int4": 32, "serial": 32, "bigint": 64, "int8": 64, "bigserial": 64, "hugeint": 128}
_DECIMAL_DIGITS = {8: 3, 16: 5, 24: 8, 32: 10, 33: 10, 64: 19, 65: 20, 128: 39}
_FAMILIES = (
    (r"bool(ean)?|tinyint\(1\)", "bool"),
    (r"(real|float4|float)(\(\d+\))?", "float32"),
    (r"(double( precision)?|float8)", "float64"),
    (r"(numeric|decimal)(\(\s*(\d+)\s*(,\s*(\d+)\s*)?\))?", "decimal"),
    (r"(text|longtext|mediumtext|tinytext|string|varchar|character varying|char|character|bpchar|nvarchar)"
     r"(\(\d+\))?", "text"),
    (r"(bytea|blob|longblob|mediumblob|tinyblob|varbinary|binary)(\(\d+\))?", "binary"),
    (r"date", "date"),
    (r"(time|time\(\d\))( with(out)? time zone)?", "time"),
    (r"(timestamp|datetime|timestamptz)(\(\d\))?( with(out)? time zone)?", "timestamp"),
    (r"jsonb?", "json"),
)


def parse_type(sql: str) -> SqlType:
    """`BIGINT`, `int(11) unsigned`, `character varying(20)`, `NUMERIC(12,2)` … as a `SqlType`."""
    text = " ".join(sql.lower().split())
    unsigned = text.endswith(" unsigned")
    text = text.removesuffix(" unsigned")
    if text == "tinyint(1)":
        return SqlType("bool")
    base = re.sub(r"\(\d+\)$", "", text)
    if base in _INT_BITS:
        return SqlType("int", _INT_BITS[base] + (1 if unsigned else 0))
    for pattern, family in _FAMILIES:
        match = re.fullmatch(pattern, text)
        if not match:
            continue
        if family == "decimal":
            if match.group(3) is None:
                return SqlType("decimal")
            return SqlType("decimal", int(match.group(3)), int(match.group(5) or 0))
        if family.startswith("float"):
            return SqlType("float", int(family[5:]))
        return SqlType(family)
    return SqlType(f"other:{text}")


def fits(value: SqlType, column: SqlType) -> bool:
    """Whether every value of type `value` can be stored in a column of type `column` unchanged."""
    if value.family == "int" and column.family == "int":
        return (value.size or 0) <= (column.size or 0)
    if value.family == "int" and column.family == "decimal":
        return column.size is None or _DECIMAL_DIGITS.get(value.size or 0, 39) <= column.size - column.scale
    if value.family == "int" and column.family == "float":
        return (value.size or 0) <= (24 if column.size == 32 else 53)
    if value.family == "float" and column.family == "float":
        return (value.size or 0) <= (column.size or 0)
    if value.family == "decimal" and column.family == "decimal":
        if column.size is None:
            return True
        if value.size is None:
            return False
        return value.scale <= column.scale and value.size - value.scale <= column.size - column.scale
    return value.family == column.family


@dataclass(frozen=True)
class Retyped:
    name: str
    table_type: str
    input_type: str
    safe: bool
    """The table's column can be widened to the input's type (it holds every old value)."""


@dataclass(frozen=True)
class SchemaDiff:
    added: tuple[tuple[str, str], ...] = ()
    """(name, the input's column type) for each input column the table lacks."""
    removed: tuple[str, ...] = ()
    retyped: tuple[Retyped, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.added or self.removed or self.retyped)

    def describe(self) -> str:
        """`added: a BIGINT; removed: b; type changed: c INTEGER → BIGINT`."""
        parts = []
        if self.added:
            parts.append("added: " + ", ".join(f"{n} {t}" for n, t in self.added))
        if self.removed:
            parts.append("removed: " + ", ".join(self.removed))
        if self.retyped:
            parts.append("type changed: " + ", ".join(f"{r.name} {r.table_type} → {r.input_type}"
                                                      for r in self.retyped))
        return "; ".join(parts)


def diff(dialect: Dialect, inputs: Sequence[tuple[str, str, bool]], table: Mapping[str, str | None],
         reserved: Collection[str] = ()) -> SchemaDiff:
    """Compare the input's (name, column type, is-null-typed) with the table's {name: type or None (unknown)};
    `reserved`: table columns the writer manages, never reported as removed."""
    known = {dialect.fold(n): (n, t) for n, t in table.items()}
    given = {dialect.fold(n) for n, _, _ in inputs}
    skip = {dialect.fold(n) for n in reserved}
    added, retyped = [], []
    for name, sql_type, untyped in inputs:
        if dialect.fold(name) not in known:
            added.append((name, sql_type))
            continue
        table_name, table_type = known[dialect.fold(name)]
        if table_type is None or untyped:
            continue
        value, column = parse_type(sql_type), parse_type(table_type)
        if not fits(value, column):
            retyped.append(Retyped(table_name, table_type, sql_type, safe=fits(column, value)))
    removed = [n for f, (n, _) in known.items() if f not in given and f not in skip]
    return SchemaDiff(tuple(added), tuple(removed), tuple(retyped))


@dataclass(frozen=True)
class SchemaChange:
    """What a write does about the diff: columns it adds, drops and retypes, and input columns it leaves out."""

    add: tuple[tuple[str, str], ...] = ()
    drop: tuple[str, ...] = ()
    retype: tuple[tuple[str, str], ...] = ()
    skip_input: tuple[str, ...] = ()
    diff: SchemaDiff = field(default_factory=SchemaDiff)

    @property
    def alters(self) -> bool:
        return bool(self.add or self.drop or self.retype)

    def statements(self, dialect: Dialect, table: str) -> list[str]:
        """The ALTER TABLE statements for `table` (quoted)."""
        return ([dialect.add_column_sql(table, n, t) for n, t in self.add]
                + [dialect.retype_column_sql(table, n, t) for n, t in self.retype]
                + [dialect.drop_column_sql(table, n) for n in self.drop])

    def describe(self) -> str:
        parts = []
        if self.add:
            parts.append("adds " + ", ".join(f"{n} {t}" for n, t in self.add))
        if self.retype:
            parts.append("widens " + ", ".join(f"{n} to {t}" for n, t in self.retype))
        if self.drop:
            parts.append("drops " + ", ".join(self.drop))
        if self.skip_input:
            parts.append("does not write input columns " + ", ".join(self.skip_input))
        return "; ".join(parts)


def decide(policy: SchemaChangePolicy, found: SchemaDiff, table: str) -> SchemaChange:
    """The change `policy` makes for `found` in `table` (a label); `SchemaChangeRefused` when it refuses."""
    if not found:
        return SchemaChange(diff=found)
    if policy == "fail":
        raise SchemaChangeRefused(f"the input's columns differ from table {table}'s ({found.describe()})",
                                  "align the input upstream, or set on_schema_change: append_new_columns, "
                                  "sync_all_columns or ignore")
    if policy == "ignore":
        return SchemaChange(skip_input=tuple(n for n, _ in found.added), diff=found)
    if policy == "append_new_columns":
        return SchemaChange(add=found.added, diff=found)
    unsafe = [r for r in found.retyped if not r.safe]
    if unsafe:
        raise SchemaChangeRefused(
            f"on_schema_change sync_all_columns cannot safely change table {table}'s column types "
            f"({SchemaDiff(retyped=tuple(unsafe)).describe()}); full diff: {found.describe()}",
            "cast those columns upstream to the table's types, or use write_mode: replace to retype the table")
    return SchemaChange(add=found.added, drop=found.removed,
                        retype=tuple((r.name, r.input_type) for r in found.retyped), diff=found)
