"""`supabase.writer`: COPY or PostgREST for the rows, psycopg2 or HTTP SQL for the DDL, atomic either way.

With pg_dsn and the psycopg2 channel it is `postgres.writer`'s `CopyWriter` (one transaction). Otherwise it is
the shared staged skeleton (`osiris_drivers.sql.writer.StagedWriter`): the rows go to an UNLOGGED staging table
(COPY over pg_dsn, or PostgREST batches with retries that never duplicate) and one SQL transaction on the DDL
channel moves them into the target. On both paths, what Supabase adds:

- grants for the API roles in the transaction that creates a table (`privileges`);
- the stage is used through PostgREST only once its schema cache shows it (its own wait budget);
- a load marker in the load's transaction (`load_marker`): when the answer to the final transaction is lost
  (gateway timeout, dropped connection), the writer finds out whether it committed and reports that.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import Field

from osiris_core.driver import ArrowData, Driver, StepContext, StepInputs, StepOutputs, single_input
from osiris_core.errors import DriverError
from osiris_core.state import StateStore
from osiris_drivers.connection import UNCHANGED
from osiris_drivers.postgres.connection import pg_connection
from osiris_drivers.postgres.copy import CopyWriter, copy_into
from osiris_drivers.postgres.dialect import POSTGRES
from osiris_drivers.postgres.rebuild import column_types_sql, kept_on_rebuild
from osiris_drivers.sql.dialect import TableName
from osiris_drivers.sql.state import SqlStateStore, state_table
from osiris_drivers.sql.writer import Plan, StagedWriter, TableWriteOptions, TableWriter
from osiris_drivers.step_io import report_written
from osiris_drivers.supabase.connection import DdlChannelName, SupabaseSettings
from osiris_drivers.supabase.ddl_channel import DdlChannel, Psycopg2Channel, may_have_committed
from osiris_drivers.supabase.load_marker import LoadMarker, Outcome, RunSql
from osiris_drivers.supabase.privileges import ROLES_SQL, Grants
from osiris_drivers.supabase.rest import Rest, RestError
from osiris_drivers.supabase.rest_stage import MAX_BATCH_ROWS, RestStage

RELOAD_SCHEMA_SQL = "NOTIFY pgrst, 'reload schema'"
"""PostgREST learns about new tables (the stage, a created target) only after this (asynchronously)."""
PROBE_TABLE = "_osiris_schema_probe"
CREATED_TABLE_WAIT_S = 10.0
"""How long the writer waits, after it committed, for PostgREST to show a table it created (best effort)."""


class SupabaseWriterConfig(SupabaseSettings, TableWriteOptions):
    schema_: str = Field(default="public", alias="schema")
    ddl_channel: DdlChannelName = "auto"
    batch_size: int = Field(default=1000, ge=1, le=MAX_BATCH_ROWS)


class SupabaseLoad:
    """What both Supabase write paths add to their skeleton: grants, the load marker and its verdict."""

    config: SupabaseWriterConfig
    step_id: str
    ctx: StepContext
    table: TableName
    marker: LoadMarker
    grants: Grants
    created = False
    marked = True
    """The load has a marker (False: this user cannot create `_osiris_loads`; a lost answer stays unknown)."""

    def setup_load(self) -> None:
        self.marker = LoadMarker(self.table.schema, str(self.table))
        self.grants = Grants(frozenset(), self.config.key_role)

    def read_grants(self, run: RunSql) -> None:
        self.grants = Grants.from_rows((r["rolname"] for r in run(ROLES_SQL)), self.config.key_role)

    def ensure_marker(self, run: RunSql) -> None:
        """The marker table; a user who may not create or write it loads without a marker (and is told)."""
        try:
            self.marked = self.marker.ensure(run, self.grants.private_sql(self.marker.table))
            why = f"the connection's user may not write {self.marker.table}"
        except Exception as exc:
            self.marked = False
            why = self.config.explain(exc, "write").message
        if not self.marked:
            self.ctx.logger.warning("loading without a load marker (%s): if the answer to the final transaction is "
                                    "lost, its outcome cannot be told", why)

    def begin_statements(self) -> list[str]:
        return self.marker.begin_sql() if self.marked else []

    def private_state(self, statements: list[str]) -> list[str]:
        """The incremental state table's set-up, kept away from the API roles (like the load marker)."""
        if not statements:
            return statements
        return [*statements, *self.grants.private_sql(POSTGRES.qualified(state_table(self.table.schema)))]

    def grants_for_created(self, table: str) -> list[str]:
        self.created = True
        return [*self.grants.created_sql(self.table.schema, table), RELOAD_SCHEMA_SQL]

    def settle(self, exc: Exception, fence: RunSql, doing: str) -> int:
        """After the final transaction failed with `exc`: its rows if the marker shows it committed; otherwise
        the step's error, saying what the marker showed."""
        if not may_have_committed(exc):
            raise exc
        outcome = self.marker.resolve(fence) if self.marked else Outcome(None)
        explained = self.config.explain(exc, "write")
        self.ctx.event("commit_resolved", load_id=self.marker.load_id, committed=outcome.committed,
                       rows=outcome.rows, error=explained.message)
        if outcome.committed:
            return outcome.rows
        if outcome.committed is False:
            raise DriverError(f"{doing} failed: {explained.message}; the load marker shows it did not commit",
                              step_id=self.step_id, hint=f"{UNCHANGED}; {explained.hint or 'retry the run'}",
                              transient=explained.transient)
        if not self.marked:
            raise DriverError(f"{doing}: the outcome is unknown: {explained.message} (no load marker)",
                              step_id=self.step_id,
                              hint=f"check {self.table} before running again; let the connection's user create "
                                   f"{self.marker.table} so the writer can tell next time")
        raise DriverError(
            f"{doing}: the outcome is unknown: {explained.message}, and the load marker could not be read",
            step_id=self.step_id,
            hint=f"before running again, check SELECT committed, rows FROM {self.marker.table} WHERE load_id = "
                 f"'{self.marker.load_id}' (committed: the rows are in; no row: they are not)")


class StagedSupabaseWriter(SupabaseLoad, StagedWriter):
    dialect = POSTGRES

    def __init__(self, step_id: str, config: SupabaseWriterConfig, table: TableName, data: ArrowData,
                 ctx: StepContext, *, channel: DdlChannel) -> None:
        super().__init__(step_id, config, table, data, ctx, settings=config)
        self.config = config
        self.channel = channel
        self.with_batch_column = not config.pg_dsn
        self.rest: Rest | None = None
        """PostgREST, when the rows go that way (no pg_dsn); made in `prepare`."""
        self.setup_load()

    def open(self) -> None:
        """Every statement opens its own session on the channel."""

    def close(self) -> None:
        """Nothing stays open."""

    def columns(self) -> list[str] | None:
        return self.channel.table_columns(self.table.schema, self.table.name)

    def run_sql(self, sql: str) -> list[dict[str, Any]]:
        return self.channel.run(sql)

    def table_types(self, existing: list[str]) -> dict[str, str | None]:
        return {str(r["name"]): str(r["type"]) for r in self.run_sql(column_types_sql(self.target))}

    def kept_on_rebuild(self, table: str) -> list[str]:
        return kept_on_rebuild(self, self.run_sql, table)

    def prepare(self, plan: Plan) -> None:
        """Before anything is created: the schema is exposed (PostgREST path), the roles, the marker table."""
        if not self.config.pg_dsn:
            self.rest = self.config.rest(self.config.key(self.step_id), self.table.schema)
            try:
                self.rest.call(self.rest.table(PROBE_TABLE).select("*").limit(0).execute)
            except RestError as exc:
                if not exc.not_visible:
                    raise
        self.read_grants(self.run_sql)
        self.ensure_marker(self.run_sql)

    def stage_statements(self, stage: str) -> list[str]:
        statements = [self.stage_sql(stage)]
        if self.rest is not None:  # retried batches are deleted by number: find them without a scan
            statements += [f"CREATE INDEX ON {stage} USING brin ({POSTGRES.quote_ident(self.BATCH_COLUMN)})",
                           *self.grants.stage_sql(stage), RELOAD_SCHEMA_SQL]
        return statements

    def drop_stage_statements(self, stage: str) -> list[str]:
        return [f"DROP TABLE IF EXISTS {stage}", *([RELOAD_SCHEMA_SQL] if self.rest is not None else [])]

    def stage_ready(self, stage: TableName) -> None:
        if self.rest is None:
            return
        try:
            self.rest.wait_visible(stage.name)
        except RestError as exc:
            if exc.not_visible:
                raise DriverError(
                    f"PostgREST did not show the staging table {stage} within its wait ({exc.describe()})",
                    step_id=self.step_id, transient=True,
                    hint="PostgREST reloads its schema cache on NOTIFY pgrst: check that it listens "
                         "(db-channel-enabled) and is not overloaded, then retry; or add pg_dsn") from None
            raise

    def load_stage(self, stage: TableName) -> int:
        if self.rest is None:  # COPY over pg_dsn, committed on its own: the stage is private
            assert self.config.pg_dsn is not None
            with pg_connection(self.config.pg_dsn) as connection, connection.cursor() as cursor:
                rows = copy_into(cursor, POSTGRES.qualified(stage), self.names, self.data)
                connection.commit()
            return rows
        rest = RestStage(self.rest, step_id=self.step_id, batch_size=self.config.batch_size,
                         batch_column=self.BATCH_COLUMN, ctx=self.ctx,
                         explain=lambda exc: self.config.explain(exc, "write"))
        return rest.write(stage.name, self.data)

    def created_sql(self, table: str) -> list[str]:
        return self.grants_for_created(table)

    def state_setup_sql(self) -> list[str]:
        return self.private_state(super().state_setup_sql())

    def counted(self, insert: str, extra: str = "") -> str:
        return self.marker.counted_sql(insert, extra) if self.marked else super().counted(insert, extra)

    def finalize(self, statements: list[str]) -> int:
        try:
            return super().finalize([*self.begin_statements(), *statements])
        except Exception as exc:
            return self.settle(exc, self.run_sql, f"writing {self.label} {self.where}")


class SupabaseCopyWriter(SupabaseLoad, CopyWriter):
    """`CopyWriter` (one psycopg2 transaction) with the grants and the load marker."""

    def __init__(self, step_id: str, config: SupabaseWriterConfig, table: TableName, data: ArrowData,
                 ctx: StepContext, *, dsn: str) -> None:
        super().__init__(step_id, config, table, data, ctx, dsn=dsn, settings=config)
        self.config = config
        self.setup_load()

    def _committed(self, sql: str) -> list[dict[str, Any]]:
        """`sql` in a transaction of its own on the writer's session."""
        try:
            self.cursor.execute(sql)
            names = [d[0] for d in self.cursor.description] if self.cursor.description else []
            rows = [dict(zip(names, row, strict=True)) for row in self.cursor.fetchall()] if names else []
            self.commit()
            return rows
        except Exception:
            self.rollback()
            raise

    def begin(self) -> None:
        """The roles and the marker table (committed), then the marker: the load transaction's first row."""
        self.read_grants(self._committed)
        self.ensure_marker(self._committed)
        for statement in self.begin_statements():
            self.execute(statement)

    def created_sql(self, table: str) -> list[str]:
        return self.grants_for_created(table)

    def state_setup_sql(self) -> list[str]:
        return self.private_state(super().state_setup_sql())

    def finish(self, rows: int) -> int:
        if self.marked:
            self.execute(self.marker.rows_sql(rows))
        try:
            self.commit()
        except Exception as exc:
            assert self.config.pg_dsn is not None
            return self.settle(exc, Psycopg2Channel(self.config.pg_dsn).run, f"writing {self.label} {self.where}")
        return rows


class SupabaseStateStore(SqlStateStore):
    """The state table through the writer's DDL channel (psycopg2 over pg_dsn, or HTTP SQL)."""

    def __init__(self, *args: Any, channel: DdlChannel, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.channel = channel

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        return [tuple(row.values()) for row in self.channel.run(sql)]


class SupabaseWriter(Driver[SupabaseWriterConfig]):
    config_model = SupabaseWriterConfig

    def state_store(self, *, step_id: str, config: SupabaseWriterConfig) -> StateStore:
        table = TableName(config.schema_, config.table)
        return SupabaseStateStore(step_id, config, POSTGRES, table, config.target(table.schema, table.name),
                                  write_mode=config.write_mode, primary_key=config.primary_key,
                                  delete_missing=config.delete_missing,
                                  channel=config.channel(step_id, config.ddl_channel))

    def run(self, *, step_id: str, config: SupabaseWriterConfig, inputs: StepInputs,
            ctx: StepContext) -> StepOutputs:
        data = single_input(step_id, inputs)
        table = TableName(config.schema_, config.table)
        channel = config.channel(step_id, config.ddl_channel)  # a configuration that cannot work: exit 2, now
        if not config.pg_dsn:
            config.key(step_id)
        ctx.event("write_plan", data_path="copy" if config.pg_dsn else "postgrest", ddl_channel=channel.name,
                  write_mode=config.write_mode)
        writer: TableWriter
        load: SupabaseLoad
        if config.pg_dsn and isinstance(channel, Psycopg2Channel):
            writer = load = SupabaseCopyWriter(step_id, config, table, data, ctx, dsn=config.pg_dsn)
        else:
            writer = load = StagedSupabaseWriter(step_id, config, table, data, ctx, channel=channel)
        rows = writer.run()
        if load.created:
            _await_visible(config, table, ctx.logger.warning)
        report_written(ctx, config.target(table.schema, table.name), rows)
        return {}


def _await_visible(config: SupabaseWriterConfig, table: TableName, warn: Callable[..., None]) -> None:
    """Best effort, after creating `table`: wait until PostgREST shows it, so a next step reading it through the
    API finds it. The write has committed: nothing here fails the step."""
    key = config.service_role_key or config.anon_key
    if not key:
        return
    try:
        config.rest(key, table.schema).wait_visible(table.name, budget_s=CREATED_TABLE_WAIT_S)
    except RestError as exc:
        warn("PostgREST does not show %s yet: %s", table, exc.describe())
    except Exception as exc:
        warn("could not check that PostgREST shows %s: %s", table, config.explain(exc, "check").message)

