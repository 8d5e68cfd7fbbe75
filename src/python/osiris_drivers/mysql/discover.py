"""The `mysql` family's catalog: the tables and views of a database from `information_schema` (row estimates
are the server's `TABLE_ROWS`), and dry-run plans of `mysql.extractor` (its `LIMIT 0` probe) and
`mysql.writer` (its own plan, read-only: `TableWriter.dry_run`)."""

from __future__ import annotations

from typing import Any

from osiris_core.driver import DriverConfig, StepContext, StepPlan
from osiris_core.targets import database_uri
from osiris_drivers.catalog import Catalog, Column, FamilyCatalog, Relation, choose_schema
from osiris_drivers.mysql.connection import CONNECT_TIMEOUT_S, MySQLSettings
from osiris_drivers.mysql.dialect import MYSQL
from osiris_drivers.mysql.extractor.driver import MySQLExtractorConfig, MySQLSource
from osiris_drivers.mysql.writer.driver import MySQLTableWriter, MySQLWriterConfig
from osiris_drivers.sql.dialect import TableName
from osiris_drivers.sql.writer import planned_input

VIEW_TYPES = frozenset({"VIEW", "SYSTEM VIEW"})


class MySQLCatalog(FamilyCatalog[MySQLSettings]):
    settings = MySQLSettings

    def discover(self, settings: MySQLSettings, schema: str | None) -> Catalog:
        """`schema` is a database (default: the connection's)."""
        session = settings.connect(timeout=CONNECT_TIMEOUT_S)
        with session, session.cursor() as cursor:
            cursor.execute("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA")
            schemas = sorted(str(row[0]) for row in cursor.fetchall())
            chosen = choose_schema(schema, settings.database, schemas, settings.where)
            cursor.execute("SELECT TABLE_NAME, TABLE_TYPE, TABLE_ROWS FROM information_schema.TABLES "
                           "WHERE TABLE_SCHEMA = %s", (chosen,))
            tables = cursor.fetchall()
            cursor.execute("SELECT TABLE_NAME, COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE FROM information_schema.COLUMNS "
                           "WHERE TABLE_SCHEMA = %s ORDER BY TABLE_NAME, ORDINAL_POSITION", (chosen,))
            columns = cursor.fetchall()
            cursor.execute("SELECT TABLE_NAME, COLUMN_NAME FROM information_schema.STATISTICS "
                           "WHERE TABLE_SCHEMA = %s AND INDEX_NAME = 'PRIMARY'", (chosen,))
            keys = {(str(t), str(c)) for t, c in cursor.fetchall()}
        by_table: dict[str, list[Column]] = {}
        for table, name, type_, nullable in columns:
            by_table.setdefault(str(table), []).append(
                Column(str(name), str(type_), str(nullable) == "YES", (str(table), str(name)) in keys))
        relations = tuple(
            Relation(str(name), "view" if str(kind) in VIEW_TYPES else "table", tuple(by_table.get(str(name), ())),
                     settings.target(TableName(chosen, str(name))), schema=chosen,
                     rows=None if rows is None or str(kind) in VIEW_TYPES else int(rows))
            for name, kind, rows in sorted(tables, key=lambda row: str(row[0])))
        return Catalog(database_uri("mysql", settings.host, settings.port, chosen), chosen, tuple(schemas), relations)

    def plan(self, step_id: str, config: DriverConfig, input_columns: tuple[str, ...] | None,
             ctx: StepContext) -> StepPlan | None:
        if isinstance(config, MySQLWriterConfig):
            writer = MySQLTableWriter(step_id, config, planned_input(input_columns), ctx, use_load_data=False)
            return writer.dry_run(config.target(writer.table), input_known=input_columns is not None)
        if isinstance(config, MySQLExtractorConfig):
            table = config.table_name(config.table) if config.table is not None else None
            return MySQLSource(step_id, config).dry_run(config, table, config.target(table))
        return None

    def extractor(self, reference: str, settings: MySQLSettings, relation: Relation) -> tuple[str, dict[str, Any]]:
        """`mysql.extractor` reading the whole relation (a name the `table` option cannot hold: as a query)."""
        config: dict[str, Any] = {"connection": reference}
        schema = relation.schema or settings.database
        if "." in relation.name or "." in schema:
            config["query"] = f"SELECT * FROM {MYSQL.qualified(TableName(schema, relation.name))}"
        else:
            config["table"] = relation.name if schema == settings.database else f"{schema}.{relation.name}"
        return "mysql.extractor", config
