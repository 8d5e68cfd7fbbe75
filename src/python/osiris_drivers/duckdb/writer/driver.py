"""`duckdb.writer`: append, replace or upsert Arrow data into a DuckDB file, in one transaction (the shared
transactional skeleton with DuckDB's hooks: the input is scanned in place; an upsert stages it in a temporary
table first, where duplicate keys are settled)."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pydantic import Field

from osiris_core.driver import ArrowData, Driver, StepContext, StepInputs, StepOutputs, single_input
from osiris_core.interrupts import cancellable
from osiris_core.state import StateStore
from osiris_drivers.duckdb.connection import DuckDBSettings
from osiris_drivers.duckdb.dialect import DUCKDB
from osiris_drivers.sql.state import SqlStateStore
from osiris_drivers.sql.writer import STAGE_PREFIX, TableWriteOptions, TransactionalWriter
from osiris_drivers.step_io import report_written

if TYPE_CHECKING:
    import duckdb

SOURCE = "__osiris_source"
"""The input, registered on the connection (zero-copy; a stream is scanned once)."""


class DuckDBWriterConfig(DuckDBSettings, TableWriteOptions):
    table: str = Field(min_length=1, pattern=r"^[^.]+(\.[^.]+)?$")


class DuckDBTableWriter(TransactionalWriter):
    dialect = DUCKDB
    STAGE_ORDER = ("rowid",)

    def __init__(self, step_id: str, config: DuckDBWriterConfig, data: ArrowData, ctx: StepContext) -> None:
        super().__init__(step_id, config, config.table_name(config.table), data, ctx, settings=config)
        self.config = config
        self._con: duckdb.DuckDBPyConnection | None = None
        self._stop = contextlib.ExitStack()

    @property
    def label(self) -> str:
        return self.config.table

    @property
    def con(self) -> duckdb.DuckDBPyConnection:
        assert self._con is not None
        return self._con

    def open(self) -> None:
        self._con = self.config.connect()
        self._stop.enter_context(cancellable(self._con.interrupt))  # SIGINT/SIGTERM end the running statement
        self._con.register(SOURCE, self.data)

    def input_changed(self) -> None:
        self.con.unregister(SOURCE)
        self.con.register(SOURCE, self.data)

    def table_types(self, existing: list[str]) -> dict[str, str | None]:
        rows = self.con.execute(
            "SELECT column_name, data_type FROM information_schema.columns WHERE lower(table_name) = lower(?) "
            "AND lower(table_schema) = lower(?) ORDER BY ordinal_position", [self.table.name, self.table.schema],
        ).fetchall()
        return {str(r[0]): str(r[1]) for r in rows}

    def close(self) -> None:
        self._stop.close()
        if self._con is not None:
            self._con.close()

    def begin(self) -> None:
        self.con.execute("BEGIN TRANSACTION")

    def commit(self) -> None:
        self.con.execute("COMMIT")

    def rollback(self) -> None:
        self.con.execute("ROLLBACK")

    def execute(self, sql: str) -> int:
        row: Any = self.con.execute(sql).fetchone()
        return int(row[0]) if row and isinstance(row[0], int) and not isinstance(row[0], bool) else 0

    def columns(self) -> list[str] | None:
        """DuckDB resolves identifiers case-insensitively, so does this lookup."""
        rows = self.con.execute(
            "SELECT column_name FROM information_schema.columns WHERE lower(table_name) = lower(?) "
            "AND lower(table_schema) = lower(?) ORDER BY ordinal_position", [self.table.name, self.table.schema],
        ).fetchall()
        return [str(r[0]) for r in rows] or None

    def column_types(self) -> list[str]:
        """DuckDB's own reading of the Arrow input, except where a field carries its source type (`type_map`)."""
        described = [str(row[1]) for row in self.con.execute(f"DESCRIBE SELECT * FROM {SOURCE}").fetchall()]
        keys = set(self.options.primary_key)
        return [DUCKDB.source_type(f, key=f.name in keys) or d
                for f, d in zip(self.data.schema, described, strict=True)]

    def load(self, table: str) -> int:
        return self.execute(DUCKDB.insert_sql(table, SOURCE, self.names))

    def query_row(self, sql: str) -> Sequence[Any] | None:
        row: Sequence[Any] | None = self.con.execute(sql).fetchone()
        return row

    def stage(self, table: str) -> tuple[str, int | None]:
        """A temporary copy of the input (a stream is read once, duplicate keys are settled in the copy, the moves
        may read it more than once)."""
        stage = DUCKDB.quote_ident(f"{STAGE_PREFIX}{uuid.uuid4().hex[:12]}")
        return stage, self.execute(f"CREATE TEMP TABLE {stage} AS SELECT * FROM {SOURCE}")


class DuckDBStateStore(SqlStateStore):
    """The state table in the DuckDB file (opened for each statement, so the writer can open it after)."""

    def __init__(self, *args: Any, config: DuckDBSettings, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.config = config

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        con = self.config.connect()
        try:
            result = con.execute(sql)
            return [tuple(row) for row in result.fetchall()] if result.description else []
        finally:
            con.close()


class DuckDBWriter(Driver[DuckDBWriterConfig]):
    config_model = DuckDBWriterConfig

    def state_store(self, *, step_id: str, config: DuckDBWriterConfig) -> StateStore:
        table = config.table_name(config.table)
        return DuckDBStateStore(step_id, config, DUCKDB, table, config.target(table), write_mode=config.write_mode,
                                primary_key=config.primary_key,
                                delete_missing=config.delete_missing, config=config)

    def run(self, *, step_id: str, config: DuckDBWriterConfig, inputs: StepInputs, ctx: StepContext) -> StepOutputs:
        writer = DuckDBTableWriter(step_id, config, single_input(step_id, inputs), ctx)
        rows = writer.run()
        report_written(ctx, config.target(writer.table), rows)
        return {}
