"""Incremental reads of the SQL extractors: the `incremental` option, the cursor filter, the max-cursor tracker.

The read is `cursor >= last - lookback` (inclusive): rows that share the last cursor value, also ones inserted
after the last run, are read again, and the writer (an upsert by key) lands them once. A compound cursor compares
as a row value, lexicographically. Literals are rendered through the dialect (`Dialect.quote_literal`) at full
precision (µs timestamps, decimals, big integers). The max cursor is tracked over the batches the extractor
actually yields, vectorised with `pyarrow.compute`, and handed to the engine (`osiris_core.state.IncrementalRead`),
which has the downstream writers commit it with the rows.

NULL cursors (`on_null_cursor`): `include` (default) reads them on every run, since a NULL never compares as
greater than the last cursor and would otherwise be lost for good once the cursor moves on (the upsert makes the
re-reads idempotent); `exclude` never reads them; `fail` stops the step with a one-line error naming the column
(the writer is atomic: nothing is written).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Literal

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field, field_validator, model_validator

from osiris_core.driver import DriverConfig
from osiris_core.errors import DriverError
from osiris_core.state import Cursor, CursorValue, IncrementalRead
from osiris_drivers.sql.dialect import Dialect

INCREMENTAL_ALIAS = "__osiris_incremental"
Scalar = str | int | float


class IncrementalOptions(DriverConfig):
    """`incremental:` of a SQL extractor."""

    cursor: str | list[str] = Field(description="cursor column, or a list for a compound cursor")
    initial_value: Scalar | list[Scalar] | None = None
    """The first run reads cursor >= this (a list for a compound cursor); default: the whole source."""
    on_null_cursor: Literal["include", "exclude", "fail"] = "include"
    lookback: float = Field(default=0, ge=0, allow_inf_nan=False)
    """Re-read this far behind the last cursor (seconds for temporal cursors, else cursor units)."""

    @field_validator("cursor")
    @classmethod
    def _columns(cls, cursor: str | list[str]) -> str | list[str]:
        names = [cursor] if isinstance(cursor, str) else cursor
        if not names or any(not n for n in names):
            raise ValueError("name one column, or a list of columns")
        if len(set(names)) != len(names):
            raise ValueError("lists a column twice")
        return cursor

    @model_validator(mode="after")
    def _initial_matches(self) -> IncrementalOptions:
        if self.initial_value is not None:
            given = len(self.initial_value) if isinstance(self.initial_value, list) else 1
            if given != len(self.columns):
                raise ValueError(f"initial_value has {given} values for {len(self.columns)} cursor columns")
        return self

    @property
    def columns(self) -> tuple[str, ...]:
        return (self.cursor,) if isinstance(self.cursor, str) else tuple(self.cursor)

    def initial(self) -> tuple[Scalar, ...] | None:
        if self.initial_value is None:
            return None
        return tuple(self.initial_value) if isinstance(self.initial_value, list) else (self.initial_value,)


def literal(dialect: Dialect, value: CursorValue) -> str:
    """`value` as a SQL literal of `dialect`, at full precision (never string-concatenated unescaped)."""
    if isinstance(value, bool):
        raise ValueError("a boolean is no cursor value")
    if isinstance(value, datetime):
        if value.tzinfo is not None and not dialect.LITERAL_OFFSETS:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return dialect.quote_literal(value.isoformat(sep=" "))
    if isinstance(value, date):
        return dialect.quote_literal(value.isoformat())
    if isinstance(value, int):
        return str(int(value))
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"{value} is no cursor value")
        return format(value, "f")
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{value} is no cursor value")
        return repr(value)
    return dialect.quote_literal(str(value))


def behind(value: CursorValue, lookback: float, column: str, step_id: str) -> CursorValue:
    """`value` moved back by `lookback` (seconds for timestamps, days rounded up for dates, else units)."""
    if isinstance(value, datetime):
        return value - timedelta(seconds=lookback)
    if isinstance(value, date):
        return value - timedelta(days=math.ceil(lookback / 86400))
    if isinstance(value, bool | str):
        raise DriverError(f"lookback needs a numeric or temporal cursor; '{column}' holds text",
                          step_id=step_id, hint="drop lookback, or use a timestamp or number cursor")
    if isinstance(value, int):
        return value - math.ceil(lookback)
    if isinstance(value, Decimal):
        return value - Decimal(str(lookback))
    return value - lookback


def start_of(options: IncrementalOptions, read: IncrementalRead | None) -> tuple[CursorValue, ...] | None:
    """Where the read starts: the stored cursor (unless --full-refresh), else `initial_value`, else nowhere."""
    if read is not None and read.start is not None and not read.full_refresh:
        return read.start
    return options.initial()


def cursor_filter(dialect: Dialect, options: IncrementalOptions, start: tuple[CursorValue, ...] | None,
                  *, stored: bool, step_id: str) -> str | None:
    """The WHERE condition of the read (None: read everything). `stored`: `start` is a committed cursor (the
    lookback applies to it, not to an initial value)."""
    q = dialect.quote_ident
    columns = options.columns
    condition = None
    if start is not None:
        if len(start) != len(columns):
            raise DriverError(f"the stored cursor has {len(start)} values for {len(columns)} cursor columns "
                              f"{list(columns)}", step_id=step_id,
                              hint="the cursor changed: `osiris state reset PIPELINE --step "
                                   f"{step_id}` or run with --full-refresh")
        try:
            if stored and options.lookback:
                first = behind(start[0], options.lookback, columns[0], step_id)
                condition = f"{q(columns[0])} >= {literal(dialect, first)}"
            elif len(columns) == 1:
                condition = f"{q(columns[0])} >= {literal(dialect, start[0])}"
            else:
                condition = (f"({dialect.column_list(columns)}) >= "
                             f"({', '.join(literal(dialect, v) for v in start)})")
        except ValueError as exc:
            raise DriverError(f"cursor {list(columns)}: {exc}", step_id=step_id,
                              hint="use a timestamp, date, number or text cursor column") from None
    if options.on_null_cursor == "exclude":
        not_null = " AND ".join(f"{q(c)} IS NOT NULL" for c in columns)
        return not_null if condition is None else f"({condition}) AND {not_null}"
    if condition is None:
        return None
    nulls = " OR ".join(f"{q(c)} IS NULL" for c in columns)
    return f"({condition}) OR {nulls}"


def ceiling_sql(dialect: Dialect, options: IncrementalOptions, table: str) -> str:
    """The largest cursor in `table` (quoted) now: one row, or none."""
    q = dialect.quote_ident
    columns = options.columns
    not_null = " AND ".join(f"{q(c)} IS NOT NULL" for c in columns)
    order = ", ".join(f"{q(c)} DESC" for c in columns)
    return f"SELECT {dialect.column_list(columns)} FROM {table} WHERE {not_null} ORDER BY {order} LIMIT 1"


def ceiling_filter(dialect: Dialect, options: IncrementalOptions, ceiling: Cursor | None, where: str | None) -> str:
    """`where`, bounded to cursors up to `ceiling` (rows with a NULL cursor stay as `where` says).

    A table read in key pages runs one statement per page, so it sees no single snapshot: a row of an early page
    updated while later pages are read would be missed, and the cursor committed past it from a later page.
    Bounded by the largest cursor before the read, every page reads that snapshot's cursors; rows changed during
    the read have larger cursors and are read by the next run."""
    q = dialect.quote_ident
    columns = options.columns
    nulls = " OR ".join(f"{q(c)} IS NULL" for c in columns)
    if ceiling is None:
        bound = nulls
    elif len(columns) == 1:
        bound = f"{q(columns[0])} <= {literal(dialect, ceiling[0])} OR {nulls}"
    else:
        bound = f"({dialect.column_list(columns)}) <= ({', '.join(literal(dialect, v) for v in ceiling)}) OR {nulls}"
    return f"({bound})" if where is None else f"({where}) AND ({bound})"


def _orderable(arrow: pa.DataType) -> bool:
    return bool(pa.types.is_integer(arrow) or pa.types.is_decimal(arrow) or pa.types.is_floating(arrow)
                or pa.types.is_timestamp(arrow) or pa.types.is_date(arrow) or pa.types.is_string(arrow)
                or pa.types.is_large_string(arrow))


def check_columns(schema: pa.Schema, options: IncrementalOptions, step_id: str) -> None:
    """The cursor columns are read, with a type a cursor can hold (before any row streams)."""
    missing = [c for c in options.columns if c not in schema.names]
    if missing:
        raise DriverError(f"cursor columns {missing} are not among the columns read {schema.names}",
                          step_id=step_id, hint="add them to `columns` or to the query")
    for column in options.columns:
        arrow = schema.field(column).type
        if not _orderable(arrow):
            raise DriverError(f"cursor column '{column}' reads as Arrow {arrow}, which is no cursor type",
                              step_id=step_id, hint="use a timestamp, date, number or text column as the cursor")


def batch_max(batch: pa.RecordBatch, columns: tuple[str, ...]) -> Cursor | None:
    """The lexicographically largest cursor in `batch` over rows with no NULL cursor column (vectorised)."""
    table = pa.Table.from_batches([batch]).select(list(columns))
    valid = None
    for column in columns:
        ok = pc.is_valid(table[column])
        valid = ok if valid is None else pc.and_(valid, ok)
    if valid is not None and table.num_rows and not pc.all(valid).as_py():
        table = table.filter(valid)
    if table.num_rows == 0:
        return None
    values: list[CursorValue] = []
    for i, column in enumerate(columns):
        top = pc.max(table[column])
        values.append(top.as_py())
        if i + 1 < len(columns):
            table = table.filter(pc.equal(table[column], top))
    return tuple(values)


def _value(value: CursorValue | Scalar, arrow: pa.DataType, column: str, step_id: str) -> pa.Scalar:
    """A cursor value as an Arrow scalar of the column's type (text such as an initial_value is parsed)."""
    try:
        return pa.scalar(value).cast(arrow)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
        raise DriverError(f"cursor value {value!r} does not fit column '{column}' ({arrow}): {exc}",
                          step_id=step_id, hint="fix initial_value, or reset the state") from None


def arrow_filter(schema: pa.Schema, options: IncrementalOptions, start: tuple[CursorValue | Scalar, ...] | None,
                 *, stored: bool, step_id: str) -> Callable[[pa.RecordBatch], pa.RecordBatch]:
    """The cursor filter of `cursor_filter`, applied to Arrow batches (for sources without SQL, e.g. files):
    the same inclusive row-value comparison, lookback and NULL rule, vectorised."""
    columns = options.columns
    bounds: list[pa.Scalar] = []
    if start is not None:
        values: list[CursorValue | Scalar] = list(start)
        if stored and options.lookback:  # the window applies to the first column (a superset of the rows)
            values = [behind(start[0], options.lookback, columns[0], step_id)]
        bounds = [_value(v, schema.field(c).type, c, step_id) for v, c in zip(values, columns, strict=False)]

    def keep(batch: pa.RecordBatch) -> pa.RecordBatch:
        mask = None
        if bounds:  # (c1, c2, …) >= (b1, b2, …), lexicographically
            mask = pc.greater_equal(batch.column(columns[len(bounds) - 1]), bounds[-1])
            for i in range(len(bounds) - 2, -1, -1):
                column = batch.column(columns[i])
                mask = pc.or_(pc.greater(column, bounds[i]), pc.and_(pc.equal(column, bounds[i]), mask))
        nulls = None
        for c in columns:
            null = pc.is_null(batch.column(c))
            nulls = null if nulls is None else pc.or_(nulls, null)
        if options.on_null_cursor == "exclude":
            mask = pc.invert(nulls) if mask is None else pc.and_(pc.fill_null(mask, False), pc.invert(nulls))
        elif mask is not None:
            mask = pc.or_(pc.fill_null(mask, False), nulls)
        return batch if mask is None else batch.filter(mask)

    return keep


def tracked(reader: pa.RecordBatchReader, options: IncrementalOptions, read: IncrementalRead,
            step_id: str) -> pa.RecordBatchReader:
    """`reader`, recording into `read` the max cursor and the rows of each batch it yields; NULL cursors per
    `on_null_cursor: fail` stop the read."""
    columns = options.columns

    def batches() -> Iterator[pa.RecordBatch]:
        for batch in reader:
            if options.on_null_cursor == "fail":
                for column in columns:
                    if batch.column(column).null_count:
                        raise DriverError(f"cursor column '{column}' has NULL values (on_null_cursor: fail)",
                                          step_id=step_id,
                                          hint="fill the column, or set on_null_cursor: include (re-read every "
                                               "run) or exclude (never read)")
            read.advance(batch_max(batch, columns), batch.num_rows)
            yield batch
        read.end()

    return pa.RecordBatchReader.from_batches(reader.schema, batches())


def filtered(reader: pa.RecordBatchReader, options: IncrementalOptions, read: IncrementalRead | None,
             step_id: str) -> pa.RecordBatchReader:
    """An incremental read of a source without SQL (files): every row is parsed, the cursor filter runs on the
    batches (`arrow_filter`), and the rows passed on are tracked as a SQL source's are."""
    check_columns(reader.schema, options, step_id)
    stored = read is not None and read.start is not None and not read.full_refresh
    keep = arrow_filter(reader.schema, options, start_of(options, read), stored=stored, step_id=step_id)
    out = pa.RecordBatchReader.from_batches(reader.schema, (keep(batch) for batch in reader))
    return out if read is None else tracked(out, options, read, step_id)
