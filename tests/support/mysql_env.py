"""Test support for the MySQL components: a project with a mysql connection, pipeline builders and checks."""

from __future__ import annotations

import csv
import datetime as dt
import socket
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import yaml

from osiris_core.connections import Connections
from osiris_core.driver import MAIN_OUTPUT
from osiris_core.registry import ComponentRegistry
from osiris_core.runner import RunResult
from osiris_drivers.mysql.extractor.driver import MySQLExtractor, MySQLExtractorConfig
from osiris_drivers.registry import default_registry
from tests.support.databases import MySQLDatabase
from tests.support.runs import (
    Recorder,
    run_pipeline,
)

PASSWORD_ENV = "OSIRIS_TEST_MYSQL_PASSWORD"

# --------------------------------------------------------------------------------------------- helpers


def build_registry() -> ComponentRegistry:
    """The built-in components (MySQL included), without entry points."""
    return default_registry(entry_points=False)

@dataclass
class Env:
    """A project directory with an osiris_connections.yaml whose passwords come from environment variables."""

    registry: ComponentRegistry
    project: Path
    db: MySQLDatabase
    aliases: dict[str, dict[str, Any]] = field(default_factory=dict)
    environ: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.connection("test", password=self.db.password)

    def connection(self, alias: str, **overrides: Any) -> str:
        """Add `@mysql.<alias>` (the test database unless overridden) and return its reference."""
        fields = {**self.db.fields, **overrides}
        env_name = f"{PASSWORD_ENV}_{alias.upper()}"
        self.environ[env_name] = str(fields.pop("password"))
        self.aliases[alias] = {**fields, "password": f"${{{env_name}}}"}
        (self.project / "osiris_connections.yaml").write_text(
            yaml.safe_dump({"connections": {"mysql": self.aliases}}), encoding="utf-8")
        return f"@mysql.{alias}"

    def run(self, steps: list[dict[str, Any]], name: str = "mysql-test") -> RunResult:
        """Write an OML file, compile it and run the manifest, as `osiris run` does."""
        return run_pipeline(self.registry, self.project, steps, name,
                            connections=Connections.load(self.project / "osiris_connections.yaml"),
                            environ=self.environ)

    def logs_text(self) -> str:
        return "\n".join(p.read_text(encoding="utf-8", errors="replace")
                         for p in sorted((self.project / "logs").rglob("*")) if p.is_file())



def extract(step_id: str, connection: str = "@mysql.test", **config: Any) -> dict[str, Any]:
    return {"id": step_id, "component": "mysql.extractor", "mode": "read",
            "config": {"connection": connection, **config}}


def write_mysql(step_id: str, need: str, table: str, connection: str = "@mysql.test",
                **config: Any) -> dict[str, Any]:
    return {"id": step_id, "component": "mysql.writer", "mode": "write", "needs": [need],
            "config": {"connection": connection, "table": table, **config}}


def sql(db: MySQLDatabase, *statements: str) -> list[tuple[Any, ...]]:
    """Run statements on a fresh connection; the rows of the last one."""
    rows: list[tuple[Any, ...]] = []
    with db.connect() as con, con.cursor() as cursor:
        for statement in statements:
            cursor.execute(statement)
            rows = list(cursor.fetchall())
    return rows


def fresh_table(db: MySQLDatabase, name: str, ddl: str, *inserts: str) -> None:
    sql(db, f"DROP TABLE IF EXISTS `{name}`", f"CREATE TABLE `{name}` ({ddl})", *inserts)


def read_csv(path: Path) -> list[list[str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.reader(handle))


def extract_direct(db: MySQLDatabase, tmp: Path, **config: Any) -> pa.RecordBatchReader:
    settings = {**db.fields, **config}
    outputs = MySQLExtractor().run(step_id="read", config=MySQLExtractorConfig.model_validate(settings), inputs={},
                                   ctx=Recorder().context(tmp))
    data = outputs[MAIN_OUTPUT]
    assert isinstance(data, pa.RecordBatchReader)
    return data


def free_port() -> int:
    """A local TCP port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# ------------------------------------------------------------------------------------ types

TYPES_DDL = """
    id INT PRIMARY KEY, big_u BIGINT UNSIGNED, big BIGINT, small SMALLINT, tiny TINYINT, flag BOOLEAN,
    flag1 TINYINT(1), amount DECIMAL(12,2), amount_u DECIMAL(12,2) UNSIGNED, wide DECIMAL(30,20),
    huge DECIMAL(65,0), ratio DOUBLE, ratio32 FLOAT, day DATE, at DATETIME(6), stamp TIMESTAMP(6) NULL,
    clock TIME(6), doc JSON, blob_col BLOB, label VARCHAR(40), body TEXT, yr YEAR
"""
TYPES_ROWS = """
    (1, 18446744073709551615, -9223372036854775808, -32768, -128, TRUE, 0, -1234567890.12, 9999999999.99,
     -1234567890.12345678901234567890, 12345678901234567890123456789012345678901234567890123456789012345,
     -2.5, 0.5, '2024-02-29', '2024-01-02 03:04:05.123456', '2024-06-01 12:00:00.500000', '23:59:59.999999',
     '{"k": [1, "é"]}', X'00FF0A5C', 'emoji 😀 ✓', 'line1\\nline2', 2024),
    (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
     NULL, NULL, NULL, NULL, NULL)
"""
EXPECTED_TYPES = {
    "id": pa.int32(), "big_u": pa.uint64(), "big": pa.int64(), "small": pa.int16(), "tiny": pa.int8(),
    "flag": pa.bool_(), "flag1": pa.bool_(), "amount": pa.decimal128(12, 2), "amount_u": pa.decimal128(12, 2),
    "wide": pa.decimal128(30, 20), "huge": pa.decimal256(65, 0), "ratio": pa.float64(), "ratio32": pa.float32(),
    "day": pa.date32(), "at": pa.timestamp("us"), "stamp": pa.timestamp("us", tz="UTC"), "clock": pa.time64("us"),
    "doc": pa.string(), "blob_col": pa.large_binary(), "label": pa.string(), "body": pa.string(), "yr": pa.int16(),
}
EXPECTED_FIRST_ROW = {
    "id": 1, "big_u": 18446744073709551615, "big": -9223372036854775808, "small": -32768, "tiny": -128,
    "flag": True, "flag1": False, "amount": Decimal("-1234567890.12"), "amount_u": Decimal("9999999999.99"),
    "wide": Decimal("-1234567890.12345678901234567890"),
    "huge": Decimal("12345678901234567890123456789012345678901234567890123456789012345"),
    "ratio": -2.5, "ratio32": 0.5, "day": dt.date(2024, 2, 29), "at": dt.datetime(2024, 1, 2, 3, 4, 5, 123456),
    "stamp": dt.datetime(2024, 6, 1, 12, 0, 0, 500000, tzinfo=dt.UTC), "clock": dt.time(23, 59, 59, 999999),
    "doc": '{"k": [1, "é"]}', "blob_col": b"\x00\xff\n\\", "label": "emoji 😀 ✓", "body": "line1\nline2",
    "yr": 2024,
}


def create_types_table(db: MySQLDatabase, name: str = "all_types") -> None:
    fresh_table(db, name, TYPES_DDL, f"INSERT INTO `{name}` VALUES {TYPES_ROWS}")

