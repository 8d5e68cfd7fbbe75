"""Loading a staging table through PostgREST (supabase-py), in batches, with retries that never duplicate.

supabase-py never retries writes. Each batch carries its number in `_osiris_batch`; before a batch is sent
again, whatever part of it may have landed is deleted by that number, so a retried batch lands once.

A batch is at most `batch_size` rows (at most `MAX_BATCH_ROWS`) and `MAX_BATCH_BYTES` of JSON: Supabase's Data
API runs each request under its role's statement timeout (8 s), and a large insert is cancelled (57014). When
that happens the batch is split in two and the rest of the load keeps the smaller size; a batch PostgREST does
not see yet (a stage the schema cache has not reloaded for) is retried like any transient failure.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pyarrow as pa

from osiris_core.arrow_values import python_safe
from osiris_core.driver import ArrowData, StepContext
from osiris_core.errors import DriverError
from osiris_drivers.connection import UNCHANGED, Problem
from osiris_drivers.sql.source_types import source_of
from osiris_drivers.step_io import batches
from osiris_drivers.supabase.rest import DEFAULT_RETRY, Rest, RestError, RetryPolicy

MAX_BATCH_ROWS = 10_000
"""The most rows one request carries (the spec's `batch_size` maximum)."""
MAX_BATCH_BYTES = 4 << 20
"""The most JSON one request carries: larger batches are split before they are sent."""


def json_value(value: Any) -> Any:
    """A Python value from Arrow as PostgREST's JSON expects it (PostgreSQL casts the text)."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dt.datetime):
        return (value if value.tzinfo else value.replace(tzinfo=dt.UTC)).isoformat()
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, bytes):
        return "\\x" + value.hex()
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    return value


JSON_TYPES = frozenset({"json", "jsonb"})


def json_rows(batch: pa.RecordBatch) -> list[dict[str, Any]]:
    """The rows as PostgREST's JSON; a column that was JSON at its source (`source_types`) goes as the JSON
    document its text holds, so a json/jsonb column stores the document, not a string."""
    documents = {f.name for f in batch.schema if (s := source_of(f)) is not None and s.type in JSON_TYPES
                 and not s.array and (pa.types.is_string(f.type) or pa.types.is_large_string(f.type))}
    return [{k: (json.loads(v) if k in documents and v is not None else json_value(v)) for k, v in row.items()}
            for row in python_safe(batch).to_pylist()]


class _TooLarge(Exception):
    """A batch to split: its JSON is over `MAX_BATCH_BYTES`, or the statement timeout cancelled it."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class RestStage:
    """Posts the rows into the staging table in batches, each row tagged with its batch number in
    `batch_column`."""

    def __init__(self, rest: Rest, *, step_id: str, batch_size: int, batch_column: str, ctx: StepContext,
                 explain: Callable[[RestError], Problem], retry: RetryPolicy = DEFAULT_RETRY,
                 max_bytes: int = MAX_BATCH_BYTES, sleep: Callable[[float], None] = time.sleep) -> None:
        self._rest = rest
        self._explain = explain
        self._step_id = step_id
        self._rows = max(1, min(batch_size, MAX_BATCH_ROWS))
        self._max_bytes = max_bytes
        self._batch_column = batch_column
        self._ctx = ctx
        self._retry = retry
        self._sleep = sleep
        self._number = 0

    def write(self, stage: str, data: ArrowData) -> int:
        rows = 0
        for batch in batches(data):
            start = 0
            while start < batch.num_rows:
                piece = batch.slice(start, self._rows)
                rows += self._send_splitting(stage, piece)
                start += piece.num_rows
        return rows

    def _send_splitting(self, stage: str, piece: pa.RecordBatch) -> int:
        """Send `piece` as one batch or, if it is too large, in batches of half its size (or less); the rows
        sent."""
        payload = json_rows(piece)
        number = self._number
        for row in payload:
            row[self._batch_column] = number
        try:
            if piece.num_rows > 1 and len(json.dumps(payload, default=str)) > self._max_bytes:
                raise _TooLarge(f"over {self._max_bytes} bytes of JSON")
            self._send(stage, number, payload)
        except _TooLarge as exc:
            if piece.num_rows == 1:
                raise DriverError(f"PostgREST cannot take even one row of batch {number}: {exc.reason}",
                                  step_id=self._step_id,
                                  hint=f"{UNCHANGED}; add pg_dsn so rows go by COPY, or raise the API role's "
                                       "statement_timeout") from None
            self._rows = max(1, min(self._rows, piece.num_rows // 2))
            self._ctx.event("retry", batch=number, error=f"batch of {piece.num_rows} rows {exc.reason}",
                            delay_s=0, batch_rows=self._rows)
            sent = 0
            while sent < piece.num_rows:  # the rest of the load keeps the smaller size too
                sent += self._send_splitting(stage, piece.slice(sent, self._rows))
            return sent
        self._number += 1
        return int(piece.num_rows)

    def _send(self, stage: str, number: int, payload: list[dict[str, Any]]) -> None:
        """Insert one batch; on a transient error wait, delete what may have landed, and send it again."""
        from postgrest.types import ReturnMethod

        rest = self._rest
        delays = self._retry.delays()
        dirty = False
        while True:
            try:
                if dirty:
                    rest.call(rest.table(stage).delete(returning=ReturnMethod.minimal)
                              .eq(self._batch_column, number).execute)
                    dirty = False
                rest.call(rest.table(stage).insert(payload, returning=ReturnMethod.minimal).execute)
                return
            except RestError as exc:
                if exc.statement_timeout and not dirty:  # the insert was cancelled: nothing of it landed
                    raise _TooLarge(f"cancelled by the statement timeout ({exc.describe()})") from None
                if not (exc.transient or exc.not_visible):
                    problem = self._explain(exc)  # the family's words: a grant to add, a type to fix, …
                    raise DriverError(f"PostgREST rejected batch {number}: {problem.message}", step_id=self._step_id,
                                      hint=f"{UNCHANGED}; {problem.hint}" if problem.hint else UNCHANGED) from None
                dirty = True
                delay = next(delays, None)
                if delay is None:
                    raise DriverError(
                        f"PostgREST kept failing on batch {number} after {self._retry.attempts} attempts: "
                        f"{exc.describe()}", step_id=self._step_id, transient=True,
                        hint=f"{UNCHANGED}; retry the run later") from None
                self._ctx.event("retry", batch=number, error=exc.describe(), delay_s=delay)
                self._sleep(delay)
