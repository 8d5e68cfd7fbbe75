"""The connector registry of the conformance suite: how each connector writes a table and reads it back.

A new connector joins every conformance test by adding one `Connector(...)` line to `CONNECTORS`. Tables get
unique names (a uuid suffix): other test processes use the same servers.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest

from osiris_core.driver import MAIN_OUTPUT, Driver, StepOutputs
from osiris_drivers.duckdb.writer.driver import DuckDBWriter
from osiris_drivers.filesystem.csv_extractor.driver import CsvExtractor
from osiris_drivers.filesystem.csv_writer.driver import CsvWriter
from osiris_drivers.mysql.extractor.driver import MySQLExtractor
from osiris_drivers.mysql.writer.driver import MySQLWriter
from osiris_drivers.postgres.extractor.driver import PostgresExtractor
from osiris_drivers.postgres.writer.driver import PostgresWriter
from osiris_drivers.supabase.extractor.driver import SupabaseExtractor
from osiris_drivers.supabase.writer.driver import SupabaseWriter
from tests.supabase.conftest import SERVICE_KEY
from tests.support.databases import MySQLDatabase, PostgresDatabase
from tests.support.postgrest_server import PostgrestServer
from tests.support.runs import Recorder


@dataclass
class Resources:
    """What a connector may use: the real servers, a scratch folder, the PostgREST server (Supabase only)."""

    pg: PostgresDatabase
    mysql: MySQLDatabase
    tmp: Path
    request: pytest.FixtureRequest

    @property
    def postgrest(self) -> PostgrestServer:
        server: PostgrestServer = self.request.getfixturevalue("postgrest")
        return server


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def run_driver(driver: Driver[Any], config: dict[str, Any], resources: Resources,
               inputs: dict[str, Any] | None = None) -> StepOutputs:
    parsed = driver.config_model.model_validate(config)
    return driver.run(step_id="step", config=parsed, inputs=inputs or {},
                      ctx=Recorder().context(resources.tmp))


def read_output(outputs: StepOutputs) -> pa.Table:
    data = outputs[MAIN_OUTPUT]
    return data if isinstance(data, pa.Table) else data.read_all()


# ------------------------------------------------------------------------------------------------ connection fields

def pg_fields(r: Resources) -> dict[str, Any]:
    return {"host": r.pg.host, "port": r.pg.port, "database": r.pg.database, "user": r.pg.user}


def mysql_fields(r: Resources) -> dict[str, Any]:
    return dict(r.mysql.fields)


def supabase_fields(r: Resources, *, pg_dsn: bool) -> dict[str, Any]:
    server = r.postgrest
    fields: dict[str, Any] = {"url": server.url, "service_role_key": SERVICE_KEY, "sql_url": server.sql_url}
    if pg_dsn:
        fields["pg_dsn"] = r.pg.dsn
    return fields


def duckdb_path(r: Resources) -> str:
    return str(r.tmp / "conformance.duckdb")


# ------------------------------------------------------------------------------------------------ writers

Write = Callable[[Resources, str, pa.Table, str, Sequence[str]], None]
Read = Callable[[Resources, str], pa.Table]


def _table_writer(driver: Driver[Any], fields: Callable[[Resources], dict[str, Any]],
                  **extra: Any) -> Write:
    def write(r: Resources, table: str, data: pa.Table, mode: str, key: Sequence[str]) -> None:
        run_driver(driver, {**fields(r), **extra, "table": table, "write_mode": mode, "primary_key": list(key)}, r,
                   {"src": data})
    return write


def write_csv(r: Resources, table: str, data: pa.Table, mode: str, key: Sequence[str]) -> None:
    run_driver(CsvWriter(), {"path": str(r.tmp / f"{table}.csv")}, r, {"src": data})


# ------------------------------------------------------------------------------------------------ readers

def read_pg(r: Resources, table: str) -> pa.Table:
    return read_output(run_driver(PostgresExtractor(), {**pg_fields(r), "table": table}, r))


def read_mysql(r: Resources, table: str) -> pa.Table:
    return read_output(run_driver(MySQLExtractor(), {**mysql_fields(r), "table": table}, r))


def read_supabase_sql(r: Resources, table: str) -> pa.Table:
    return read_output(run_driver(SupabaseExtractor(), {**supabase_fields(r, pg_dsn=True), "table": table}, r))


def read_supabase_rest(r: Resources, table: str) -> pa.Table:
    return read_output(run_driver(SupabaseExtractor(), {**supabase_fields(r, pg_dsn=False), "table": table}, r))


def read_duckdb(r: Resources, table: str) -> pa.Table:
    """DuckDB has no extractor component: its own client reads the table back."""
    with duckdb.connect(duckdb_path(r), read_only=True) as con:
        return con.execute(f'SELECT * FROM "{table}"').fetch_arrow_table()


CSV_TYPES = {pa.int8(): "int8", pa.int16(): "int16", pa.int32(): "int32", pa.int64(): "int64", pa.uint8(): "uint8",
             pa.uint16(): "uint16", pa.uint32(): "uint32", pa.uint64(): "uint64", pa.float32(): "float32",
             pa.float64(): "float64", pa.string(): "string", pa.bool_(): "bool", pa.date32(): "date",
             pa.time64("us"): "time", pa.timestamp("us"): "timestamp", pa.timestamp("us", tz="UTC"): "timestamptz"}


def csv_types(schema: pa.Schema) -> dict[str, str]:
    """The CSV extractor's `column_types` that read `schema`'s columns back."""
    declared = {}
    for f in schema:
        if pa.types.is_decimal(f.type):
            declared[f.name] = f"decimal({f.type.precision},{f.type.scale})"
        elif f.type in CSV_TYPES:
            declared[f.name] = CSV_TYPES[f.type]
    return declared


# ------------------------------------------------------------------------------------------------ the registry

@dataclass(frozen=True)
class Connector:
    """One writer and the extractor that reads its tables back, with what the pair cannot hold."""

    name: str
    write: Write
    read: Read
    family: str
    """The type family its tables are declared in (`postgresql`, `mysql`, `duckdb`, `csv`)."""
    modes: bool = True
    """Honours write_mode and primary_key (a CSV file is always rewritten)."""
    lacks: frozenset[str] = field(default_factory=frozenset)
    """Type-matrix columns the pair does not round trip (see `tests/conformance/matrix.py`)."""
    zoned_as_utc: bool = False
    """A zoned timestamp comes back as its naive UTC value (MySQL's DATETIME)."""
    lists_as_json: bool = False
    """A list or struct comes back as its JSON text (PostgreSQL's jsonb)."""
    needs_schema_hint: bool = False
    """The reader needs the written schema (CSV's column_types)."""


REST_LACKS = frozenset({"u64", "dec", "f32", "d", "t", "ts", "tsz", "bin", "lst", "st", "js"})
"""PostgREST returns JSON: numbers, booleans and strings come back typed; dates, times, decimals and bytes as text."""


class InsertingMySQLWriter(MySQLWriter):
    """mysql.writer on a server with local_infile off: multi-row INSERTs instead of LOAD DATA."""

    use_load_data = False

CONNECTORS: tuple[Connector, ...] = (
    Connector("postgres", _table_writer(PostgresWriter(), pg_fields), read_pg, "postgresql", lists_as_json=True),
    Connector("mysql", _table_writer(MySQLWriter(), mysql_fields), read_mysql, "mysql",
              lacks=frozenset({"lst", "st"}), zoned_as_utc=True),
    Connector("mysql-insert", _table_writer(InsertingMySQLWriter(), mysql_fields), read_mysql, "mysql",
              lacks=frozenset({"lst", "st"}), zoned_as_utc=True),
    Connector("duckdb", _table_writer(DuckDBWriter(), lambda r: {"path": duckdb_path(r)}), read_duckdb, "duckdb"),
    Connector("csv", write_csv, lambda r, t: pa.table({}), "csv", modes=False,
              lacks=frozenset({"bin", "lst", "st"}),
              needs_schema_hint=True),
    Connector("supabase-copy",
              _table_writer(SupabaseWriter(), lambda r: supabase_fields(r, pg_dsn=True), ddl_channel="psycopg2"),
              read_supabase_sql, "postgresql", lists_as_json=True),
    Connector("supabase-rest",
              _table_writer(SupabaseWriter(), lambda r: supabase_fields(r, pg_dsn=False), ddl_channel="http_sql"),
              read_supabase_sql, "postgresql", lists_as_json=True),
    Connector("supabase-rest-read",
              _table_writer(SupabaseWriter(), lambda r: supabase_fields(r, pg_dsn=True), ddl_channel="http_sql"),
              read_supabase_rest, "postgresql", lacks=REST_LACKS),
)
"""Every writer with the extractor that reads it back; add a line here and the connector gets the whole suite."""


def read_csv(r: Resources, table: str, schema: pa.Schema) -> pa.Table:
    return read_output(run_driver(CsvExtractor(), {"path": str(r.tmp / f"{table}.csv"),
                                                   "column_types": csv_types(schema)}, r))


def read_back(connector: Connector, r: Resources, table: str, schema: pa.Schema) -> pa.Table:
    """The table as the connector's extractor reads it."""
    return read_csv(r, table, schema) if connector.needs_schema_hint else connector.read(r, table)


def by_name(name: str) -> Connector:
    return next(c for c in CONNECTORS if c.name == name)
