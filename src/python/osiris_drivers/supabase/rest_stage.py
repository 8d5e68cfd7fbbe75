"""Loading a staging table through PostgREST (supabase-py), in batches, with retries that never duplicate.

supabase-py never retries writes. Each batch carries its number in `_osiris_batch`; before a batch is sent
again, whatever part of it may have landed is deleted by that number, so a retried batch lands once.
"""

from __future__ import annotations

import datetime as dt
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from osiris_core.arrow_values import python_safe
from osiris_core.driver import ArrowData, StepContext
from osiris_core.errors import DriverError
from osiris_drivers.connection import UNCHANGED
from osiris_drivers.step_io import slices
from osiris_drivers.supabase.connection import describe_postgrest, postgrest_transient

if TYPE_CHECKING:
    from supabase import Client


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 5
    first_delay_s: float = 0.25
    max_delay_s: float = 4.0

    def delays(self) -> Iterator[float]:
        delay = self.first_delay_s
        for _ in range(self.attempts - 1):
            yield delay
            delay = min(delay * 2, self.max_delay_s)


DEFAULT_RETRY = RetryPolicy()


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


def json_rows(batch: pa.RecordBatch) -> list[dict[str, Any]]:
    return [{k: json_value(v) for k, v in row.items()} for row in python_safe(batch).to_pylist()]


class RestStage:
    """Posts the rows into the staging table in batches of `batch_size`, each row tagged with its batch number
    in `batch_column`."""

    def __init__(self, client: Callable[[str], Client], *, step_id: str, batch_size: int, batch_column: str,
                 ctx: StepContext, retry: RetryPolicy = DEFAULT_RETRY,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self._client = client
        self._step_id = step_id
        self._batch_size = batch_size
        self._batch_column = batch_column
        self._ctx = ctx
        self._retry = retry
        self._sleep = sleep

    def write(self, schema: str, stage: str, data: ArrowData) -> int:
        client = self._client(schema)
        rows = 0
        for number, batch in enumerate(slices(data, self._batch_size)):
            payload = json_rows(batch)
            for row in payload:
                row[self._batch_column] = number
            self._send(client, stage, number, payload)
            rows += len(payload)
        return rows

    def _send(self, client: Client, stage: str, number: int, payload: list[dict[str, Any]]) -> None:
        """Insert one batch; on a transient error wait, delete what may have landed, and send it again."""
        from postgrest.types import ReturnMethod

        delays = self._retry.delays()
        dirty = False
        while True:
            try:
                if dirty:
                    client.table(stage).delete(returning=ReturnMethod.minimal).eq(self._batch_column, number).execute()
                    dirty = False
                client.table(stage).insert(payload, returning=ReturnMethod.minimal).execute()
                return
            except Exception as exc:
                if not postgrest_transient(exc):
                    raise DriverError(f"PostgREST rejected batch {number}: {describe_postgrest(exc)}",
                                      step_id=self._step_id,
                                      hint=f"{UNCHANGED}; check the data against the table's types") from None
                dirty = True
                delay = next(delays, None)
                if delay is None:
                    raise DriverError(
                        f"PostgREST kept failing on batch {number} after {self._retry.attempts} attempts: "
                        f"{describe_postgrest(exc)}", step_id=self._step_id, transient=True,
                        hint=f"{UNCHANGED}; retry the run later") from None
                self._ctx.event("retry", batch=number, error=describe_postgrest(exc), delay_s=delay)
                self._sleep(delay)
