"""The one core of the SQL writers: write options with one set of defaults, input checks, the plan, and the
load → stage → swap/merge skeletons. A writer subclasses one skeleton and implements only its database's hooks.

Every skeleton is atomic: a failure at any point leaves the target as it was and drops what the write created.

- `TransactionalWriter` (PostgreSQL over psycopg2, DuckDB): DDL, load and merge share one transaction.
- `SwapWriter` (MySQL, whose DDL commits at once): a missing or replaced table is built as `<table>__osiris_new`
  and swapped in with one rename; appends load in one transaction; upserts load a temporary stage and merge.
- `StagedWriter` (Supabase without a psycopg2 transaction): the rows go to a staging table by any data path,
  then one SQL transaction creates, rebuilds or empties the target and moves them in.

Defaults (the four SQL writers' specs declare the same): `write_mode: append`, `primary_key: []`,
`create_if_missing: true` (a missing table is created from the input's Arrow schema), `on_schema_change:
append_new_columns`, no `delete_missing`, no `hard_delete_column`. The policies live in their own modules
(`schema_change`, `deletes`, `scd2`, `moves`); the skeletons apply them in the same atomic write
(docs/write_modes.md).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import uuid
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, ClassVar, Literal, NoReturn

import pyarrow as pa
from pydantic import Field

from osiris_core.driver import ArrowData, DriverConfig, StepContext, StepPlan
from osiris_core.errors import DriverError, OsirisError
from osiris_drivers.connection import ConnectionSettings, Problem
from osiris_drivers.sql import scd2
from osiris_drivers.sql.deletes import DELETED_AT, describe_deletions, empty_input_refused
from osiris_drivers.sql.dialect import Dialect, TableName, UnsupportedType
from osiris_drivers.sql.duplicates import Dedupe, settle_duplicates
from osiris_drivers.sql.input_shape import (
    FLAGGED,
    INPUT_ROWS,
    NULL_KEYS,
    count_flagged,
    count_null_keys,
    count_rows,
    select_columns,
)
from osiris_drivers.sql.moves import Move, MoveSpec, moves
from osiris_drivers.sql.schema_change import (
    DEFAULT_POLICY,
    SchemaChange,
    SchemaChangePolicy,
    SchemaChangeRefused,
    decide,
    diff,
)
from osiris_drivers.sql.state import state_setup_sql, state_statements

WriteMode = Literal["append", "upsert", "replace", "scd2"]
KEYED_MODES = ("upsert", "scd2")
"""The modes that merge staged rows by primary_key (and so can apply deletions)."""
ColumnName = Annotated[str, Field(min_length=1)]
NEW_SUFFIX = "__osiris_new"
OLD_SUFFIX = "__osiris_old"
STAGE_SUFFIX = "__osiris_stage"
STAGE_PREFIX = "_osiris_stage_"
MERGE_SAVEPOINT = "osiris_merge"
"""The savepoint an upsert's merge runs in where the merge itself refuses duplicate keys."""
COUNTS_COLUMN = "policy_counts"
"""StagedWriter: the finishing transaction's policy row counts (JSON {metric: rows}), beside `rows`."""


class TableWriteOptions(DriverConfig):
    """The target and write semantics of every SQL writer (`table` may be qualified where the dialect says)."""

    table: str = Field(min_length=1)
    write_mode: WriteMode = "append"
    primary_key: list[ColumnName] = Field(default_factory=list)
    create_if_missing: bool = True
    on_schema_change: SchemaChangePolicy = DEFAULT_POLICY
    delete_missing: Literal["hard", "soft"] | None = None
    hard_delete_column: ColumnName | None = None
    dedupe: Dedupe | None = None
    """Upsert input rows that share a key: None fails the write (naming one); keep_last keeps the last in input
    order (`osiris_drivers.sql.duplicates`)."""


def full_refresh_options(options: TableWriteOptions) -> TableWriteOptions:
    """What `--full-refresh` makes of a write under an incremental upstream (the input is the full extract).

    It becomes `replace` unless a rebuild would lose what the target keeps beyond the source's rows: scd2 history,
    soft-delete stamps (`delete_missing: soft`), keys deleted through `hard_delete_column`. Those keep their mode
    and re-sync with the full extract (their `delete_missing`, correct now, closes/stamps/deletes the keys the
    source lost). `delete_missing: hard` is what `replace` does anyway."""
    if options.write_mode == "scd2" or options.delete_missing == "soft" or options.hard_delete_column is not None:
        return options
    return options.model_copy(update={"write_mode": "replace", "delete_missing": None})


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
    change: SchemaChange = field(default_factory=SchemaChange)
    """What `on_schema_change` (and a missing `_osiris_deleted_at`) does to an existing target's columns."""


class TableWriter(ABC):
    """One write of `data` into `table`: the checks and the plan every SQL writer shares."""

    dialect: ClassVar[Dialect]

    def __init__(self, step_id: str, options: TableWriteOptions, table: TableName, data: ArrowData,
                 ctx: StepContext, *, settings: ConnectionSettings) -> None:
        if ctx.full_refresh:  # `osiris run --full-refresh` under an incremental upstream: reload the target
            options = full_refresh_options(options)
        self.step_id = step_id
        self.options = options
        self.settings = settings
        """The connection family's settings: where the table lives, how its client's errors read."""
        self.table = table
        self.data = data
        self.ctx = ctx
        self.names: list[str] = data.schema.names
        self.target = self.dialect.qualified(table)
        self.run_at = dt.datetime.now(dt.UTC)
        """The run's one timestamp (µs): scd2's `_osiris_valid_from`/`_valid_to`, `_osiris_deleted_at`."""
        self.counts: dict[str, int] = {}
        """Rows counted by the policies' statements (`moves.ROWS_DELETED`, …), reported as metrics once committed."""

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

    def table_types(self, existing: list[str]) -> dict[str, str | None]:
        """The target's column types by name, as the database spells them (None: not known, never compared)."""
        return dict.fromkeys(existing)

    def input_changed(self) -> None:  # noqa: B027 (a hook most writers leave empty)
        """`self.data` was reshaped after the plan (columns left out, the scd2 row hash added)."""

    def kept_on_rebuild(self, table: str) -> list[str]:
        """Before `replace` rebuilds the target: the statements that give the new table `table` (quoted) what the
        old one had and the new schema allows (grants, indexes, comments); refuses what a rebuild would break
        (dependent views). Runs in the write's transaction, after the new table is created."""
        return []

    def check_swap(self, new: str) -> None:  # noqa: B027 (a hook most writers leave empty)
        """Before the filled table `new` (quoted) is renamed into the target's place: refuse what the swap would
        break (MySQL: views that would no longer work)."""
    # --------------------------------------------------------------- incremental state (osiris_drivers.sql.state)

    def state_setup_sql(self) -> list[str]:
        """Creates the state table when this write commits incremental state (before or in its transaction)."""
        return state_setup_sql(self.dialect, self.table.schema, self.ctx)

    def state_sql(self) -> list[str]:
        """The state upserts the skeletons run in the rows' own transaction, once every row is loaded."""
        return state_statements(self.dialect, self.table.schema, self.ctx)

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
            rows = self.write()
        finally:
            self.close()
        for name, value in self.counts.items():
            if not name.startswith("_"):  # the input_shape counters are not metrics
                self.ctx.metric(name, value, "rows")
        return rows

    def dry_run(self, target: str, *, input_known: bool) -> StepPlan:
        """What `run` would do to the target (`osiris run --dry-run`), decided with read-only look-ups: connect,
        find the table's columns, plan (the same checks and errors as a write). Nothing is created or written.

        The data is `planned_input(columns)`; without `input_known` the input's columns are not checked here
        (the run checks them)."""
        self.check_options()
        try:
            try:
                self.open()
                plan = self.plan(self.columns(), input_known=input_known)
            except BaseException as exc:
                self.reraise(exc, started=False)
        finally:
            self.close()
        options = self.options
        mode = options.write_mode
        policies = describe_deletions(scd2=mode == "scd2", delete_missing=options.delete_missing,
                                      flag=options.hard_delete_column)
        if plan.existing is None:
            key = f" (primary key {self.options.primary_key})" if self.options.primary_key else ""
            how = "then the rows written" if mode != "scd2" else "then the first versions inserted"
            return StepPlan(target=target, write_mode=mode, action="create", target_exists=False,
                            detail=f"table {self.label} does not exist {self.where}: created from the input's "
                                   f"columns{key}, {how}{policies}")
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
        elif mode == "scd2":
            detail = (f"table {self.label} exists: changed rows close their current version and get a new one "
                      f"(by {self.options.primary_key}); unchanged rows stay")
        else:
            detail = f"table {self.label} exists: rows appended"
        if plan.change.alters or plan.change.skip_input:
            detail += f"; on_schema_change {self.options.on_schema_change} {plan.change.describe()}"
        return StepPlan(target=target, write_mode=mode, action=mode, target_exists=True, detail=detail + policies)

    def fail(self, message: str, hint: str) -> DriverError:
        return DriverError(message, step_id=self.step_id, hint=hint)

    def check_options(self) -> None:
        """The write options alone: upsert and scd2 need a key; deletions need upsert or scd2; dedupe needs upsert."""
        options = self.options
        if options.write_mode in KEYED_MODES and not options.primary_key:
            raise self.fail(f"write_mode {options.write_mode} needs primary_key", "set primary_key: [column, ...]")
        if options.write_mode not in KEYED_MODES:
            for name in ("delete_missing", "hard_delete_column"):
                if getattr(options, name) is not None:
                    raise self.fail(f"{name} needs write_mode upsert or scd2 (not {options.write_mode})",
                                    f"set write_mode: upsert or scd2, or remove {name}")
        if options.dedupe is not None and options.write_mode != "upsert":
            raise self.fail(f"dedupe applies to write_mode upsert, not {options.write_mode}",
                            "remove dedupe, or set write_mode: upsert")

    @property
    def reserved(self) -> list[str]:
        """The writer's own columns in the target (never input columns, never 'removed' by a schema change)."""
        own = list(scd2.COLUMNS) if self.options.write_mode == "scd2" else []
        return own + ([DELETED_AT] if self.options.delete_missing == "soft" and not own else [])

    @property
    def written(self) -> list[str]:
        """The input columns that go into the target (all but `hard_delete_column`)."""
        return [n for n in self.names if n != self.options.hard_delete_column]

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
        own = {self.dialect.fold(n) for n in [*self.reserved, scd2.ROW_HASH]} if self.reserved else set()
        taken = [n for n in names if self.dialect.fold(n) in own]
        if taken:
            raise self.fail(f"input columns {taken} are the writer's own (write_mode {options.write_mode})",
                            "rename or drop them upstream")
        flag = options.hard_delete_column
        if flag is not None:
            if flag not in names:
                raise self.fail(f"hard_delete_column '{flag}' is not in the input", f"input columns: {names}")
            if flag in options.primary_key or not pa.types.is_boolean(self.data.schema.field(flag).type):
                raise self.fail(f"hard_delete_column '{flag}' must be a boolean non-key column "
                                f"(it is {self.data.schema.field(flag).type})",
                                "cast it to BOOLEAN upstream (true: delete the key)")
        try:
            self.dialect.check_writable(self.data.schema)
        except UnsupportedType as exc:
            raise self.fail(f"cannot write to {self.dialect.NAME}: {exc}",
                            "cast or drop that column upstream (e.g. in a duckdb.processor step)") from None

    def plan(self, existing: list[str] | None, *, input_known: bool = True) -> Plan:
        """Decide what happens to the target; refuse a missing table or columns the schema policy refuses."""
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
            change = self.schema_change(existing) if input_known else SchemaChange()
            plan = Plan(existing, create=False, rebuild=False, empty=False, change=change)
        if not plan.create:
            self.check_existing(plan)
        return plan

    def schema_change(self, existing: list[str]) -> SchemaChange:
        """`on_schema_change` applied to the input vs the existing target, plus the policy columns it lacks."""
        options, dialect = self.options, self.dialect
        have = {dialect.fold(c) for c in existing}
        if options.write_mode == "scd2":
            lacking = [c for c in scd2.COLUMNS if dialect.fold(c) not in have]
            if lacking:
                raise self.fail(f"table {self.label} {self.where} has no scd2 columns {lacking}",
                                "write scd2 history to a new table (the writer creates it), or use write_mode "
                                "upsert")
        compare = options.on_schema_change in ("fail", "sync_all_columns")
        types = self.table_types(existing) if compare else dict.fromkeys(existing)
        flag = options.hard_delete_column
        inputs = [(f.name, t, pa.types.is_null(f.type))
                  for f, t in zip(self.data.schema, self.column_types(), strict=True) if f.name != flag]
        try:
            change = decide(options.on_schema_change, diff(dialect, inputs, types, self.reserved), self.label)
        except SchemaChangeRefused as exc:
            raise self.fail(exc.message, exc.hint) from None
        if options.delete_missing == "soft" and options.write_mode == "upsert" and dialect.fold(DELETED_AT) not in have:
            change = SchemaChange(add=(*change.add, (DELETED_AT, dialect.TIMESTAMP_TYPE)), drop=change.drop,
                                  retype=change.retype, skip_input=change.skip_input, diff=change.diff)
        return change

    def shape_input(self, plan: Plan) -> None:
        """Once planned: leave out the input columns the plan skips; for scd2, add the row hash."""
        skip = {self.dialect.fold(n) for n in plan.change.skip_input}
        changed = False
        if skip:
            self.data = select_columns(self.data, [n for n in self.names if self.dialect.fold(n) not in skip])
            self.names = self.data.schema.names
            changed = True
        if self.options.write_mode == "scd2":
            hashed = [n for n in self.written if n not in self.options.primary_key]
            self.data = scd2.with_row_hash(self.data, hashed)
            changed = True
        if self.options.hard_delete_column is not None and not self.dialect.MERGE_COUNTS_ROWS:
            self.data = count_flagged(self.data, self.options.hard_delete_column, self.counts)
            changed = True
        if self.options.delete_missing and plan.existing is not None:
            self.data = count_rows(self.data, self.counts)
            changed = True
        if self.options.write_mode in KEYED_MODES:
            self.data = count_null_keys(self.data, self.options.primary_key, self.counts)
            changed = True
        if changed:
            self.names = self.data.schema.names
            self.input_changed()

    def table_definition(self) -> tuple[pa.Schema, list[str], list[str]]:
        """A created target's columns (the written input columns, then the policy columns), types and key."""
        options, dialect = self.options, self.dialect
        fields, types = [], []
        for f, t in zip(self.data.schema, self.column_types(), strict=True):
            if f.name != options.hard_delete_column:
                fields.append(f)
                types.append(dialect.HASH_TYPE if options.write_mode == "scd2" and f.name == scd2.ROW_HASH else t)
        key = list(options.primary_key)
        if options.write_mode == "scd2":
            fields += [pa.field(scd2.VALID_FROM, pa.timestamp("us"), nullable=False),
                       pa.field(scd2.VALID_TO, pa.timestamp("us"))]
            types += [dialect.TIMESTAMP_TYPE, dialect.TIMESTAMP_TYPE]
            key.append(scd2.VALID_FROM)
        elif options.delete_missing == "soft":
            fields.append(pa.field(DELETED_AT, pa.timestamp("us")))
            types.append(dialect.TIMESTAMP_TYPE)
        return pa.schema(fields), types, key

    def table_statements(self, table: str) -> list[str]:
        """CREATE TABLE `table` (quoted) as `table_definition` says, its scd2 index, then `created_sql`."""
        schema, types, key = self.table_definition()
        statements = [self.dialect.create_table_sql(table, schema, types, key)]
        if self.options.write_mode == "scd2" and self.dialect.PARTIAL_UNIQUE_INDEX:
            index = self.dialect.helper_name(self.table.name, scd2.CURRENT_INDEX_SUFFIX)
            statements.append(scd2.current_index_sql(self.dialect, table, index, self.options.primary_key))
        return statements + self.created_sql(table)

    def create_statements(self, table: str) -> list[str]:
        """The schema (where the dialect creates schemas) and the table `table`, typed from the input."""
        statements = []
        if self.dialect.CREATES_SCHEMAS:
            statements.append(f"CREATE SCHEMA IF NOT EXISTS {self.dialect.quote_ident(self.table.schema)}")
        return statements + self.table_statements(table)

    def check_staged(self) -> None:
        """Once the input is staged: a NULL key is refused (upsert, scd2), and so is an input without rows with
        `delete_missing` into an existing table."""
        mode, delete_missing = self.options.write_mode, self.options.delete_missing
        if self.counts.get(NULL_KEYS):
            raise self.fail(f"primary_key {self.options.primary_key} has a NULL in {self.counts[NULL_KEYS]} input "
                            f"rows: write_mode {mode} matches rows by key and NULL matches none (each run would add "
                            "such a row again); the write was refused and the table left unchanged",
                            "filter those rows upstream or fill their key (e.g. COALESCE in a duckdb.processor step)")
        if delete_missing and self.counts.get(INPUT_ROWS) == 0:
            raise self.fail(*empty_input_refused(self.label, self.where, scd2=mode == "scd2",
                                                 delete_missing=delete_missing))

    def moves(self, target: str, source: str) -> list[Move]:
        """The statements that move the staged `source` into `target` for upsert or scd2 (the last writes)."""
        mode = self.options.write_mode
        assert mode in ("upsert", "scd2")
        spec = MoveSpec(mode=mode, names=self.written, keys=self.options.primary_key,
                        delete_missing=self.options.delete_missing, flag=self.options.hard_delete_column,
                        at=self.dialect.timestamp_sql(self.run_at))
        return moves(self.dialect, spec, target, source)

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

    def duplicate_keys_refused(self, exc: BaseException) -> bool:
        """`exc` is the merge refusing a key twice (where `Dialect.MERGE_REFUSES_DUPLICATE_KEYS`)."""
        return False

    def fill(self, table: str) -> int:
        """Every input row into `table`: loaded, or for upsert and scd2 staged and moved in (with the deletions
        the policies ask for, counted in `counts`). The rows written."""
        if self.options.write_mode not in KEYED_MODES:
            return self.load(table)
        source, loaded = self.stage(table)
        self.check_staged()
        removed = 0
        options = self.options
        keys = {self.dialect.fold(k) for k in options.primary_key}
        # Where the merge itself refuses a key twice (every row it sees updates non-key columns), the duplicate
        # check runs only once it did, to name the key; the merge runs in a savepoint so the stage survives.
        merge_checks = (options.write_mode == "upsert" and options.dedupe is None
                        and options.hard_delete_column is None and self.dialect.MERGE_REFUSES_DUPLICATE_KEYS
                        and any(self.dialect.fold(n) not in keys for n in self.written))
        if options.write_mode == "upsert" and not merge_checks:  # scd2 refuses a key twice in its own moves
            removed = self.settle_duplicates(source)
        if merge_checks:
            self.execute(f"SAVEPOINT {MERGE_SAVEPOINT}")
        try:
            rows = self.run_moves(table, source)
        except Exception as exc:
            if not (merge_checks and self.duplicate_keys_refused(exc)):
                raise
            self.execute(f"ROLLBACK TO SAVEPOINT {MERGE_SAVEPOINT}")
            self.settle_duplicates(source)  # raises, naming the key
            raise
        self.check_staged()  # again: an input read in place (DuckDB) is only counted once the moves read it
        if options.write_mode == "scd2" or self.dialect.MERGE_COUNTS_ROWS or loaded is None:
            return rows
        return loaded - removed - self.counts.pop(FLAGGED, 0)  # the staged rows, less duplicates and flagged ones

    def settle_duplicates(self, source: str) -> int:
        """`duplicates.settle_duplicates` on the staged `source`: the rows deleted (keep_last), or an error."""
        return settle_duplicates(step_id=self.step_id, dialect=self.dialect, stage=source,
                                 keys=self.options.primary_key, dedupe=self.options.dedupe, order=self.STAGE_ORDER,
                                 query_row=self.query_row, execute=self.execute)

    def run_moves(self, table: str, source: str) -> int:
        """Run the moves in order, counting the policies' rows in `counts`; the rows the last one wrote."""
        rows = 0
        for move in self.moves(table, source):
            count = self.execute(move.sql)
            if move.metric is None:
                rows = count
            else:
                self.counts[move.metric] = self.counts.get(move.metric, 0) + count
        return rows


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
            self.shape_input(plan)
            started = True
            kept = self.kept_on_rebuild(self.target) if plan.rebuild else []
            if plan.rebuild:
                self.execute(f"DROP TABLE {self.target}")
            if plan.create:
                for statement in [*self.create_statements(self.target), *kept]:
                    self.execute(statement)
            elif plan.empty:
                self.execute(self.dialect.empty_sql(self.target))
            for statement in plan.change.statements(self.dialect, self.target):
                self.execute(statement)
            rows = self.fill(self.target)
            for statement in [*self.state_setup_sql(), *self.state_sql()]:
                self.execute(statement)
            return self.finish(rows)
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
            self.shape_input(plan)
            for statement in self.state_setup_sql():  # DDL commits at once: before any row is loaded
                self.execute(statement)
            if plan.create:
                return self._via_new_table(swap=plan.existing is not None)
            if plan.change.alters:
                return self._via_new_table(swap=True, change=plan.change)
            rows = self.fill(self.target)
            for statement in self.state_sql():
                self.execute(statement)
            self.commit()
            self.discard_stage()
            return rows
        except BaseException as exc:
            self._undo()
            self.reraise(exc, started=True)

    def _via_new_table(self, *, swap: bool, change: SchemaChange | None = None) -> int:
        """Fill `<table>__osiris_new`, then rename it into place in one statement. Without `change` the new table is
        typed from the input; with it, it is a copy of the target (indexes and comments included) with the changed
        columns and the target's rows, so the ALTERs (which commit at once here) never touch the target."""
        new, old = self.helper(NEW_SUFFIX), self.helper(OLD_SUFFIX)
        self.execute(f"DROP TABLE IF EXISTS {new}, {old}")  # leftovers of a crashed run
        self.created.append(new)
        if change is None:
            statements = self.create_statements(new) + (self.kept_on_rebuild(new) if swap else [])
        else:
            statements = [self.dialect.copy_table_sql(new, self.target), *change.statements(self.dialect, new)]
        for statement in statements:
            self.execute(statement)
        if change is not None:
            dropped = {self.dialect.fold(n) for n in change.drop}
            kept = self.dialect.column_list([c for c in self.columns() or [] if self.dialect.fold(c) not in dropped])
            self.execute(f"INSERT INTO {new} ({kept}) SELECT {kept} FROM {self.target}")
        rows = self.fill(new)
        self.commit()
        self.discard_stage()
        if swap:
            self.check_swap(new)
            self.execute(self.rename_sql([(self.target, old), (new, self.target)]))
            self.created.clear()
            try:
                self.execute(f"DROP TABLE {old}")
            except Exception as exc:
                self.ctx.logger.warning("could not drop %s after the swap: %s", old, self.explain(exc).message)
        else:
            self.execute(self.rename_sql([(new, self.target)]))
            self.created.clear()
        try:  # only once the rows are in place: re-reading is safe, skipping is not
            for statement in self.state_sql():
                self.execute(statement)
            self.commit()
        except Exception as exc:
            raise self.fail(f"the rows were written to {self.label} {self.where}, but committing the incremental "
                            f"state failed: {self.explain(exc).message}",
                            "run again: the rows since the last committed cursor are read and upserted again") from None
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
        """Run the finishing transaction; the rows moved in (its last statement's `rows`; its `counts`, when the
        policies counted rows, go to `self.counts`)."""
        result = self.run_sql(";\n".join(statements))
        if result and result[-1].get(COUNTS_COLUMN):
            counts = result[-1][COUNTS_COLUMN]
            for name, value in (json.loads(counts) if isinstance(counts, str) else counts).items():
                self.counts[str(name)] = int(value)
        return int(result[-1]["rows"]) if result else 0

    # ------------------------------------------------------------------------------------------------ skeleton

    def stage_sql(self, stage: str) -> str:
        columns = [f"{self.dialect.quote_ident(f.name)} {t}" for f, t in zip(self.data.schema, self.column_types(),
                                                                              strict=True)]
        if self.with_batch_column:
            columns.append(f"{self.dialect.quote_ident(self.BATCH_COLUMN)} INTEGER NOT NULL")
        return f"{self.dialect.CREATE_STAGE} {stage} ({', '.join(columns)})"

    def counted(self, insert: str, extra: str = "") -> str:
        """A statement that runs `insert` and returns its row count as `rows` (and the `extra` select items)."""
        return f"WITH written AS ({insert} RETURNING 1) SELECT count(*) AS rows{extra} FROM written"

    def write(self) -> int:
        stage = TableName(self.table.schema, f"{STAGE_PREFIX}{uuid.uuid4().hex[:12]}")
        staged = self.dialect.qualified(stage)
        try:
            plan = self.plan(self.columns())
            self.prepare(plan)
            self.shape_input(plan)
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
            self.check_staged()
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
        kept = self.kept_on_rebuild(self.target) if plan.rebuild else []
        if plan.rebuild:
            statements.append(f"DROP TABLE {self.target}")
        if plan.create:
            statements += [*self.table_statements(self.target), *kept]
        elif plan.empty:
            statements.append(self.dialect.empty_sql(self.target))
        statements += plan.change.statements(self.dialect, self.target)
        extra = ""
        if self.options.write_mode in KEYED_MODES:
            *policies, last = self.moves(self.target, staged)
            move = last.sql
            if policies:  # each policy statement's row count, kept in a table the commit drops
                counts = self.dialect.quote_ident(f"_osiris_counts_{uuid.uuid4().hex[:12]}")
                statements.append(f"CREATE TEMPORARY TABLE {counts} (metric TEXT, n BIGINT) ON COMMIT DROP")
                statements += [f"WITH moved AS ({m.sql} RETURNING 1) INSERT INTO {counts} "
                               f"SELECT '{m.metric}', count(*) FROM moved" for m in policies]
                extra = (f", (SELECT CAST(json_object_agg(metric, n) AS TEXT) FROM (SELECT metric, sum(n) AS n "
                         f"FROM {counts} GROUP BY metric) AS c) AS {COUNTS_COLUMN}")
        else:
            move = self.dialect.insert_sql(self.target, staged, self.written)
        statements.extend([*self.state_setup_sql(), *self.state_sql()])
        statements.append(self.counted(move, extra))
        return statements
