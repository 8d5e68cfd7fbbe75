"""`duckdb.writer`: append, replace or upsert Arrow data into a DuckDB file, atomically."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import duckdb
from pydantic import Field

from osiris_core.driver import ROWS_WRITTEN, Driver, DriverConfig, StepContext, StepInputs, StepOutputs, single_input
from osiris_core.errors import DriverError

SOURCE = "__osiris_source"


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def split_table(table: str) -> tuple[str, str]:
    """`schema.table` or `table` → (schema, table); the schema defaults to DuckDB's `main`."""
    schema, _, name = table.rpartition(".")
    return schema or "main", name


def qualified(table: str) -> str:
    schema, name = split_table(table)
    return f"{quote_ident(schema)}.{quote_ident(name)}"


class DuckDBWriterConfig(DriverConfig):
    path: str = Field(min_length=1)
    table: str = Field(min_length=1, pattern=r"^[^.]+(\.[^.]+)?$")
    write_mode: Literal["append", "replace", "upsert"] = "append"
    primary_key: list[str] = Field(default_factory=list)
    create_if_missing: bool = True


class DuckDBWriter(Driver[DuckDBWriterConfig]):
    config_model = DuckDBWriterConfig

    def run(self, *, step_id: str, config: DuckDBWriterConfig, inputs: StepInputs, ctx: StepContext) -> StepOutputs:
        if config.write_mode == "upsert" and not config.primary_key:
            raise DriverError("write_mode upsert needs primary_key", step_id=step_id,
                              hint="set primary_key: [column, ...]")
        data = single_input(step_id, inputs)
        missing_keys = sorted(set(config.primary_key) - set(data.schema.names))
        if missing_keys:
            raise DriverError(f"primary_key columns {missing_keys} are not in the input", step_id=step_id,
                              hint=f"input columns: {data.schema.names}")
        Path(config.path).parent.mkdir(parents=True, exist_ok=True)
        con = duckdb.connect(config.path)
        try:
            con.register(SOURCE, data)
            con.execute("BEGIN TRANSACTION")
            try:
                rows = self._write(con, config, step_id, data.schema.names)
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        except duckdb.Error as exc:
            raise DriverError(f"writing {config.table} in {config.path} failed: {exc}", step_id=step_id,
                              hint="the table was left unchanged") from None
        finally:
            con.close()
        ctx.metric(ROWS_WRITTEN, rows, "rows")
        ctx.event("output_written", target=f"{config.path}#{config.table}", rows=rows)
        return {}

    def _write(self, con: duckdb.DuckDBPyConnection, config: DuckDBWriterConfig, step_id: str,
               names: list[str]) -> int:
        target = qualified(config.table)
        schema, _ = split_table(config.table)
        exists = self._exists(con, config.table)
        if not exists and not config.create_if_missing:
            raise DriverError(f"table {config.table} does not exist", step_id=step_id,
                              hint="create it first or set create_if_missing: true")
        if config.write_mode == "replace" and exists:
            con.execute(f"DROP TABLE {target}")
        if config.write_mode == "replace" or not exists:
            con.execute(f"CREATE SCHEMA IF NOT EXISTS {quote_ident(schema)}")
            con.execute(self._create_sql(con, target, config.primary_key))
        columns = ", ".join(quote_ident(c) for c in names)
        sql = f"INSERT INTO {target} ({columns}) SELECT {columns} FROM {SOURCE}"
        if config.write_mode == "upsert":
            keys = ", ".join(quote_ident(c) for c in config.primary_key)
            updates = ", ".join(f"{quote_ident(c)} = EXCLUDED.{quote_ident(c)}"
                                for c in names if c not in config.primary_key)
            sql += f" ON CONFLICT ({keys}) " + (f"DO UPDATE SET {updates}" if updates else "DO NOTHING")
        result = con.execute(sql).fetchone()
        return int(result[0]) if result else 0

    @staticmethod
    def _exists(con: duckdb.DuckDBPyConnection, table: str) -> bool:
        """Whether the table exists; DuckDB resolves identifiers case-insensitively, so does this check."""
        schema, name = split_table(table)
        row = con.execute(
            "SELECT count(*) FROM information_schema.tables "
            "WHERE lower(table_name) = lower(?) AND lower(table_schema) = lower(?)",
            [name, schema],
        ).fetchone()
        return bool(row and row[0])

    @staticmethod
    def _create_sql(con: duckdb.DuckDBPyConnection, target: str, primary_key: list[str]) -> str:
        described = con.execute(f"DESCRIBE SELECT * FROM {SOURCE}").fetchall()
        columns = [f"{quote_ident(name)} {type_}" for name, type_, *_ in described]
        if primary_key:
            columns.append(f"PRIMARY KEY ({', '.join(quote_ident(c) for c in primary_key)})")
        return f"CREATE TABLE {target} ({', '.join(columns)})"
