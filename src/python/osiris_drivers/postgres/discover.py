"""The `postgres` family's catalog: tables, views and their columns from `pg_catalog` (row estimates are the
planner's `reltuples`, else the statistics' live rows), and dry-run plans of `postgres.extractor` (its `LIMIT 0`
probe) and `postgres.writer` (its own plan, read-only: `TableWriter.dry_run`). `catalog_over_dsn` serves
`supabase` connections with `pg_dsn` too."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from osiris_core.driver import DriverConfig, StepContext, StepPlan
from osiris_drivers.catalog import Catalog, Column, FamilyCatalog, Relation, choose_schema
from osiris_drivers.postgres.connection import PostgresSettings, pg_connection
from osiris_drivers.postgres.copy import CopyWriter
from osiris_drivers.postgres.extractor.driver import PostgresExtractorConfig
from osiris_drivers.postgres.source import PostgresSource
from osiris_drivers.postgres.writer.driver import PostgresWriterConfig
from osiris_drivers.sql.dialect import TableName
from osiris_drivers.sql.writer import planned_input

DEFAULT_SCHEMA = "public"
SCHEMAS_SQL = ("SELECT nspname FROM pg_namespace WHERE nspname !~ '^pg_(toast|temp_|toast_temp_)' "
               "ORDER BY nspname")
RELATIONS_SQL = """
SELECT c.relname, c.relkind IN ('v', 'm'),
       CASE WHEN c.relkind = 'v' THEN NULL
            WHEN c.relkind = 'p' THEN (SELECT sum(GREATEST(p.reltuples, 0))::bigint FROM pg_inherits i
                                       JOIN pg_class p ON p.oid = i.inhrelid WHERE i.inhparent = c.oid)
            ELSE COALESCE(NULLIF(c.reltuples, -1)::bigint, pg_stat_get_live_tuples(c.oid)) END
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %s AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
ORDER BY c.relname
"""
COLUMNS_SQL = """
SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod), NOT a.attnotnull,
       COALESCE(a.attnum = ANY(i.indkey), false)
FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_index i ON i.indrelid = c.oid AND i.indisprimary
WHERE n.nspname = %s AND c.relkind IN ('r', 'p', 'v', 'm', 'f') AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY c.relname, a.attnum
"""


def catalog_over_dsn(dsn: str, schema: str | None, *, where: str, location: str,
                     target: Callable[[str, str], str]) -> Catalog:
    """The relations of `schema` (default `public`) of the database `dsn` names; `target(schema, name)` is a
    relation's URI. psycopg2 errors propagate."""
    with pg_connection(dsn) as connection, connection.cursor() as cursor:
        cursor.execute(SCHEMAS_SQL)
        schemas = [str(row[0]) for row in cursor.fetchall()]
        chosen = choose_schema(schema, DEFAULT_SCHEMA, schemas, where)
        cursor.execute(RELATIONS_SQL, (chosen,))
        relations = cursor.fetchall()
        cursor.execute(COLUMNS_SQL, (chosen,))
        columns = cursor.fetchall()
    by_table: dict[str, list[Column]] = {}
    for table, name, type_, nullable, key in columns:
        by_table.setdefault(str(table), []).append(Column(str(name), str(type_), bool(nullable), bool(key)))
    return Catalog(location, chosen, tuple(schemas), tuple(
        Relation(str(name), "view" if is_view else "table", tuple(by_table.get(str(name), ())),
                 target(chosen, str(name)), schema=chosen, rows=None if rows is None else max(int(rows), 0))
        for name, is_view, rows in relations))


class PostgresCatalog(FamilyCatalog[PostgresSettings]):
    settings = PostgresSettings

    def discover(self, settings: PostgresSettings, schema: str | None) -> Catalog:
        return catalog_over_dsn(settings.dsn, schema, where=settings.where, location=settings.target(),
                                target=settings.target)

    def plan(self, step_id: str, config: DriverConfig, input_columns: tuple[str, ...] | None,
             ctx: StepContext) -> StepPlan | None:
        if isinstance(config, PostgresWriterConfig):
            table = TableName(config.schema_, config.table)
            writer = CopyWriter(step_id, config, table, planned_input(input_columns), ctx, dsn=config.dsn,
                                settings=config)
            return writer.dry_run(config.target(table.schema, table.name), input_known=input_columns is not None)
        if isinstance(config, PostgresExtractorConfig):
            read = TableName(config.schema_, config.table) if config.table is not None else None
            source = config.target(read.schema, read.name) if read else config.target() + "#query"
            return PostgresSource(step_id, config, dsn=config.dsn).dry_run(config, read, source)
        return None

    def extractor(self, reference: str, settings: PostgresSettings,
                  relation: Relation) -> tuple[str, dict[str, Any]]:
        return "postgres.extractor", table_config(reference, relation)


def table_config(reference: str, relation: Relation) -> dict[str, Any]:
    """The `schema` (when not `public`) and `table` options of the PostgreSQL extractors."""
    schema = {"schema": relation.schema} if relation.schema not in (None, DEFAULT_SCHEMA) else {}
    return {"connection": reference, **schema, "table": relation.name}
