"""Source column types → a writer's column types: the one table every SQL writer and `docs/types.md` use.

A writer of the source's own family recreates the declared type exactly (`declared_sql`: built-in types only; a
user-defined type is not created, the column is typed from its Arrow type). A writer of another family maps
the type through `RULES` (source family → target family → rules, first match wins). Nullability travels apart
(`Dialect.column_definition` adds NOT NULL). A type no rule names, or a field without source metadata (CSV,
DuckDB SQL results), is typed from its Arrow type by `Dialect.column_type`, as before.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from osiris_drivers.sql.source_types import SourceType

TargetFamily = str
"""`postgresql`, `mysql` or `duckdb` (a dialect's `FAMILY`)."""
MYSQL_VARCHAR_MAX = 1024
"""Longer PostgreSQL varchar(n) become LONGTEXT in MySQL (its 65,535-byte row limit counts each varchar's
maximum: 4 bytes a character in utf8mb4)."""
MYSQL_KEY_TEXT, MYSQL_KEY_BINARY = "VARCHAR(255)", "VARBINARY(255)"
MYSQL_MAX_DECIMAL = (65, 30)


@dataclass(frozen=True)
class Rule:
    """Source types (by base name, plus an optional condition) → one target type."""

    sources: tuple[str, ...]
    target: Callable[[SourceType], str | None]
    shown: str
    """The target type as the docs show it."""
    note: str = ""
    when: Callable[[SourceType], bool] = lambda _s: True
    condition: str = ""
    """The `when` condition as the docs show it."""

    def applies(self, source: SourceType) -> bool:
        return source.type in self.sources and self.when(source)


def _fixed(sql: str) -> Callable[[SourceType], str]:
    return lambda _s: sql


def _sized(base: str) -> Callable[[SourceType], str]:
    return lambda s: f"{base}({s.length})" if s.length is not None else base


def _frac(base: str, suffix: str = "", default: int | None = None) -> Callable[[SourceType], str]:
    """`base(p)suffix` with the source's fractional-second digits (`default` when it declares none)."""
    def render(s: SourceType) -> str:
        digits = s.precision if s.precision is not None else default
        return f"{base}({digits}){suffix}" if digits is not None else f"{base}{suffix}"
    return render


def _decimal(base: str) -> Callable[[SourceType], str | None]:
    def render(s: SourceType) -> str | None:
        if s.precision is None:
            return None
        return f"{base}({s.precision},{s.scale or 0})"
    return render


def _mysql_decimal(s: SourceType) -> str | None:
    if s.precision is None or s.precision > MYSQL_MAX_DECIMAL[0] or (s.scale or 0) > MYSQL_MAX_DECIMAL[1] \
            or (s.scale or 0) < 0:
        return None
    return f"DECIMAL({s.precision},{s.scale or 0})"


def _unsigned(s: SourceType) -> bool:
    return s.unsigned


def _signed(s: SourceType) -> bool:
    return not s.unsigned


def _enum_varchar(s: SourceType) -> str:
    return f"character varying({max(len(v) for v in s.values) or 1})" if s.values else "text"


def mysql_string(value: str) -> str:
    """A MySQL string literal (backslash and quote escaped, whatever the session's escape mode)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


def _mysql_enum(s: SourceType) -> str | None:
    return f"ENUM({', '.join(mysql_string(v) for v in s.values)})" if s.values else None


def _pg_varchar_to_mysql(s: SourceType) -> str:
    return f"VARCHAR({s.length})" if s.length is not None and s.length <= MYSQL_VARCHAR_MAX else "LONGTEXT"


_MYSQL_INTEGERS = ("tinyint", "smallint", "mediumint", "int", "bigint")
_MYSQL_TEXTS = ("tinytext", "text", "mediumtext", "longtext")
_MYSQL_BINARIES = ("binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob", "bit")


def _is_bool(s: SourceType) -> bool:
    return s.type == "tinyint" and s.length == 1


MYSQL_TO_POSTGRES: tuple[Rule, ...] = (
    Rule(("tinyint",), _fixed("boolean"), "boolean", "MySQL's BOOLEAN; a value other than 0 and 1 is refused when read",
         _is_bool, "TINYINT(1)"),
    Rule(("tinyint", "smallint"), _fixed("smallint"), "smallint", "", _signed, "signed"),
    Rule(("tinyint",), _fixed("smallint"), "smallint", "", _unsigned, "unsigned"),
    Rule(("smallint", "mediumint", "int"), _fixed("integer"), "integer", "", _signed, "signed"),
    Rule(("smallint", "mediumint"), _fixed("integer"), "integer", "", _unsigned, "unsigned"),
    Rule(("int",), _fixed("bigint"), "bigint", "the whole unsigned range", _unsigned, "unsigned"),
    Rule(("bigint",), _fixed("bigint"), "bigint", "", _signed, "signed"),
    Rule(("bigint",), _fixed("numeric(20,0)"), "numeric(20,0)", "the whole unsigned range", _unsigned, "unsigned"),
    Rule(("year",), _fixed("smallint"), "smallint"),
    Rule(("decimal",), _decimal("numeric"), "numeric(p,s)", "precision and scale kept"),
    Rule(("float",), _fixed("real"), "real"),
    Rule(("double",), _fixed("double precision"), "double precision"),
    Rule(("varchar", "char"), _sized("character varying"), "character varying(n)",
         "length kept; CHAR(n) values have no trailing spaces in MySQL, so varchar holds them as read"),
    Rule(_MYSQL_TEXTS, _fixed("text"), "text"),
    Rule(("enum",), _enum_varchar, "character varying(n)",
         "n = the longest label (text when the labels are unknown); the labels are not enforced"),
    Rule(("set",), _fixed("text"), "text", "comma-separated labels, as MySQL reads them"),
    Rule(("json",), _fixed("jsonb"), "jsonb", "MariaDB's JSON (LONGTEXT with a json_valid check) too"),
    Rule(_MYSQL_BINARIES, _fixed("bytea"), "bytea"),
    Rule(("date",), _fixed("date"), "date"),
    Rule(("time",), _frac("time", " without time zone"), "time(p) without time zone",
         "values outside 00:00 to 24:00 cannot be read"),
    Rule(("datetime",), _frac("timestamp", " without time zone"), "timestamp(p) without time zone",
         "a naive DATETIME stays naive: no time zone is assumed"),
    Rule(("timestamp",), _frac("timestamp", " with time zone"), "timestamp(p) with time zone",
         "MySQL's TIMESTAMP is an instant (read in UTC)"),
)

POSTGRES_TO_MYSQL: tuple[Rule, ...] = (
    Rule(("smallint",), _fixed("SMALLINT"), "SMALLINT"),
    Rule(("integer",), _fixed("INT"), "INT"),
    Rule(("bigint",), _fixed("BIGINT"), "BIGINT"),
    Rule(("numeric",), _mysql_decimal, "DECIMAL(p,s)",
         "p ≤ 65 and s ≤ 30; an unconstrained or wider numeric is read as text (LONGTEXT)"),
    Rule(("real",), _fixed("FLOAT"), "FLOAT"),
    Rule(("double precision",), _fixed("DOUBLE"), "DOUBLE"),
    Rule(("boolean",), _fixed("BOOLEAN"), "BOOLEAN", "TINYINT(1)"),
    Rule(("character varying",), _pg_varchar_to_mysql, "VARCHAR(n)",
         f"length kept up to {MYSQL_VARCHAR_MAX}; longer or unbounded: LONGTEXT (VARCHAR(255) in a key)"),
    Rule(("character",), lambda s: f"CHAR({s.length})" if s.length is not None and s.length <= 255 else None,
         "CHAR(n)", "n ≤ 255"),
    Rule(("text",), _fixed("LONGTEXT"), "LONGTEXT", "VARCHAR(255) in a key"),
    Rule(("uuid",), _fixed("CHAR(36)"), "CHAR(36)", "the canonical text form"),
    Rule(("json", "jsonb"), _fixed("JSON"), "JSON", "MariaDB: LONGTEXT with a json_valid check"),
    Rule(("bytea",), _fixed("LONGBLOB"), "LONGBLOB", "VARBINARY(255) in a key"),
    Rule(("date",), _fixed("DATE"), "DATE"),
    Rule(("time without time zone",), _frac("TIME", default=6), "TIME(p)", "p is 6 when undeclared"),
    Rule(("timestamp without time zone",), _frac("DATETIME", default=6), "DATETIME(p)",
         "a naive timestamp stays naive: no time zone is assumed; p is 6 when undeclared"),
    Rule(("timestamp with time zone",), _frac("DATETIME", default=6), "DATETIME(p)",
         "the instant in UTC (MySQL's TIMESTAMP ends in 2038); p is 6 when undeclared"),
    Rule(("enum",), _mysql_enum, "ENUM(labels)", "a PostgreSQL enum type's labels"),
)

ARRAY_TO_MYSQL = Rule(("any array",), _fixed("JSON"), "JSON",
                      "an array read as a list becomes a JSON array; one read as text (its `{…}` literal) LONGTEXT")

MYSQL_TO_DUCKDB: tuple[Rule, ...] = (
    Rule(("json",), _fixed("JSON"), "JSON", "DuckDB's json type"),
)
POSTGRES_TO_DUCKDB: tuple[Rule, ...] = (
    Rule(("json", "jsonb"), _fixed("JSON"), "JSON", "DuckDB's json type"),
    Rule(("uuid",), _fixed("UUID"), "UUID"),
)

RULES: dict[str, dict[TargetFamily, tuple[Rule, ...]]] = {
    "mysql": {"postgresql": MYSQL_TO_POSTGRES, "duckdb": MYSQL_TO_DUCKDB},
    "postgresql": {"mysql": POSTGRES_TO_MYSQL, "duckdb": POSTGRES_TO_DUCKDB},
}
"""Cross-family rules: source family → target family → rules (first match wins)."""

# ------------------------------------------------------------------------------------------------ same family

POSTGRES_BUILTINS = frozenset({
    "smallint", "integer", "bigint", "numeric", "real", "double precision", "boolean", "character varying",
    "character", "text", "uuid", "json", "jsonb", "bytea", "date", "time without time zone", "time with time zone",
    "timestamp without time zone", "timestamp with time zone", "interval", "inet", "cidr", "macaddr", "money",
    "xml", "bit", "bit varying", "oid", "point", "line", "lseg", "box", "path", "polygon", "circle", "tsvector",
    "tsquery", "macaddr8"})
MYSQL_BUILTINS = frozenset({
    *_MYSQL_INTEGERS, *_MYSQL_TEXTS, *_MYSQL_BINARIES, "decimal", "float", "double", "char", "varchar", "enum",
    "set", "json", "date", "time", "datetime", "timestamp", "year"})
_PG_SIZED = frozenset({"character varying", "character", "bit", "bit varying"})
_PG_FRACTIONAL = frozenset({"time without time zone", "time with time zone", "timestamp without time zone",
                            "timestamp with time zone", "interval"})
_MYSQL_SIZED = frozenset({"char", "varchar", "binary", "varbinary", "bit"})
_MYSQL_FRACTIONAL = frozenset({"time", "datetime", "timestamp"})


def declared_sql(source: SourceType) -> str | None:
    """The declared type as DDL of its own family (built-in types only; None for others)."""
    if source.family == "postgresql":
        return _postgres_declared(source)
    return _mysql_declared(source)


def _postgres_declared(s: SourceType) -> str | None:
    if s.type not in POSTGRES_BUILTINS:
        return None
    sql = s.type
    if s.type in _PG_SIZED and s.length is not None:
        sql = f"{s.type}({s.length})"
    elif s.type == "numeric" and s.precision is not None:
        sql = f"numeric({s.precision},{s.scale or 0})"
    elif s.type in _PG_FRACTIONAL and s.precision is not None:
        first, _, rest = s.type.partition(" ")
        sql = f"{first}({s.precision})" + (f" {rest}" if rest else "")
    return sql + "[]" * s.array


def _mysql_declared(s: SourceType) -> str | None:
    if s.type not in MYSQL_BUILTINS:
        return None
    sql = s.type.upper()
    if s.type in ("enum", "set"):
        if not s.values:
            return None
        sql = f"{sql}({', '.join(mysql_string(v) for v in s.values)})"
    elif s.type in _MYSQL_SIZED and s.length is not None:
        sql = f"{sql}({s.length})"
    elif s.type == "decimal" and s.precision is not None:
        sql = f"DECIMAL({s.precision},{s.scale or 0})"
    elif s.type in _MYSQL_FRACTIONAL and s.precision:
        sql = f"{sql}({s.precision})"
    elif _is_bool(s):
        sql = "TINYINT(1)"
    if s.unsigned and (s.type in _MYSQL_INTEGERS or s.type == "decimal"):
        sql += " UNSIGNED"
    return sql


# ------------------------------------------------------------------------------------------------ lookup

SAME_FAMILY = {"postgresql": "postgresql", "mysql": "mysql"}


def target_type(source: SourceType, family: TargetFamily, *, key: bool, listed: bool = True) -> str | None:
    """The column type a `family` writer gives a column of `source`; None: typed from its Arrow type.
    `listed`: the values are Arrow lists (else a PostgreSQL array travels as its text literal)."""
    if source.array and not listed and SAME_FAMILY.get(source.family) != family:
        return None  # an array literal is text to any other family
    target = _target_type(source, family)
    if target is not None and key and family == "mysql":
        return _MYSQL_KEY_TYPES.get(target.upper(), target)
    return target


_MYSQL_KEY_TYPES = {**{t.upper(): MYSQL_KEY_TEXT for t in (*_MYSQL_TEXTS, "json")},
                    **{t.upper(): MYSQL_KEY_BINARY for t in _MYSQL_BINARIES if "blob" in t}}
"""MySQL indexes no TEXT, BLOB or JSON column without a prefix length: in a key they become VARCHAR/VARBINARY(255)."""


def _target_type(source: SourceType, family: TargetFamily) -> str | None:
    if SAME_FAMILY.get(source.family) == family:
        declared = declared_sql(source)
        if declared is None and source.family == "postgresql" and source.type == "enum" and not source.array:
            return "text"
        return declared
    if source.array:
        return "JSON" if family == "mysql" else None
    for rule in RULES.get(source.family, {}).get(family, ()):
        if rule.applies(source):
            return rule.target(source)
    return None
