"""What `replace` keeps when it rebuilds a PostgreSQL table (its columns changed): the same transaction drops the
table, creates it from the input and then re-applies the old table's row-level security (enabled, forced, every
policy), its table and column grants, its serial sequences and identities (at their current values), column
defaults, non-primary-key indexes (plain, expression, partial), CHECK and FOREIGN KEY constraints (and, when the
write names no primary_key, its PRIMARY KEY) whose columns still exist, its triggers and its table and column
comments.
Grants never come back without the RLS that guarded them: a policy that names a column the new table lacks fails
the write (atomically). Views that depend on the table are never dropped (no CASCADE): the write is refused,
naming them. Used by `postgres.writer` and both `supabase.writer` paths."""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

from osiris_drivers.postgres.dialect import POSTGRES, quote_literal
from osiris_drivers.sql.writer import TableWriter

Query = Callable[[str], list[dict[str, Any]]]
"""Run one read-only statement; its rows as dicts."""


class DependentViews(Exception):
    """Views use the table a rebuild would drop."""

    def __init__(self, views: list[str]) -> None:
        super().__init__(", ".join(views))
        self.views = views


def _oid(target: str) -> str:
    return f"to_regclass({quote_literal(target)})"


def column_types_sql(target: str) -> str:
    """Each column's name and type (`format_type`), in order."""
    return (f"SELECT a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type FROM pg_attribute a "
            f"WHERE a.attrelid = {_oid(target)} AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum")


def kept_statements(query: Query, target: str, table: str, columns: Collection[str], *,
                    integer_columns: Collection[str] = (), primary_key: bool = False) -> list[str]:
    """Statements re-applying `target`'s row-level security, grants (table and column), serial sequences and
    identities (on `integer_columns`, at their current values), column defaults, indexes (plain, expression and
    partial) and CHECK / FOREIGN KEY constraints on `columns` only, triggers and comments to `table` (both quoted,
    usually the same name); with `primary_key` (the write names none) also its PRIMARY KEY when its columns remain.
    Raises `DependentViews` when views use `target`."""
    oid = _oid(target)
    views = [str(r["view"]) for r in query(
        "SELECT DISTINCT v.oid::regclass::text AS view FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid "
        f"JOIN pg_class v ON v.oid = r.ev_class WHERE d.classid = 'pg_rewrite'::regclass AND d.refobjid = {oid} "
        "AND v.oid <> d.refobjid ORDER BY 1")]
    if views:
        raise DependentViews(views)
    statements = _row_security(query, oid, table)
    for row in query("SELECT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(a.grantee)) "
                     "END AS grantee, a.privilege_type AS privilege, a.is_grantable AS grantable "
                     f"FROM pg_class c, aclexplode(c.relacl) a WHERE c.oid = {oid} AND a.grantee <> c.relowner "
                     "ORDER BY 1, 2"):
        option = " WITH GRANT OPTION" if row["grantable"] else ""
        statements.append(f"GRANT {row['privilege']} ON {table} TO {row['grantee']}{option}")
    present = set(columns)
    statements += _owned_sequences(query, oid, table, present, integer_columns)
    statements += _column_grants(query, oid, table, present)
    # Column defaults, but a serial's (it comes with its sequence, above).
    for row in query("SELECT a.attname AS name, pg_get_expr(d.adbin, d.adrelid) AS expression FROM pg_attrdef d "
                     "JOIN pg_attribute a ON a.attrelid = d.adrelid AND a.attnum = d.adnum "
                     f"WHERE d.adrelid = {oid} AND a.attgenerated = '' AND NOT EXISTS (SELECT 1 FROM pg_depend s "
                     "WHERE s.classid = 'pg_class'::regclass AND s.refobjid = d.adrelid AND s.refobjsubid = d.adnum "
                     "AND s.deptype = 'a' AND s.objid IN (SELECT seqrelid FROM pg_sequence)) ORDER BY a.attnum"):
        if row["name"] in present:  # a default that no longer fits the column's type fails the write
            statements.append(f"ALTER TABLE {table} ALTER COLUMN {POSTGRES.quote_ident(str(row['name']))} "
                              f"SET DEFAULT {row['expression']}")
    # Every column an index names, in its keys, expressions or predicate (`pg_depend` records those).
    for row in query("SELECT pg_get_indexdef(i.indexrelid) AS definition, ARRAY(SELECT a.attname::text "
                     "FROM pg_attribute a WHERE a.attrelid = i.indrelid AND (a.attnum = ANY(i.indkey) OR a.attnum IN "
                     "(SELECT d.refobjsubid FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND "
                     "d.objid = i.indexrelid AND d.refobjid = i.indrelid))) AS names "
                     f"FROM pg_index i WHERE i.indrelid = {oid} AND NOT i.indisprimary ORDER BY 1"):
        if set(_names(row["names"])) <= present:
            statements.append(str(row["definition"]))
    kinds = ", 'p'" if primary_key else ""
    for row in query("SELECT c.conname AS name, pg_get_constraintdef(c.oid) AS definition, "
                     "ARRAY(SELECT a.attname::text FROM pg_attribute a WHERE a.attrelid = c.conrelid "
                     "AND a.attnum = ANY(c.conkey)) AS names "
                     f"FROM pg_constraint c WHERE c.conrelid = {oid} AND c.contype IN ('c', 'f'{kinds}) "
                     "ORDER BY c.contype <> 'p', 1"):
        if set(_names(row["names"])) <= present:  # CHECK, FOREIGN KEY (PRIMARY KEY) on columns still there
            statements.append(f"ALTER TABLE {table} ADD CONSTRAINT {POSTGRES.quote_ident(str(row['name']))} "
                              f"{row['definition']}")
    for row in query(f"SELECT pg_get_triggerdef(t.oid) AS definition FROM pg_trigger t WHERE t.tgrelid = {oid} "
                     "AND NOT t.tgisinternal ORDER BY t.tgname"):
        statements.append(str(row["definition"]))  # a trigger on a column the input lacks fails the write
    for row in query(f"SELECT obj_description({oid}, 'pg_class') AS comment"):
        if row["comment"] is not None:
            statements.append(f"COMMENT ON TABLE {table} IS {quote_literal(str(row['comment']))}")
    for row in query(f"SELECT a.attname AS name, col_description(a.attrelid, a.attnum) AS comment FROM pg_attribute a "
                     f"WHERE a.attrelid = {oid} AND a.attnum > 0 AND NOT a.attisdropped "
                     "AND col_description(a.attrelid, a.attnum) IS NOT NULL ORDER BY a.attnum"):
        if row["name"] in present:
            statements.append(f"COMMENT ON COLUMN {table}.{POSTGRES.quote_ident(str(row['name']))} IS "
                              f"{quote_literal(str(row['comment']))}")
    return statements


def _column_grants(query: Query, oid: str, table: str, present: Collection[str]) -> list[str]:
    """`GRANT <privilege> (<column>)` for each column-level grant on a column the new table has."""
    statements = []
    for row in query("SELECT a.attname AS name, CASE WHEN g.grantee = 0 THEN 'PUBLIC' ELSE "
                     "quote_ident(pg_get_userbyid(g.grantee)) END AS grantee, g.privilege_type AS privilege, "
                     "g.is_grantable AS grantable FROM pg_attribute a, aclexplode(a.attacl) g "
                     f"WHERE a.attrelid = {oid} AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum, 2, 3"):
        if row["name"] in present:
            option = " WITH GRANT OPTION" if row["grantable"] else ""
            statements.append(f"GRANT {row['privilege']} ({POSTGRES.quote_ident(str(row['name']))}) ON {table} "
                              f"TO {row['grantee']}{option}")
    return statements


def _owned_sequences(query: Query, oid: str, table: str, present: Collection[str],
                     integer_columns: Collection[str]) -> list[str]:
    """The sequences `DROP TABLE` takes with the table — a `serial` column's and an identity's — re-created with
    their options and current value (as emptying the table in place keeps them), with a serial's `nextval`
    default, for integer columns that remain (a serial column that is not an integer any more loses its default)."""
    statements = []
    for row in query("SELECT a.attname AS name, d.deptype AS kind, a.attidentity AS identity, "
                     "d.objid::regclass::text AS sequence, format_type(s.seqtypid, NULL) AS type, "
                     "s.seqincrement AS increment, s.seqmin AS min, s.seqmax AS max, s.seqstart AS start, "
                     "s.seqcache AS cache, s.seqcycle AS cycle, pg_get_expr(f.adbin, f.adrelid) AS expression "
                     "FROM pg_depend d JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid "
                     "JOIN pg_sequence s ON s.seqrelid = d.objid "
                     "LEFT JOIN pg_attrdef f ON f.adrelid = a.attrelid AND f.adnum = a.attnum "
                     f"WHERE d.classid = 'pg_class'::regclass AND d.refobjid = {oid} AND d.deptype IN ('a', 'i') "
                     "ORDER BY a.attnum"):
        name = str(row["name"])
        if name not in present or name not in integer_columns:
            continue
        column, sequence = POSTGRES.quote_ident(name), str(row["sequence"])
        options = (f"INCREMENT BY {row['increment']} MINVALUE {row['min']} MAXVALUE {row['max']} "
                   f"START WITH {row['start']} CACHE {row['cache']} {'' if row['cycle'] else 'NO '}CYCLE")
        if row["kind"] == "i":
            generated = "ALWAYS" if row["identity"] == "a" else "BY DEFAULT"
            statements += [f"ALTER TABLE {table} ALTER COLUMN {column} SET NOT NULL",
                           f"ALTER TABLE {table} ALTER COLUMN {column} ADD GENERATED {generated} AS IDENTITY "
                           f"(SEQUENCE NAME {sequence} {options})"]
        else:
            statements.append(f"CREATE SEQUENCE {sequence} AS {row['type']} {options} OWNED BY {table}.{column}")
            if row["expression"] is not None:
                statements.append(f"ALTER TABLE {table} ALTER COLUMN {column} SET DEFAULT {row['expression']}")
        for value in query(f"SELECT last_value, is_called FROM {sequence}"):
            called = "true" if value["is_called"] else "false"
            statements.append(f"SELECT setval({quote_literal(sequence)}, {value['last_value']}, {called})")
    return statements


def _row_security(query: Query, oid: str, table: str) -> list[str]:
    """RLS on `table` as on the old table: enabled, forced, and each policy re-created."""
    statements = []
    for row in query("SELECT relrowsecurity AS enabled, relforcerowsecurity AS forced FROM pg_class "
                     f"WHERE oid = {oid}"):
        if row["enabled"]:
            statements.append(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        if row["forced"]:
            statements.append(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
    for row in query("SELECT p.polname AS name, p.polpermissive AS permissive, p.polcmd AS cmd, "
                     "ARRAY(SELECT CASE WHEN r = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(r)) END "
                     "FROM unnest(p.polroles) AS r) AS roles, pg_get_expr(p.polqual, p.polrelid) AS qual, "
                     f"pg_get_expr(p.polwithcheck, p.polrelid) AS checks FROM pg_policy p WHERE p.polrelid = {oid} "
                     "ORDER BY p.polname"):
        command = _POLICY_COMMANDS[str(row["cmd"])]
        kind = "PERMISSIVE" if row["permissive"] else "RESTRICTIVE"
        policy = (f"CREATE POLICY {POSTGRES.quote_ident(str(row['name']))} ON {table} AS {kind} FOR {command} "
                  f"TO {', '.join(_names(row['roles']))}")
        if row["qual"] is not None:
            policy += f" USING ({row['qual']})"
        if row["checks"] is not None:
            policy += f" WITH CHECK ({row['checks']})"
        statements.append(policy)
    return statements


_INTEGER_TYPES = frozenset({"smallint", "integer", "bigint", "int2", "int4", "int8", "int"})
_POLICY_COMMANDS = {"*": "ALL", "r": "SELECT", "a": "INSERT", "w": "UPDATE", "d": "DELETE"}


def _names(value: Any) -> list[str]:
    """A text[] as psycopg2 (a list) or HTTP SQL (a list, or '{a,b}' text) returns it."""
    if isinstance(value, list):
        return [str(v) for v in value]
    text = str(value).strip("{}")
    return [part.strip('"') for part in text.split(",")] if text else []


def kept_on_rebuild(writer: TableWriter, query: Query, table: str) -> list[str]:
    """`TableWriter.kept_on_rebuild` for PostgreSQL: what `kept_statements` finds, a dependent view refused."""
    schema, types, _ = writer.table_definition()
    integers = [name for name, kind in zip(schema.names, types, strict=True) if kind.strip().lower() in _INTEGER_TYPES]
    try:
        return kept_statements(query, writer.target, table, schema.names, integer_columns=integers,
                               primary_key=not writer.options.primary_key)
    except DependentViews as exc:
        raise writer.fail(
            f"replace would rebuild table {writer.label} {writer.where} (the input's columns differ from its), but "
            f"views depend on it: {', '.join(exc.views)}",
            "drop or change those views first (the writer never drops them), or give the input exactly the "
            "table's columns so replace empties it in place") from None
