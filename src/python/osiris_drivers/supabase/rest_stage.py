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
from osiris_core.masking import scrub_text
from osiris_drivers.postgres.loader import STAGE_BATCH_COLUMN, batches_of

if TYPE_CHECKING:
    from supabase import Client

TRANSIENT_HTTP_CODES = frozenset({"408", "425", "429", "500", "502", "503", "504", "520", "522", "524"})
TRANSIENT_POSTGREST_CODES = frozenset({"PGRST000", "PGRST001", "PGRST002", "PGRST205"})
"""Connection and schema-cache errors; PGRST205 (unknown table) is transient for a just-created stage."""


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


def is_transient(exc: BaseException) -> bool:
    import httpx
    from postgrest.exceptions import APIError

    if isinstance(exc, httpx.TransportError):
        return True
    if isinstance(exc, APIError):
        return str(exc.code) in TRANSIENT_HTTP_CODES or str(exc.code) in TRANSIENT_POSTGREST_CODES
    return False


def describe(exc: BaseException) -> str:
    from postgrest.exceptions import APIError

    if isinstance(exc, APIError):
        text = f"{exc.code}: {exc.message}" + (f" ({exc.details})" if exc.details else "")
    else:
        text = f"{type(exc).__name__}: {exc}"
    return scrub_text(" ".join(text.split()))


class RestStageWriter:
    """Posts the rows into the staging table in batches of `batch_size`."""

    with_batch_column = True

    def __init__(self, client: Callable[[str], Client], *, step_id: str, batch_size: int, ctx: StepContext,
                 retry: RetryPolicy = DEFAULT_RETRY, sleep: Callable[[float], None] = time.sleep) -> None:
        self._client = client
        self._step_id = step_id
        self._batch_size = batch_size
        self._ctx = ctx
        self._retry = retry
        self._sleep = sleep

    def write(self, schema: str, stage: str, data: ArrowData) -> int:
        client = self._client(schema)
        rows = 0
        number = 0
        for batch in batches_of(data):
            for start in range(0, batch.num_rows, self._batch_size):
                payload = json_rows(batch.slice(start, self._batch_size))
                for row in payload:
                    row[STAGE_BATCH_COLUMN] = number
                self._send(client, stage, number, payload)
                rows += len(payload)
                number += 1
        return rows

    def _send(self, client: Client, stage: str, number: int, payload: list[dict[str, Any]]) -> None:
        """Insert one batch; on a transient error wait, delete what may have landed, and send it again."""
        from postgrest.types import ReturnMethod

        delays = self._retry.delays()
        dirty = False
        while True:
            try:
                if dirty:
                    client.table(stage).delete(returning=ReturnMethod.minimal).eq(STAGE_BATCH_COLUMN, number).execute()
                    dirty = False
                client.table(stage).insert(payload, returning=ReturnMethod.minimal).execute()
                return
            except Exception as exc:
                if not is_transient(exc):
                    raise DriverError(f"PostgREST rejected batch {number}: {describe(exc)}", step_id=self._step_id,
                                      hint="check the data against the table's types; the target is unchanged") \
                        from None
                dirty = True
                delay = next(delays, None)
                if delay is None:
                    raise DriverError(
                        f"PostgREST kept failing on batch {number} after {self._retry.attempts} attempts: "
                        f"{describe(exc)}", step_id=self._step_id, transient=True,
                        hint="the target is unchanged; retry the run later") from None
                self._ctx.event("retry", batch=number, error=describe(exc), delay_s=delay)
                self._sleep(delay)
