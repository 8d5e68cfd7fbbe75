"""The incremental state table `_osiris_state` in a SQL target, and the statements that commit it with the rows.

One table per target schema (database for MySQL): `pipeline`, `step`, `target` (the key), `cursor` (typed JSON
text, `osiris_core.state`), `rows`, `updated_at` (ISO 8601 UTC text), `session_id`. The writers' skeletons
(`osiris_drivers.sql.writer`) run `state_statements` in the transaction that commits the rows, so a cursor is
never committed without its rows, nor rows without their cursor; `SqlStateStore` reads and resets it for the
engine and `osiris state`. Every value is a literal rendered by the dialect's `quote_literal`.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from typing import Any

from osiris_core.driver import StepContext
from osiris_core.errors import DriverError
from osiris_core.state import StateRecord, StateStore
from osiris_drivers.connection import ConnectionSettings
from osiris_drivers.sql.dialect import Dialect, TableName

STATE_TABLE = "_osiris_state"
COLUMNS = ("pipeline", "step", "target", "cursor", "rows", "updated_at", "session_id")
KEY = ("pipeline", "step", "target")
STATE_ALIAS = "_osiris_state_row"


def state_table(schema: str) -> TableName:
    return TableName(schema, STATE_TABLE)


def create_state_sql(dialect: Dialect, schema: str) -> str:
    """CREATE TABLE IF NOT EXISTS for the state table in `schema`."""
    q = dialect.quote_ident
    columns = [f"{q('pipeline')} VARCHAR(100) NOT NULL", f"{q('step')} VARCHAR(100) NOT NULL",
               f"{q('target')} VARCHAR(500) NOT NULL", f"{q('cursor')} TEXT NOT NULL",
               f"{q('rows')} BIGINT NOT NULL", f"{q('updated_at')} VARCHAR(40) NOT NULL",
               f"{q('session_id')} VARCHAR(255) NOT NULL"]
    key = f"PRIMARY KEY ({dialect.column_list(KEY)})"
    options = f" {dialect.TABLE_OPTIONS}" if dialect.TABLE_OPTIONS else ""
    return (f"CREATE TABLE IF NOT EXISTS {dialect.qualified(state_table(schema))} "
            f"({', '.join([*columns, key])}){options}")


def upsert_state_sql(dialect: Dialect, schema: str, record: StateRecord) -> str:
    """Insert or update `record` (by pipeline, step, target)."""
    values: list[str | int] = [record.pipeline, record.step, record.target, record.cursor, record.rows,
                               record.updated_at, record.session_id]
    row = ", ".join(f"{dialect.quote_literal(v) if isinstance(v, str) else int(v)} AS {dialect.quote_ident(c)}"
                    for c, v in zip(COLUMNS, values, strict=True))
    return dialect.merge_sql(dialect.qualified(state_table(schema)), f"(SELECT {row}) AS {STATE_ALIAS}", COLUMNS,
                             KEY)


def state_statements(dialect: Dialect, schema: str, ctx: StepContext) -> list[str]:
    """The upserts of what `ctx`'s incremental upstreams read (none when nothing is to be committed)."""
    records = [r for r in (commit.record() for commit in ctx.state_commits) if r is not None]
    return [upsert_state_sql(dialect, schema, record) for record in records]


def state_setup_sql(dialect: Dialect, schema: str, ctx: StepContext) -> list[str]:
    """The state table's CREATE when the write commits state (run before or in the write's transaction)."""
    return [create_state_sql(dialect, schema)] if ctx.state_commits else []


class SqlStateStore(StateStore):
    """The state table of one SQL target; a subclass says how statements run (one short session each)."""

    def __init__(self, step_id: str, settings: ConnectionSettings, dialect: Dialect, table: TableName, target: str,
                 *, write_mode: str, primary_key: Sequence[str], delete_missing: str | None = None) -> None:
        self.step_id = step_id
        self.settings = settings
        self.dialect = dialect
        self.table = table
        """The writer's target table."""
        self.target = target
        self.write_mode = write_mode
        self.deduplicates = write_mode in ("upsert", "scd2") and bool(primary_key)
        self.full_extract_only = None if delete_missing is None else f"delete_missing: {delete_missing}"

    @abstractmethod
    def query(self, sql: str) -> list[tuple[Any, ...]]:
        """Run one statement (committed); the rows it returned (none for a statement without a result)."""

    def _run(self, sql: str) -> list[tuple[Any, ...]]:
        try:
            return self.query(sql)
        except Exception as exc:
            raise self._failure(exc) from None

    def _failure(self, exc: Exception) -> DriverError:
        return self.settings.failure(exc, step_id=self.step_id, role="write",
                                     doing=f"reading the incremental state {self.settings.where}")

    def _exists(self, table: TableName) -> bool:
        lit = self.dialect.quote_literal
        rows = self._run("SELECT count(*) FROM information_schema.tables WHERE table_schema = "
                          f"{lit(table.schema)} AND table_name = {lit(table.name)}")
        return bool(rows and int(rows[0][0]))

    def _where(self, pipeline: str | None, step: str | None = None) -> str:
        lit, q = self.dialect.quote_literal, self.dialect.quote_ident
        where = f" WHERE {q('target')} = {lit(self.target)}"
        if pipeline is not None:
            where += f" AND {q('pipeline')} = {lit(pipeline)}"
        if step is not None:
            where += f" AND {q('step')} = {lit(step)}"
        return where

    def records(self, pipeline: str | None = None) -> list[StateRecord]:
        table = state_table(self.table.schema)
        select = (f"SELECT {self.dialect.column_list(COLUMNS)} FROM {self.dialect.qualified(table)}"
                  f"{self._where(pipeline)} ORDER BY {self.dialect.column_list(KEY)}")
        try:  # one session where the table exists (every run after the first); the check only when it failed
            rows = self.query(select)
        except Exception as exc:
            if not self._exists(table):
                return []
            raise self._failure(exc) from None
        return [StateRecord(str(p), str(s), str(t), str(c), int(r), str(u), str(i)) for p, s, t, c, r, u, i in rows]

    def target_has_rows(self) -> bool:
        if not self._exists(self.table):
            return False
        return bool(self._run(f"SELECT 1 FROM {self.dialect.qualified(self.table)} LIMIT 1"))

    def reset(self, pipeline: str, step: str | None) -> int:
        table = state_table(self.table.schema)
        if not self._exists(table):
            return 0
        where = self._where(pipeline, step)
        rows = self._run(f"SELECT count(*) FROM {self.dialect.qualified(table)}{where}")
        self._run(f"DELETE FROM {self.dialect.qualified(table)}{where}")
        return int(rows[0][0]) if rows else 0
