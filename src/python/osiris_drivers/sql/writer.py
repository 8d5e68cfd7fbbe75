"""The one core of the SQL writers: write options with one set of defaults, input checks, the plan, and the
load → stage → swap/merge skeletons. A writer subclasses one skeleton and implements only its database's hooks.

Every skeleton is atomic: a failure at any point leaves the target as it was and drops what the write created.

- `TransactionalWriter` (PostgreSQL over psycopg2, DuckDB): DDL, load and merge share one transaction.
- `SwapWriter` (MySQL, whose DDL commits at once): a missing or replaced table is built as `<table>__osiris_new`
  and swapped in with one rename; appends load in one transaction; upserts load a temporary stage and merge.
- `StagedWriter` (Supabase without a psycopg2 transaction): the rows go to a staging table by any data path,
  then one SQL transaction creates, rebuilds or empties the target and moves them in.

Defaults (the four SQL writers' specs declare the same): `write_mode: append`, `primary_key: []`,
`create_if_missing: true` (a missing table is created from the input's Arrow schema).
"""

from __future__ import annotations

import contextlib
import uuid
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal, NoReturn

import pyarrow as pa
from pydantic import Field

from osiris_core.driver import ArrowData, DriverConfig, StepContext, StepPlan
from osiris_core.errors import DriverError, OsirisError
from osiris_drivers.connection import ConnectionSettings, Problem
from osiris_drivers.sql.dialect import Dialect, TableName, UnsupportedType
from osiris_drivers.sql.duplicates import Dedupe, settle_duplicates

WriteMode = Literal["append", "upsert", "replace"]
ColumnName = Annotated[str, Field(min_length=1)]
NEW_SUFFIX = "__osiris_new"
OLD_SUFFIX = "__osiris_old"
STAGE_SUFFIX = "__osiris_stage"
STAGE_PREFIX = "_osiris_stage_"


class TableWriteOptions(DriverConfig):
    """The target and write semantics of every SQL writer (`table` may be qualified where the dialect says)."""

    table: str = Field(min_length=1)
    write_mode: WriteMode = "append"
    primary_key: list[ColumnName] = Field(default_factory=list)
    create_if_missing: bool = True
    dedupe: Dedupe | None = None
    """Upsert input rows that share a key: None fails the write (naming one); keep_last keeps the last in input
    order (`osiris_drivers.sql.duplicates`)."""


def planned_input(columns: Sequence[str] | None) -> pa.Table:
    """The stand-in for a dry run's input: no rows, the input's column names when they are known."""
    return pa.schema([pa.field(name, pa.null()) for name in columns or ()]).empty_table()


@dataclass(frozen=True)
class Plan:
    """What the write does to the target, decided before anything changes."""

    existing: list[str] | None
    """The target's columns; None: it does not exist."""
    create: bool
    """The target is created from the input's schema (it is missing, or replace rebuilds it)."""
    rebuild: bool
    """An existing target is replaced by a new table typed from the input."""
    empty: bool
    """replace empties the existing target in place."""


class TableWriter(ABC):
    """One write of `data` into `table`: the checks and the plan every SQL writer shares."""

    dialect: ClassVar[Dialect]

    def __init__(self, step_id: str, options: TableWriteOptions, table: TableName, data: ArrowData,
                 ctx: StepContext, *, settings: ConnectionSettings) -> None:
        self.step_id = step_id
        self.options = options
        self.settings = settings
        """The connection family's settings: where the table lives, how its client's errors read."""
        self.table = table
        self.data = data
        self.ctx = ctx
        self.names: list[str] = data.schema.names
        self.target = self.dialect.qualified(table)

    # ------------------------------------------------------------------------------------------------ hooks

    @property
    def where(self) -> str:
        """`at host:port` / `in file`: where the table lives, for messages (never a credential)."""
        return self.settings.where

    @property
    def label(self) -> str:
        """The table as messages name it."""
        return str(self.table)

    @abstractmethod
    def open(self) -> None:
        """Connect; client errors propagate (see `explain`)."""

    @abstractmethod
    def close(self) -> None:
        """Release the connection; never raises."""

    @abstractmethod
    def columns(self) -> list[str] | None:
        """The target's column names in order, or None when it does not exist."""

    def explain(self, exc: BaseException) -> Problem:
        """A client error as a one-line Problem, as the family explains it to a writer."""
        return self.settings.explain(exc, "write")

    def check_existing(self, plan: Plan) -> None:  # noqa: B027 (a hook most writers leave empty)
        """Extra checks on an existing target that the write keeps (MySQL: a unique key for upsert)."""

    def column_types(self) -> list[str]:
        """Column types for a table created from the input."""
        return self.dialect.column_types(self.data.schema, self.options.primary_key)

    def created_sql(self, table: str) -> list[str]:
        """Statements run in the same transaction right after the write created `table` (quoted), e.g. grants."""
        return []

    @abstractmethod
    def write(self) -> int:
        """The skeleton: the rows the target received."""

    # ------------------------------------------------------------------------------------------------ shared

    def run(self) -> int:
        """Check the input, connect, write; every failure a one-line DriverError."""
        self.check_input()
        try:
            try:
                self.open()
            except OsirisError:
                raise
            except Exception as exc:
                raise self.explain(exc).error(self.step_id) from None
            return self.write()
        finally:
            self.close()

    def dry_run(self, target: str, *, input_known: bool) -> StepPlan:
        """What `run` would do to the target (`osiris run --dry-run`), decided with read-only look-ups: connect,
        find the table's columns, plan (the same checks and errors as a write). Nothing is created or written.

        The data is `planned_input(columns)`; without `input_known` the input's columns are not checked here
        (the run checks them)."""
        self.check_options()
        try:
            try:
                self.open()
                plan = self.plan(self.columns())
            except BaseException as exc:
                self.reraise(exc, started=False)
        finally:
            self.close()
        mode = self.options.write_mode
        if plan.existing is None:
            key = f" (primary key {self.options.primary_key})" if self.options.primary_key else ""
            return StepPlan(target=target, write_mode=mode, action="create", target_exists=False,
                            detail=f"table {self.label} does not exist {self.where}: created from the input's "
                                   f"columns{key}, then the rows written")
        if mode == "replace":
            if plan.empty:
                how = "emptied in place (its column types, keys, grants and policies stay)"
            elif self.dialect.REPLACE_KEEPS_MATCHING_TABLE and not input_known:
                how = ("emptied in place if the input has exactly its columns, else rebuilt from the input's "
                       "columns")
            else:
                how = "rebuilt from the input's columns"
            detail = f"table {self.label} exists: {how}, then the new rows written"
        elif mode == "upsert":
            detail = f"table {self.label} exists: rows inserted or updated by {self.options.primary_key}"
        else:
            detail = f"table {self.label} exists: rows appended"
        return StepPlan(target=target, write_mode=mode, action=mode, target_exists=True, detail=detail)

    def fail(self, message: str, hint: str) -> DriverError:
        return DriverError(message, step_id=self.step_id, hint=hint)

    def check_options(self) -> None:
        """The write options alone: upsert needs a key."""
        if self.options.write_mode == "upsert" and not self.options.primary_key:
            raise self.fail("write_mode upsert needs primary_key", "set primary_key: [column, ...]")
        if self.options.dedupe is not None and self.options.write_mode != "upsert":
            raise self.fail(f"dedupe applies to write_mode upsert, not {self.options.write_mode}",
                            "remove dedupe, or set write_mode: upsert")

    def check_input(self) -> None:
        """Before any connection: one name per column, the key present, the types storable."""
        options, names = self.options, self.names
        self.check_options()
        missing = [k for k in dict.fromkeys(options.primary_key) if k not in names]
        if missing:
            raise self.fail(f"primary_key columns {missing} are not in the input", f"input columns: {names}")
        folded = [self.dialect.fold(n) for n in names]
        clashing = sorted({n for n, f in zip(names, folded, strict=True) if folded.count(f) > 1})
        if clashing:
            why = f" ({self.dialect.NAME} column names ignore case)" if self.dialect.FOLDS_CASE else ""
            raise self.fail(f"input columns {clashing} clash{why}", "rename them in an upstream step")
        try:
            self.dialect.check_writable(self.data.schema)
        except UnsupportedType as exc:
            raise self.fail(f"cannot write to {self.dialect.NAME}: {exc}",
                            "cast or drop that column upstream (e.g. in a duckdb.processor step)") from None

    def plan(self, existing: list[str] | None) -> Plan:
        """Decide what happens to the target; refuse a missing table or unknown columns."""
        options = self.options
        if existing is None:
            if not options.create_if_missing:
                raise self.fail(f"table {self.label} does not exist {self.where}",
                                "create it first or set create_if_missing: true")
            plan = Plan(existing, create=True, rebuild=False, empty=False)
        elif options.write_mode == "replace":
            keep = self.dialect.REPLACE_KEEPS_MATCHING_TABLE and self.dialect.same_columns(existing, self.names)
            plan = Plan(existing, create=not keep, rebuild=not keep, empty=keep)
        else:
            unknown = self.dialect.unknown_columns(self.names, existing)
            if unknown:
                raise self.fail(f"input columns {unknown} are not in table {self.label} {self.where}",
                                f"table columns: {existing}; add them, or use write_mode: replace to retype the "
                                "table")
            plan = Plan(existing, create=False, rebuild=False, empty=False)
        if not plan.create:
            self.check_existing(plan)
        return plan

    def create_statements(self, table: str) -> list[str]:
        """The schema (where the dialect creates schemas) and the table `table`, typed from the input."""
        statements = []
        if self.dialect.CREATES_SCHEMAS:
            statements.append(f"CREATE SCHEMA IF NOT EXISTS {self.dialect.quote_ident(self.table.schema)}")
        statements.append(self.dialect.create_table_sql(table, self.data.schema, self.column_types(),
                                                        self.options.primary_key))
        return statements + self.created_sql(table)

    def merge_sql(self, target: str, source: str) -> str:
        return self.dialect.merge_sql(target, source, self.names, self.options.primary_key)

    def reraise(self, exc: BaseException, *, started: bool) -> NoReturn:
        """Raise what `exc` means for the step: Osiris errors as they are, client errors explained; once the
        write has `started`, naming what failed and promising that the table is unchanged."""
        if isinstance(exc, OsirisError) or not isinstance(exc, Exception):
            raise exc
        if isinstance(exc, pa.ArrowException):
            problem = Problem(f"converting the input: {' '.join(str(exc).split())}",
                              "cast the column upstream to a type the table can hold")
        else:
            problem = self.explain(exc)
        if not started:
            raise problem.error(self.step_id) from None
        raise problem.error(self.step_id, doing=f"writing {self.label} {self.where}", unchanged=True) from None


class SessionWriter(TableWriter):
    """A writer that talks to the target over one session: statements, loads and a transaction."""

    STAGE_ORDER: ClassVar[tuple[str, ...]] = ("ctid",)
    """What orders an upsert stage's rows as the input had them (`osiris_drivers.sql.duplicates`)."""

    @abstractmethod
    def commit(self) -> None: ...

    @abstractmethod
    def rollback(self) -> None: ...

    @abstractmethod
    def execute(self, sql: str) -> int:
        """Run one statement in the open transaction; the rows it affected."""

    @abstractmethod
    def query_row(self, sql: str) -> Sequence[Any] | None:
        """Run one query in the open transaction; its first row (None: no row)."""

    @abstractmethod
    def load(self, table: str) -> int:
        """Send every input row into `table` (quoted) within the open transaction; the row count."""

    @abstractmethod
    def stage(self, table: str) -> tuple[str, int | None]:
        """The relation an upsert into `table` merges from (quoted; loaded now unless the input is readable in
        place), and the rows loaded into it (None: not counted)."""

    def fill(self, table: str) -> int:
        """Every input row into `table`: loaded, or for upsert staged and merged. The rows written."""
        if self.options.write_mode != "upsert":
            return self.load(table)
        source, loaded = self.stage(table)
        removed = settle_duplicates(step_id=self.step_id, dialect=self.dialect, stage=source,
                                    keys=self.options.primary_key, dedupe=self.options.dedupe,
                                    order=self.STAGE_ORDER, query_row=self.query_row, execute=self.execute)
        merged = self.execute(self.merge_sql(table, source))
        return merged if self.dialect.MERGE_COUNTS_ROWS or loaded is None else loaded - removed


class TransactionalWriter(SessionWriter):
    """DDL, load and merge in one transaction: the database itself undoes a failed write."""

    @abstractmethod
    def begin(self) -> None: ...

    def finish(self, rows: int) -> int:
        """Commit the load of `rows` rows; the rows the target received."""
        self.commit()
        return rows

    def write(self) -> int:
        started = False
        try:
            self.begin()
            plan = self.plan(self.columns())
            started = True
            if plan.rebuild:
                self.execute(f"DROP TABLE {self.target}")
            if plan.create:
                for statement in self.create_statements(self.target):
                    self.execute(statement)
            elif plan.empty:
                self.execute(self.dialect.empty_sql(self.target))
            return self.finish(self.fill(self.target))
        except BaseException as exc:
            with contextlib.suppress(Exception):  # a dead session: the server discards the transaction
                self.rollback()
            self.reraise(exc, started=started)


class SwapWriter(SessionWriter):
    """For databases whose DDL commits at once: new tables are built aside and renamed into place."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.created: list[str] = []
        """Helper tables to drop if the write fails."""

    @abstractmethod
    def discard_stage(self) -> None:
        """Drop the session's staging table if there is one."""

    @abstractmethod
    def rename_sql(self, pairs: Sequence[tuple[str, str]]) -> str:
        """One statement renaming every (old, new) pair at once."""

    @abstractmethod
    def drop_on_fresh_session(self, sql: str) -> None:
        """Run `sql` on a new connection (the write's own may be gone)."""

    def helper(self, suffix: str) -> str:
        return self.dialect.qualified(TableName(self.table.schema, self.dialect.helper_name(self.table.name, suffix)))

    def write(self) -> int:
        try:
            plan = self.plan(self.columns())
        except BaseException as exc:
            self.reraise(exc, started=False)
        try:
            if plan.create:
                return self._via_new_table(swap=plan.existing is not None)
            rows = self.fill(self.target)
            self.commit()
            self.discard_stage()
            return rows
        except BaseException as exc:
            self._undo()
            self.reraise(exc, started=True)

    def _via_new_table(self, *, swap: bool) -> int:
        """Fill `<table>__osiris_new`, typed from the input, then rename it into place in one statement."""
        new, old = self.helper(NEW_SUFFIX), self.helper(OLD_SUFFIX)
        self.execute(f"DROP TABLE IF EXISTS {new}, {old}")  # leftovers of a crashed run
        self.created.append(new)
        for statement in self.create_statements(new):
            self.execute(statement)
        rows = self.fill(new)
        self.commit()
        self.discard_stage()
        if swap:
            self.execute(self.rename_sql([(self.target, old), (new, self.target)]))
            self.created.clear()
            try:
                self.execute(f"DROP TABLE {old}")
            except Exception as exc:
                self.ctx.logger.warning("could not drop %s after the swap: %s", old, self.explain(exc).message)
        else:
            self.execute(self.rename_sql([(new, self.target)]))
            self.created.clear()
        return rows

    def _undo(self) -> None:
        """Roll back and drop the helper tables, on a fresh session if this one is gone."""
        with contextlib.suppress(Exception):  # a dead session: the server discards its transaction and stage
            self.rollback()
            self.discard_stage()
        if not self.created:
            return
        drop = f"DROP TABLE IF EXISTS {', '.join(self.created)}"
        try:
            self.execute(drop)
        except Exception:
            try:
                self.drop_on_fresh_session(drop)
            except Exception as exc:
                self.ctx.logger.warning("could not drop %s: %s", ", ".join(self.created), self.explain(exc).message)
        self.created.clear()


class StagedWriter(TableWriter):
    """Rows staged by any data path, then moved into the target by one SQL transaction."""

    BATCH_COLUMN: ClassVar[str] = "_osiris_batch"
    with_batch_column = False
    """Each staged row carries the number of the batch that sent it (for retries that never duplicate)."""

    @abstractmethod
    def run_sql(self, sql: str) -> list[dict[str, Any]]:
        """Run statements (`;`-separated) in one transaction; the rows of the last."""

    @abstractmethod
    def load_stage(self, stage: TableName) -> int:
        """Put every input row into the (existing, empty) staging table; the row count."""

    # ------------------------------------------------------------------------------------------------ hooks

    def prepare(self, plan: Plan) -> None:
        """Checks and set-up once the plan is known, before anything is created."""

    def stage_statements(self, stage: str) -> list[str]:
        """The transaction that creates the staging table `stage` (quoted)."""
        return [self.stage_sql(stage)]

    def drop_stage_statements(self, stage: str) -> list[str]:
        return [f"DROP TABLE IF EXISTS {stage}"]

    def stage_ready(self, stage: TableName) -> None:
        """Called once the staging table exists (e.g. to wait until the data path can see it)."""

    def finalize(self, statements: list[str]) -> int:
        """Run the finishing transaction; the rows moved in (its last statement's `rows`)."""
        result = self.run_sql(";\n".join(statements))
        return int(result[-1]["rows"]) if result else 0

    # ------------------------------------------------------------------------------------------------ skeleton

    def stage_sql(self, stage: str) -> str:
        columns = [f"{self.dialect.quote_ident(f.name)} {t}" for f, t in zip(self.data.schema, self.column_types(),
                                                                              strict=True)]
        if self.with_batch_column:
            columns.append(f"{self.dialect.quote_ident(self.BATCH_COLUMN)} INTEGER NOT NULL")
        return f"{self.dialect.CREATE_STAGE} {stage} ({', '.join(columns)})"

    def counted(self, insert: str) -> str:
        """A statement that runs `insert` and returns its row count as `rows`."""
        return f"WITH written AS ({insert} RETURNING 1) SELECT count(*) AS rows FROM written"

    def write(self) -> int:
        stage = TableName(self.table.schema, f"{STAGE_PREFIX}{uuid.uuid4().hex[:12]}")
        staged = self.dialect.qualified(stage)
        try:
            plan = self.plan(self.columns())
            self.prepare(plan)
        except BaseException as exc:
            self.reraise(exc, started=False)
        try:
            try:
                if plan.existing is None and self.dialect.CREATES_SCHEMAS:
                    # Only the schema now (the stage lives there); the table is created when the rows move in.
                    self.run_sql(f"CREATE SCHEMA IF NOT EXISTS {self.dialect.quote_ident(self.table.schema)}")
                self.run_sql(";\n".join(self.stage_statements(staged)))
                self.stage_ready(stage)
            except BaseException as exc:
                self.reraise(exc, started=False)
            self.load_stage(stage)
            if self.options.write_mode == "upsert":
                self._settle_duplicates(staged)
            return self.finalize(self._finish(plan, staged))
        except BaseException as exc:
            self.reraise(exc, started=True)
        finally:
            # The load's own outcome matters more than this clean-up; a leftover stage is named _osiris_stage_*.
            with contextlib.suppress(Exception):
                self.run_sql(";\n".join(self.drop_stage_statements(staged)))

    def _settle_duplicates(self, staged: str) -> None:
        order = ((self.dialect.quote_ident(self.BATCH_COLUMN), "ctid") if self.with_batch_column else ("ctid",))

        def first_row(sql: str) -> list[Any] | None:
            rows = self.run_sql(sql)
            return list(rows[0].values()) if rows else None

        settle_duplicates(step_id=self.step_id, dialect=self.dialect, stage=staged, keys=self.options.primary_key,
                          dedupe=self.options.dedupe, order=order, query_row=first_row,
                          execute=lambda sql: len(self.run_sql(sql)))

    def _finish(self, plan: Plan, staged: str) -> list[str]:
        """One transaction: create, rebuild or empty the target as planned, then move the rows in."""
        statements = []
        if plan.rebuild:
            statements.append(f"DROP TABLE {self.target}")
        if plan.create:
            statements.append(self.dialect.create_table_sql(self.target, self.data.schema, self.column_types(),
                                                            self.options.primary_key))
            statements.extend(self.created_sql(self.target))
        elif plan.empty:
            statements.append(self.dialect.empty_sql(self.target))
        move = (self.merge_sql(self.target, staged) if self.options.write_mode == "upsert"
                else self.dialect.insert_sql(self.target, staged, self.names))
        statements.append(self.counted(move))
        return statements
