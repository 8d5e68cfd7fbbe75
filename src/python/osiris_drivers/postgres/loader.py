"""Loading Arrow data into PostgreSQL atomically: a failure at any point leaves the target as it was.

Two strategies, one contract (append | upsert | replace by primary key; rows actually written returned):
- `load_in_one_transaction`: DDL and COPY share one psycopg2 transaction (the fast path).
- `load_via_stage`: rows go into a staging table by any data path (COPY or PostgREST), then one SQL
  transaction on the DDL channel moves them into the target; the staging table is always dropped.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

import pyarrow as pa
from pydantic import Field

from osiris_core.driver import ArrowData, DriverConfig
from osiris_core.errors import DriverError
from osiris_drivers.postgres.arrow_csv import CsvCopyStream
from osiris_drivers.postgres.connection import driver_error, pg_connection
from osiris_drivers.postgres.ddl_channel import DdlChannel, DdlError
from osiris_drivers.postgres.sql import column_list, create_table_sql, pg_type, qualified, quote_ident, upsert_sql

WriteMode = Literal["append", "upsert", "replace"]
COPY_READ_SIZE = 1 << 20
STAGE_BATCH_COLUMN = "_osiris_batch"


@dataclass(frozen=True)
class LoadPlan:
    step_id: str
    schema: str
    table: str
    write_mode: WriteMode
    primary_key: tuple[str, ...]
    create_if_missing: bool

    @property
    def target(self) -> str:
        return qualified(self.schema, self.table)

    def check_input(self, arrow_schema: pa.Schema) -> None:
        if self.write_mode == "upsert" and not self.primary_key:
            raise DriverError("write_mode upsert needs primary_key", step_id=self.step_id,
                              hint="set primary_key: [column, ...]")
        missing = [c for c in self.primary_key if c not in arrow_schema.names]
        if missing:
            raise DriverError(f"primary_key columns {missing} are not in the input", step_id=self.step_id,
                              hint=f"input columns: {arrow_schema.names}")

    def missing_table(self) -> DriverError:
        return DriverError(f"table {self.schema}.{self.table} does not exist", step_id=self.step_id,
                           hint="create it first or set create_if_missing: true")

    def unknown_columns(self, arrow_schema: pa.Schema, existing: Sequence[str]) -> DriverError | None:
        extra = [c for c in arrow_schema.names if c not in existing]
        if not extra:
            return None
        return DriverError(f"input columns {extra} are not in table {self.schema}.{self.table}",
                           step_id=self.step_id,
                           hint="add them to the table, drop them in the query, or use write_mode: replace")


class TableWriteOptions(DriverConfig):
    """The target and write semantics every PostgreSQL-family writer accepts."""

    schema_: str = Field(default="public", alias="schema")
    table: str = Field(min_length=1)
    write_mode: WriteMode = "append"
    primary_key: list[str] = Field(default_factory=list)
    create_if_missing: bool = False

    def plan(self, step_id: str) -> LoadPlan:
        return LoadPlan(step_id=step_id, schema=self.schema_, table=self.table, write_mode=self.write_mode,
                        primary_key=tuple(self.primary_key), create_if_missing=self.create_if_missing)


def batches_of(data: ArrowData) -> Iterator[pa.RecordBatch]:
    yield from (data.to_batches() if isinstance(data, pa.Table) else data)


def _copy_sql(target: str, names: Sequence[str]) -> str:
    return f"COPY {target} ({column_list(names)}) FROM STDIN WITH (FORMAT csv)"


def load_in_one_transaction(dsn: str, plan: LoadPlan, data: ArrowData) -> int:
    """DDL, COPY and the final statement in one psycopg2 transaction."""
    import psycopg2

    schema = data.schema
    plan.check_input(schema)
    names = schema.names
    try:
        with pg_connection(dsn) as connection, connection.cursor() as cursor:
            cursor.execute(
                "SELECT a.attname FROM pg_attribute a WHERE a.attrelid = to_regclass(%s) AND a.attnum > 0 "
                "AND NOT a.attisdropped ORDER BY a.attnum", (plan.target,))
            existing = [str(r[0]) for r in cursor.fetchall()]
            cursor.execute("SELECT to_regclass(%s) IS NOT NULL", (plan.target,))
            row = cursor.fetchone()
            exists = bool(row and row[0])
            if not exists and not plan.create_if_missing:
                raise plan.missing_table()
            recreate = plan.write_mode == "replace" and exists and sorted(existing) != sorted(names)
            if recreate:
                cursor.execute(f"DROP TABLE {plan.target}")
            if not exists or recreate:
                cursor.execute(f"CREATE SCHEMA IF NOT EXISTS {quote_ident(plan.schema)}")
                cursor.execute(create_table_sql(plan.schema, plan.table, schema, plan.primary_key))
            elif (error := plan.unknown_columns(schema, existing)) is not None:
                raise error
            stream = CsvCopyStream(batches_of(data))
            if plan.write_mode == "upsert":
                stage = quote_ident(f"_osiris_stage_{uuid.uuid4().hex[:12]}")
                columns = ", ".join(f"{quote_ident(f.name)} {pg_type(f.type)}" for f in schema)
                cursor.execute(f"CREATE TEMP TABLE {stage} ({columns}) ON COMMIT DROP")
                cursor.copy_expert(_copy_sql(stage, names), stream, COPY_READ_SIZE)
                cursor.execute(upsert_sql(plan.target, stage, names, plan.primary_key))
                written = cursor.rowcount
            else:
                if plan.write_mode == "replace" and exists and not recreate:
                    cursor.execute(f"TRUNCATE {plan.target}")
                cursor.copy_expert(_copy_sql(plan.target, names), stream, COPY_READ_SIZE)
                written = stream.rows
            connection.commit()
            return written
    except psycopg2.Error as exc:
        raise driver_error(exc, step_id=plan.step_id, doing=f"{plan.write_mode} into {plan.schema}.{plan.table}") \
            from None


class StageWriter(Protocol):
    """Puts every row of `data` into the (existing, empty) staging table; returns the row count."""

    with_batch_column: bool

    def write(self, schema: str, stage: str, data: ArrowData) -> int: ...


def _finalize_sql(plan: LoadPlan, stage: str, names: Sequence[str], arrow_schema: pa.Schema,
                  existing: Sequence[str] | None, recreate: bool) -> str:
    """One transaction: create (or recreate, or empty) the target as the mode needs, then move the rows in."""
    source = qualified(plan.schema, stage)
    cols = column_list(names)
    statements = []
    if recreate:
        statements.append(f"DROP TABLE {plan.target}")
    if recreate or existing is None:
        statements.append(create_table_sql(plan.schema, plan.table, arrow_schema, plan.primary_key))
    elif plan.write_mode == "replace":
        statements.append(f"TRUNCATE {plan.target}")
    insert = (upsert_sql(plan.target, source, names, plan.primary_key) if plan.write_mode == "upsert"
              else f"INSERT INTO {plan.target} ({cols}) SELECT {cols} FROM {source}")
    statements.append(f"WITH written AS ({insert} RETURNING 1) SELECT count(*) AS rows FROM written")
    return ";\n".join(statements)


def load_via_stage(channel: DdlChannel, writer: StageWriter, plan: LoadPlan, data: ArrowData,
                   *, reload_sql: str = "") -> int:
    """Stage the rows, then move them into the target in one transaction on the DDL channel."""
    arrow_schema = data.schema
    plan.check_input(arrow_schema)
    names = arrow_schema.names
    doing = f"{plan.write_mode} into {plan.schema}.{plan.table} over {channel.name}"
    stage = f"_osiris_stage_{uuid.uuid4().hex[:12]}"
    try:
        existing = channel.table_columns(plan.schema, plan.table)
        if existing is None and not plan.create_if_missing:
            raise plan.missing_table()
        recreate = plan.write_mode == "replace" and existing is not None and sorted(existing) != sorted(names)
        if existing is None:
            # Only the schema now (the stage lives there); the table itself is created when the rows move in.
            channel.run(f"CREATE SCHEMA IF NOT EXISTS {quote_ident(plan.schema)}")
        elif not recreate and (error := plan.unknown_columns(arrow_schema, existing)) is not None:
            raise error
        columns = [f"{quote_ident(f.name)} {pg_type(f.type)}" for f in arrow_schema]
        if writer.with_batch_column:
            columns.append(f"{quote_ident(STAGE_BATCH_COLUMN)} INTEGER NOT NULL")
        channel.run(f"CREATE UNLOGGED TABLE {qualified(plan.schema, stage)} ({', '.join(columns)});{reload_sql}")
    except DdlError as exc:
        raise DriverError(f"{doing} failed: {exc}", step_id=plan.step_id, transient=exc.transient,
                          hint="check the connection's sql_url and key, or use ddl_channel: psycopg2") from None
    try:
        writer.write(plan.schema, stage, data)
        rows = channel.run(_finalize_sql(plan, stage, names, arrow_schema, existing, recreate))
        return int(rows[-1]["rows"]) if rows else 0
    except DdlError as exc:
        raise DriverError(f"{doing} failed: {exc}", step_id=plan.step_id, transient=exc.transient,
                          hint="the target was left unchanged") from None
    finally:
        # The load's own outcome matters more than this clean-up; a leftover stage is named _osiris_stage_*.
        with contextlib.suppress(DdlError):
            channel.run(f"DROP TABLE IF EXISTS {qualified(plan.schema, stage)};{reload_sql}")


class CopyStageWriter:
    """Loads a staging table with COPY over a DSN (committed on its own; the stage is private)."""

    with_batch_column = False

    def __init__(self, dsn: str, step_id: str) -> None:
        self._dsn = dsn
        self._step_id = step_id

    def write(self, schema: str, stage: str, data: ArrowData) -> int:
        import psycopg2

        stream = CsvCopyStream(batches_of(data))
        try:
            with pg_connection(self._dsn) as connection, connection.cursor() as cursor:
                cursor.copy_expert(_copy_sql(qualified(schema, stage), data.schema.names), stream, COPY_READ_SIZE)
                connection.commit()
        except psycopg2.Error as exc:
            raise driver_error(exc, step_id=self._step_id, doing="COPY into the staging table") from None
        return stream.rows
