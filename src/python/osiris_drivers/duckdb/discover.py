"""The `duckdb` family's catalog: the tables and views of a database file, opened read-only (row estimates are
DuckDB's `estimated_size`), and dry-run plans of `duckdb.writer` (its own plan, on a read-only connection; a
missing file means a missing table). No extractor component reads a DuckDB file: `--emit-pipeline` reads one
with `duckdb.processor` (`ATTACH … (READ_ONLY)`, so that step sets `allow_external_access`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb

from osiris_core.driver import DriverConfig, StepContext, StepPlan
from osiris_drivers.catalog import Catalog, Column, FamilyCatalog, Relation, RelationKind, choose_schema
from osiris_drivers.connection import ConnectionFailed, Problem
from osiris_drivers.duckdb.connection import DEFAULT_SCHEMA, DuckDBSettings
from osiris_drivers.duckdb.dialect import DUCKDB
from osiris_drivers.duckdb.writer.driver import SOURCE, DuckDBTableWriter, DuckDBWriterConfig
from osiris_drivers.sql.dialect import TableName
from osiris_drivers.sql.writer import planned_input

SOURCE_ALIAS = "osiris_source"
"""The name the emitted processor step attaches the source file under."""


class DuckDBCatalog(FamilyCatalog[DuckDBSettings]):
    settings = DuckDBSettings

    def discover(self, settings: DuckDBSettings, schema: str | None) -> Catalog:
        if not Path(settings.path).is_file():
            raise ConnectionFailed(Problem(f"no DuckDB file at {settings.path}",
                                           "check `path` (a duckdb.writer step creates the file)"))
        with duckdb.connect(settings.path, read_only=True) as con:
            schemas = [str(r[0]) for r in con.execute(
                "SELECT schema_name FROM duckdb_schemas() WHERE database_name = current_database() "
                "ORDER BY schema_name").fetchall()]
            chosen = choose_schema(schema, DEFAULT_SCHEMA, schemas, settings.where)
            here = "database_name = current_database() AND schema_name = ? AND NOT internal AND NOT temporary"
            tables = con.execute(f"SELECT table_name, estimated_size FROM duckdb_tables() WHERE {here}",
                                 [chosen]).fetchall()
            views = con.execute(f"SELECT view_name FROM duckdb_views() WHERE {here}", [chosen]).fetchall()
            columns = con.execute(
                "SELECT table_name, column_name, data_type, is_nullable FROM duckdb_columns() "
                "WHERE database_name = current_database() AND schema_name = ? AND NOT internal "
                "ORDER BY table_name, column_index", [chosen]).fetchall()
            keys = con.execute(
                "SELECT table_name, constraint_column_names FROM duckdb_constraints() "
                "WHERE database_name = current_database() AND schema_name = ? AND constraint_type = 'PRIMARY KEY'",
                [chosen]).fetchall()
        primary = {(str(table), str(column)) for table, names in keys for column in names}
        by_table: dict[str, list[Column]] = {}
        for table, name, type_, nullable in columns:
            by_table.setdefault(str(table), []).append(
                Column(str(name), str(type_), bool(nullable), (str(table), str(name)) in primary))
        found: list[tuple[str, RelationKind, int | None]] = [(str(name), "table", int(rows)) for name, rows in tables]
        found += [(str(view[0]), "view", None) for view in views]
        location = "duckdb://" + Path(settings.path).absolute().as_uri()[len("file://"):]
        return Catalog(location, chosen, tuple(schemas), tuple(
            Relation(name, kind, tuple(by_table.get(name, ())), settings.target(TableName(chosen, name)),
                     schema=chosen, rows=rows)
            for name, kind, rows in sorted(found)))

    def plan(self, step_id: str, config: DriverConfig, input_columns: tuple[str, ...] | None,
             ctx: StepContext) -> StepPlan | None:
        if not isinstance(config, DuckDBWriterConfig):
            return None
        writer = _ReadOnlyLookup(step_id, config, planned_input(input_columns), ctx)
        return writer.dry_run(config.target(writer.table), input_known=input_columns is not None)

    def extractor(self, reference: str, settings: DuckDBSettings, relation: Relation) -> tuple[str, dict[str, Any]]:
        """`duckdb.processor` attaching the file read-only and selecting the whole relation."""
        path = "'" + settings.path.replace("'", "''") + "'"
        name = DUCKDB.qualified(TableName(relation.schema or DEFAULT_SCHEMA, relation.name))
        query = f"ATTACH {path} AS {SOURCE_ALIAS} (READ_ONLY);\nSELECT * FROM {SOURCE_ALIAS}.{name}"
        return "duckdb.processor", {"query": query, "allow_external_access": True}


class _ReadOnlyLookup(DuckDBTableWriter):
    """`duckdb.writer`'s plan on a read-only connection: nothing is created, not even the file."""

    def open(self) -> None:
        if Path(self.config.path).is_file():
            self._con = duckdb.connect(self.config.path, read_only=True)
            if self.names:  # the planned input: its column types for on_schema_change
                self._con.register(SOURCE, self.data)

    def columns(self) -> list[str] | None:
        return super().columns() if self._con is not None else None
