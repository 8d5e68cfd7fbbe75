"""Helpers for Supabase tests: connection files, a CSV → DuckDB → supabase.writer pipeline, table reads."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml

from osiris_core.compiler import compile_file
from osiris_core.connections import Connections
from osiris_core.execution import ExecutionSettings
from osiris_core.manifest import load_compiled
from osiris_core.registry import ComponentRegistry
from osiris_core.runner import LocalExecutor, RunResult
from tests.supabase.conftest import SERVICE_KEY
from tests.support.databases import PostgresDatabase
from tests.support.postgrest_server import PostgrestServer

COLUMNS = ("region", "id", "order", "MixedCase", "amount", "seen_at")
Row = tuple[str, int, str, str, Decimal, str]
SAMPLE: list[Row] = [("eu", i, f"o{i}", "M", Decimal("1.00"), "2024-01-01 00:00:00") for i in range(1, 6)]


@dataclass(frozen=True)
class Variant:
    """A connection shape and a ddl_channel: together they pick the data path and the DDL channel."""

    name: str
    with_pg_dsn: bool
    ddl_channel: str


VARIANTS = (
    Variant("copy-psycopg2", True, "psycopg2"),
    Variant("copy-http_sql", True, "http_sql"),
    Variant("rest-http_sql", False, "http_sql"),
    Variant("auto-with-dsn", True, "auto"),
    Variant("auto-rest", False, "auto"),
)


def write_connections(project: Path, pg: PostgresDatabase, server: PostgrestServer, *, with_pg_dsn: bool,
                      key: str = SERVICE_KEY) -> Connections:
    fields: dict[str, Any] = {"url": server.url, "service_role_key": key, "sql_url": server.sql_url,
                              "default": True}
    if with_pg_dsn:
        fields["pg_dsn"] = pg.dsn
    path = project / "osiris_connections.yaml"
    path.write_text(yaml.safe_dump({"connections": {"supabase": {"main": fields}}}), encoding="utf-8")
    return Connections.load(path)


def write_rows(path: Path, rows: list[Row]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        writer.writerows(rows)


def pipeline(project: Path, name: str, rows: list[Row], writer_config: dict[str, Any]) -> Path:
    data = project / f"{name}.csv"
    write_rows(data, rows)
    steps = [
        {"id": "extract", "component": "filesystem.csv_extractor", "mode": "read", "config": {"path": str(data)}},
        {"id": "shape", "component": "duckdb.processor", "mode": "transform", "needs": ["extract"],
         "config": {"query": 'SELECT region, id, "order", "MixedCase", CAST(amount AS DECIMAL(12,2)) AS amount, '
                             "CAST(seen_at AS TIMESTAMP) AS seen_at FROM input_df"}},
        {"id": "load", "component": "supabase.writer", "mode": "write", "needs": ["shape"],
         "config": {"connection": "@supabase.main", **writer_config}},
    ]
    path = project / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"oml_version": "0.1.0", "name": name, "steps": steps}, sort_keys=False),
                    encoding="utf-8")
    return path


def run(path: Path, registry: ComponentRegistry, connections: Connections, logs: Path) -> RunResult:
    compiled = compile_file(path, registry, connections, logs)
    assert compiled.manifest_path is not None
    return LocalExecutor(ExecutionSettings(registry, connections, logs)).run(load_compiled(compiled.manifest_path))


def table_rows(pg: PostgresDatabase, table: str, schema: str = "public") -> list[tuple[Any, ...]]:
    with pg.connect() as connection, connection.cursor() as cursor:
        cursor.execute("SET TIME ZONE 'UTC'")
        cursor.execute(f'SELECT region, id, "order", "MixedCase", amount, to_char(seen_at, '
                       f"'YYYY-MM-DD HH24:MI:SS') FROM \"{schema}\".\"{table}\" ORDER BY region, id")
        return [tuple(r) for r in cursor.fetchall()]


def stage_tables(pg: PostgresDatabase) -> list[str]:
    with pg.connect() as connection, connection.cursor() as cursor:
        cursor.execute("SELECT tablename FROM pg_tables WHERE tablename LIKE '\\_osiris\\_stage\\_%'")
        return [str(r[0]) for r in cursor.fetchall()]
