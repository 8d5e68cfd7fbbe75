"""Incremental test support: a project with PostgreSQL and MariaDB connections, sources and targets in schemas
(databases) private to each test, and runs as `osiris run` makes them."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from osiris_core.compiler import compile_file
from osiris_core.connections import Connections
from osiris_core.execution import ExecutionSettings
from osiris_core.manifest import load_compiled
from osiris_core.registry import ComponentRegistry
from osiris_core.run_card import StepCard
from osiris_core.runner import LocalExecutor, RunResult
from tests.support.databases import MySQLDatabase, PostgresDatabase


@dataclass
class Project:
    registry: ComponentRegistry
    path: Path
    pg: PostgresDatabase
    mysql: MySQLDatabase
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:8])

    def __post_init__(self) -> None:
        connections = {"postgres": {"db": {"host": self.pg.host, "port": self.pg.port, "database": self.pg.database,
                                           "user": self.pg.user, "password": self.pg.password}},
                       "mysql": {"db": self.mysql.fields}}
        (self.path / "osiris_connections.yaml").write_text(yaml.safe_dump({"connections": connections}),
                                                           encoding="utf-8")

    @property
    def connections(self) -> Connections:
        return Connections.load(self.path / "osiris_connections.yaml")

    @property
    def schema(self) -> str:
        """This test's PostgreSQL schema (created by `pg_exec` users as needed)."""
        return f"inc_{self.tag}"

    def pg_exec(self, *statements: str) -> list[tuple[Any, ...]]:
        connection = self.pg.connect()
        rows: list[tuple[Any, ...]] = []
        with connection, connection.cursor() as cursor:
            for statement in statements:
                cursor.execute(statement)
                rows = list(cursor.fetchall()) if cursor.description else []
        connection.close()
        return rows

    def my_exec(self, *statements: str) -> list[tuple[Any, ...]]:
        connection = self.mysql.connect()
        rows: list[tuple[Any, ...]] = []
        with connection, connection.cursor() as cursor:
            for statement in statements:
                cursor.execute(statement)
                rows = list(cursor.fetchall()) if cursor.description else []
        return rows

    def write_pipeline(self, steps: list[dict[str, Any]], name: str = "inc") -> Path:
        path = self.path / f"{name}.yaml"
        path.write_text(json.dumps({"oml_version": "0.1.0", "name": name, "steps": steps}, indent=2),
                        encoding="utf-8")
        return path

    def run(self, steps: list[dict[str, Any]], name: str = "inc", *, full_refresh: bool = False) -> RunResult:
        path = self.write_pipeline(steps, name)
        result = compile_file(path, self.registry, self.connections, self.path / "logs")
        assert result.manifest_path is not None
        settings = ExecutionSettings(self.registry, self.connections, self.path / "logs", full_refresh=full_refresh)
        return LocalExecutor(settings).run(load_compiled(result.manifest_path))


def pg_extract(step_id: str, schema: str, table: str, cursor: str | list[str] = "updated_at",
               **incremental: Any) -> dict[str, Any]:
    return {"id": step_id, "component": "postgres.extractor", "mode": "read",
            "config": {"connection": "@postgres.db", "schema": schema, "table": table,
                       "incremental": {"cursor": cursor, **incremental}}}


def my_extract(step_id: str, table: str, cursor: str | list[str] = "updated_at", **incremental: Any) -> dict[str, Any]:
    return {"id": step_id, "component": "mysql.extractor", "mode": "read",
            "config": {"connection": "@mysql.db", "table": table, "incremental": {"cursor": cursor, **incremental}}}


def pg_write(step_id: str, need: str, schema: str, table: str, **config: Any) -> dict[str, Any]:
    options = {"write_mode": "upsert", "primary_key": ["id"], **config}
    return {"id": step_id, "component": "postgres.writer", "mode": "write", "needs": [need],
            "config": {"connection": "@postgres.db", "schema": schema, "table": table, **options}}


def my_write(step_id: str, need: str, table: str, **config: Any) -> dict[str, Any]:
    options = {"write_mode": "upsert", "primary_key": ["id"], **config}
    return {"id": step_id, "component": "mysql.writer", "mode": "write", "needs": [need],
            "config": {"connection": "@mysql.db", "table": table, **options}}


def card(run: RunResult, step_id: str) -> StepCard:
    return next(c for c in run.card.steps if c.step_id == step_id)


def succeeded(run: RunResult) -> RunResult:
    errors = {c.step_id: c.error for c in run.card.steps if c.error}
    assert run.card.status == "succeeded", errors
    return run


def failed(run: RunResult) -> str:
    assert run.card.status == "failed"
    return run.card.error or ""
