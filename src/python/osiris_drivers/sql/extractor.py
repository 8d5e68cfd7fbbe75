"""The one core of the SQL extractors: source options and their checks, and the stream.

A query is one ConnectorX stream; a table whose primary key is one integer column is read in key pages
(`osiris_drivers.sql.pages`), so memory stays bounded whatever its size. Before streaming, the database
describes the result (a `LIMIT 0` probe, which also fails fast and clearly on bad credentials or names);
columns ConnectorX would round travel as exact text, and each column is cast to the Arrow type the description
calls for. An extractor implements only its database's hooks (`SqlSource`).
"""

from __future__ import annotations

import contextlib
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Annotated, ClassVar

import pyarrow as pa
from pydantic import Field

from osiris_core.driver import DriverConfig, StepPlan
from osiris_core.errors import DriverError, Interrupted, RunError
from osiris_core.interrupts import cancellable_by_helper, stop_reason, stopping
from osiris_core.state import Cursor, IncrementalRead
from osiris_drivers.connection import ClientMissing, ConnectionSettings, import_client, one_line
from osiris_drivers.sql import pages
from osiris_drivers.sql.connectorx import database_error, guarded_batches, is_transient
from osiris_drivers.sql.dialect import Dialect, TableName
from osiris_drivers.sql.incremental import (
    INCREMENTAL_ALIAS,
    IncrementalOptions,
    batch_max,
    ceiling_filter,
    ceiling_sql,
    check_columns,
    cursor_filter,
    start_of,
    tracked,
)
from osiris_drivers.sql.source_types import SourceType, with_source

ColumnName = Annotated[str, Field(min_length=1)]
Cancel = Callable[[], None]
"""A picklable action (a functools.partial of a module-level function): it travels to the stop helper process
(`osiris_core.interrupts.cancellable_by_helper`) and runs there, with its own connection, on a stop signal."""
TEXT_ALIAS = "__osiris_q"


class SourceOptions(DriverConfig):
    """What every SQL extractor reads: a query, or a table with optional columns and limit."""

    query: str | None = Field(default=None, min_length=1)
    table: str | None = Field(default=None, min_length=1)
    columns: list[ColumnName] | None = Field(default=None, min_length=1)
    limit: int | None = Field(default=None, ge=0)
    incremental: IncrementalOptions | None = None
    """Read only what changed since the last run (`osiris_drivers.sql.incremental`)."""


def check_source(step_id: str, options: SourceOptions) -> None:
    """Exactly one of `query` and `table`; `columns` and `limit` only with `table`."""
    if (options.query is None) == (options.table is None):
        raise DriverError("set exactly one of `query` and `table`", step_id=step_id,
                          hint="query: SELECT …, or table: name (with optional columns and limit)")
    if options.query is not None and (options.columns is not None or options.limit is not None):
        raise DriverError("`columns` and `limit` apply to `table` only", step_id=step_id,
                          hint="select the columns and add LIMIT in the query itself")
    if options.incremental is not None and options.limit is not None:
        raise DriverError("`limit` cannot be combined with `incremental`", step_id=step_id,
                          hint="drop limit: an incremental read must see every changed row")


@dataclass(frozen=True)
class ResultColumn:
    """How one result column travels: its Arrow type after reading, and whether it is fetched as text."""

    name: str
    target: pa.DataType | None = None
    """The Arrow type ConnectorX's column is cast to; None keeps ConnectorX's."""
    as_text: bool = False
    """Fetched as exact text (ConnectorX would round it), then cast to `target`."""
    source: SourceType | None = None
    """The column's declared type in the database, carried in the Arrow field's metadata (`source_types`)."""


class SqlSource(ABC):
    """One read: the database's hooks around the shared stream."""

    dialect: ClassVar[Dialect]
    PANIC_HINT: ClassVar[str] = "CAST such columns to text in the query"
    """What to do about a value ConnectorX cannot convert."""
    WHOLE_PAGES: ClassVar[bool] = True
    """Key pages are read whole (`open_stream(whole=True)`), which lets the writer's thread run while the database
    works; False where ConnectorX's whole read gives other Arrow types than its stream."""

    def __init__(self, step_id: str, settings: ConnectionSettings, *, where: str | None = None) -> None:
        self.step_id = step_id
        self.settings = settings
        """The connection family's settings: how its client's errors read, what to scrub."""
        self.where = settings.where if where is None else where
        """`at host:port`, for messages."""
        self.tag = f"osiris:{uuid.uuid4().hex}"
        """Every stream query starts with the comment `/* <tag> */`, so a stop signal can cancel it server-side."""

    # ------------------------------------------------------------------------------------------------ hooks

    def prepare(self) -> None:  # noqa: B027 (a hook most sources leave empty)
        """Refuse what the stream cannot honour (TLS modes), before any connection."""

    @abstractmethod
    def describe(self, sql: str) -> list[ResultColumn]:
        """The result's columns as the database types them (`sql` wrapped with LIMIT 0)."""

    def declared_types(self, table: TableName) -> dict[str, SourceType]:
        """The table's declared column types by name, where the catalogue knows more than `describe` (MySQL:
        enum labels, JSON, NOT NULL); they take precedence."""
        return {}

    @abstractmethod
    def integer_key(self, table: TableName) -> str | None:
        """The table's primary key column when it is one integer column (so pages can follow it)."""

    @abstractmethod
    def open(self, sql: str, *, whole: bool = False) -> pa.RecordBatchReader:
        """A ConnectorX stream of `sql` (`osiris_drivers.sql.connectorx.open_stream`, with `stream_failure`);
        `whole`: read at once (a key page)."""

    def canceller(self, marker: str) -> Cancel | None:
        """A picklable action that cancels, server-side, the running queries whose text contains `marker` (run by
        the stop helper process on SIGINT/SIGTERM: ConnectorX holds the GIL while it waits for a batch)."""
        return None

    # ------------------------------------------------------------------------------------------------ shared

    def stream_failure(self, exc: BaseException, panic: bool) -> RunError:
        if stopping():  # the stop helper cancelled the query: the run is being interrupted, nothing failed
            return Interrupted(stop_reason(), hint="the run was stopped; writes in progress were rolled back")
        message = self.settings.scrub(one_line(exc))
        failed = database_error(exc)
        if failed is not None:  # the database failed the query while its rows streamed
            transient = is_transient(RuntimeError(failed))
            return DriverError(f"{self.dialect.NAME} {self.where} failed the query while its rows streamed: "
                               f"{self.settings.scrub(failed)}", step_id=self.step_id, transient=transient,
                               hint="retry; the server was busy or the connection dropped" if transient
                               else "fix the query (it fails on the server for some rows)")
        if panic:
            return DriverError(f"a value from {self.dialect.NAME} {self.where} has no Arrow form: {message}",
                               step_id=self.step_id, hint=self.PANIC_HINT)
        transient = is_transient(exc)
        return DriverError(f"reading from {self.dialect.NAME} {self.where} failed: {message}", step_id=self.step_id,
                           hint="retry; the server was busy or the connection dropped" if transient
                           else "check the query and the connection", transient=transient)

    def _checked_sql(self, options: SourceOptions, table: TableName | None) -> str:
        """The options checked, the stream's client present, the TLS mode honoured: the SQL to read."""
        check_source(self.step_id, options)
        try:
            import_client("connectorx", project="connectorx", family=self.settings.family)
        except ClientMissing as exc:
            raise self.settings.failure(exc, step_id=self.step_id, role="read") from None
        self.prepare()
        if table is None:
            return (options.query or "").strip().rstrip(";").strip()
        return self.dialect.select_sql(table, options.columns, options.limit)

    def dry_run(self, options: SourceOptions, table: TableName | None, source: str) -> StepPlan:
        """The read, checked without reading a row (`osiris run --dry-run`): the options, then the database
        describes the result (the `LIMIT 0` probe every read starts with). `source` is its URI."""
        columns = self.describe(self._checked_sql(options, table))
        what = f"table {table}" if table is not None else "the query"
        return StepPlan(source=source, columns=tuple(c.name for c in columns),
                        detail=f"reads {what} {self.where}: {len(columns)} columns")

    def read(self, options: SourceOptions, table: TableName | None,
             incremental: IncrementalRead | None = None) -> pa.RecordBatchReader:
        """The rows of `options.query`, or of `table` (in key pages when it has an integer primary key); with
        `options.incremental`, only those from the cursor `incremental` starts at, the max cursor recorded."""
        inc = options.incremental
        if inc is None:
            return self._read(options, table, None)
        start = start_of(inc, incremental)
        stored = incremental is not None and incremental.start is not None and not incremental.full_refresh
        reader = self._read(options, table, cursor_filter(self.dialect, inc, start, stored=stored,
                                                          step_id=self.step_id), inc)
        check_columns(reader.schema, inc, self.step_id)
        return reader if incremental is None else tracked(reader, inc, incremental, self.step_id)

    def _ceiling(self, table: TableName, inc: IncrementalOptions, read: list[ResultColumn]) -> Cursor | None:
        """The largest cursor in `table` now (None: no row has one), read and typed as the rows are: the cursor
        columns as the read (`read`, described already) has them, with no metadata session of its own."""
        sql = ceiling_sql(self.dialect, inc, self.dialect.qualified(table))
        described = {c.name: c for c in read}
        columns = [described[name] for name in inc.columns]
        reader = self.open(sql)
        schema = self._schema(reader, columns, extra=0)
        check_columns(schema, inc, self.step_id)
        top = None
        for batch in self._cast(reader, columns, schema):
            top = batch_max(batch, inc.columns) or top
        return top

    def _read(self, options: SourceOptions, table: TableName | None, where: str | None,
              inc: IncrementalOptions | None = None) -> pa.RecordBatchReader:
        """The read; `where` filters it (a cursor condition on the table's columns, or the query's). An incremental
        read (`inc`) in key pages is bounded to the cursors there are when it starts (`ceiling_filter`)."""
        sql = self._checked_sql(options, table)
        key = self.integer_key(table) if table is not None else None
        if where is not None and key is None:  # a query (or a table without key pages) filtered as a subquery
            sql = f"SELECT * FROM (\n{sql}\n) AS {INCREMENTAL_ALIAS} WHERE {where}"
        columns = self._with_sources(self.describe(sql), table)
        if inc is not None and key is not None and table is not None and \
                set(inc.columns) <= {c.name for c in columns}:  # else the read refuses it with its own message
            where = ceiling_filter(self.dialect, inc, self._ceiling(table, inc, columns), where)
        select = ", ".join(self.dialect.text_select(c.name) if c.as_text else self.dialect.quote_ident(c.name)
                           for c in columns)
        if key is None:
            if any(c.as_text for c in columns):
                sql = f"SELECT {select} FROM (\n{sql}\n) AS {TEXT_ALIAS}"
            reader = self._open(sql)
            schema = self._schema(reader, columns, extra=0)
            return pa.RecordBatchReader.from_batches(schema, self._cast(reader, columns, schema))
        assert table is not None
        page_rows = pages.PAGE_ROWS if options.limit is None else max(1, min(pages.PAGE_ROWS, options.limit))
        quoted_key = self.dialect.quote_ident(key)

        def page_sql(after: int | None) -> str:
            conditions = [f"{quoted_key} > {int(after)}"] if after is not None else []
            if where is not None:
                conditions.append(f"({where})")
            condition = f" WHERE {' AND '.join(conditions)}" if conditions else ""
            return (f"SELECT {select}, {quoted_key} AS {pages.KEY_ALIAS} FROM {self.dialect.qualified(table)}"
                    f"{condition} ORDER BY {quoted_key} LIMIT {page_rows}")

        first = self._open(page_sql(None), whole=self.WHOLE_PAGES)
        schema = self._schema(first, columns, extra=1)
        with_key = [*columns, ResultColumn(pages.KEY_ALIAS)]

        def read_page(after: int | None) -> Iterator[pa.RecordBatch]:
            page = first if after is None else self._open(page_sql(after), whole=self.WHOLE_PAGES)
            return self._cast(page, with_key, None)

        return pa.RecordBatchReader.from_batches(schema, pages.keyset_pages(
            read_page, schema, limit=options.limit, page_rows=page_rows, name=f"osiris-{self.step_id}"))

    def _marker(self) -> str:
        return f"/* {self.tag} */"

    def _open(self, sql: str, *, whole: bool = False) -> pa.RecordBatchReader:
        """The family's stream of `sql`, tagged for the stop helper."""
        return self.open(f"{self._marker()} {sql}", whole=whole)

    def _with_sources(self, columns: list[ResultColumn], table: TableName | None) -> list[ResultColumn]:
        """Declared types for a table's columns; a query's keep their types but not NOT NULL (an outer join can
        null any column)."""
        if table is None:
            return [replace(c, source=c.source.relaxed()) if c.source is not None else c for c in columns]
        declared = {self.dialect.fold(name): source for name, source in self.declared_types(table).items()}
        return [replace(c, source=declared.get(self.dialect.fold(c.name), c.source)) for c in columns]

    def _schema(self, reader: pa.RecordBatchReader, columns: list[ResultColumn], *, extra: int) -> pa.Schema:
        fields = list(reader.schema)
        if len(fields) != len(columns) + extra:
            raise DriverError(f"ConnectorX returned {len(fields) - extra} columns where {self.dialect.NAME} "
                              f"described {len(columns)}", step_id=self.step_id,
                              hint="give every column a distinct name")
        return pa.schema([with_source(f if c.target is None else f.with_type(c.target), c.source)
                          for f, c in zip(fields[:len(columns)], columns, strict=True)])

    def _cast(self, reader: pa.RecordBatchReader, columns: list[ResultColumn],
              schema: pa.Schema | None) -> Iterator[pa.RecordBatch]:
        """Each batch with every column cast to its target (`schema` None: keep the batch's names)."""
        casting = schema is not None or any(c.target is not None for c in columns)
        cancel = self.canceller(self._marker())
        with cancellable_by_helper(cancel) if cancel is not None else contextlib.nullcontext():
            yield from self._cast_batches(reader, columns, schema, casting)

    def _cast_batches(self, reader: pa.RecordBatchReader, columns: list[ResultColumn], schema: pa.Schema | None,
                      casting: bool) -> Iterator[pa.RecordBatch]:
        for batch in guarded_batches(reader, self.stream_failure):
            if not casting:
                yield batch
                continue
            try:
                arrays = [batch.column(i) if c.target is None else self.dialect.cast_column(batch.column(i), c.target)
                          for i, c in enumerate(columns)]
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise DriverError(f"converting {self.dialect.NAME} values to Arrow failed: {one_line(exc)}",
                                  step_id=self.step_id,
                                  hint="CAST the column in a query to a type Arrow can hold") from None
            if schema is None:
                yield pa.RecordBatch.from_arrays(arrays, names=batch.schema.names)
            else:
                yield pa.RecordBatch.from_arrays(arrays, schema=schema)
