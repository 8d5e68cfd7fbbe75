"""Test support for the end-state tests: one table on each SQL writer's database, behind one small interface."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import yaml

from osiris_core.connections import Connections
from tests.support.databases import MySQLDatabase, PostgresDatabase

WRITERS = ("mysql.writer", "postgres.writer", "duckdb.writer")


@dataclass(frozen=True)
class Target:
    """A uniquely named table for `component` (created by `create`, read by `rows`)."""

    component: str
    project: Path
    mysql: MySQLDatabase
    pg: PostgresDatabase
    table: str

    @classmethod
    def make(cls, component: str, project: Path, mysql: MySQLDatabase, pg: PostgresDatabase) -> Target:
        return cls(component, project, mysql, pg, f"es_{uuid.uuid4().hex[:10]}")

    def connections(self) -> Connections:
        path = self.project / "osiris_connections.yaml"
        path.write_text(yaml.safe_dump({"connections": {
            "mysql": {"test": self.mysql.fields},
            "postgres": {"test": {"host": self.pg.host, "port": self.pg.port, "database": self.pg.database,
                                  "user": self.pg.user}}}}), encoding="utf-8")
        return Connections.load(path)

    @property
    def duckdb_path(self) -> Path:
        return self.project / "target.duckdb"

    def step(self, step_id: str, need: str, **config: Any) -> dict[str, Any]:
        where: dict[str, Any] = ({"path": str(self.duckdb_path)} if self.component == "duckdb.writer"
                                 else {"connection": f"@{self.component.split('.')[0]}.test"})
        return {"id": step_id, "component": self.component, "mode": "write", "needs": [need],
                "config": {**where, "table": self.table, **config}}

    def sql(self, *statements: str) -> list[tuple[Any, ...]]:
        rows: list[tuple[Any, ...]] = []
        if self.component == "mysql.writer":
            with self.mysql.connect() as con, con.cursor() as cursor:
                for statement in statements:
                    cursor.execute(statement)
                    rows = list(cursor.fetchall())
        elif self.component == "postgres.writer":
            with self.pg.connect() as pg, pg.cursor() as pg_cursor:
                for statement in statements:
                    pg_cursor.execute(statement)
                    rows = list(pg_cursor.fetchall()) if pg_cursor.description else []
        else:
            with duckdb.connect(str(self.duckdb_path)) as duck:
                for statement in statements:
                    rows = list(duck.execute(statement).fetchall())
        return rows

    def create(self, ddl: str, *inserts: str) -> None:
        self.sql(f"CREATE TABLE {self.table} ({ddl})", *(f"INSERT INTO {self.table} VALUES {v}" for v in inserts))

    def rows(self, order: str = "1") -> list[tuple[Any, ...]]:
        return [tuple(r) for r in self.sql(f"SELECT * FROM {self.table} ORDER BY {order}")]

    def exists(self) -> bool:
        try:
            self.sql(f"SELECT 1 FROM {self.table} LIMIT 0")
        except Exception:
            return False
        return True
