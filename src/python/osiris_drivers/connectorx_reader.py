"""ConnectorX Arrow streams with its failures as DriverErrors.

ConnectorX raises RuntimeErrors, and for values it cannot convert a Rust panic — a BaseException that is not
an Exception. Both must become one-line step failures; interrupts and exits must not be swallowed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pyarrow as pa

from osiris_core.errors import DriverError

Describe = Callable[[BaseException, bool], DriverError]
"""(the error, whether it is a panic) → the DriverError to raise instead."""


def is_panic(exc: BaseException) -> bool:
    return type(exc).__name__ == "PanicException"


def _converted(exc: BaseException) -> bool:
    return isinstance(exc, Exception) or is_panic(exc)


def open_stream(url: str, query: str, describe: Describe, **options: Any) -> pa.RecordBatchReader:
    import connectorx

    try:
        reader = connectorx.read_sql(url, query, return_type="arrow_stream", **options)
    except BaseException as exc:
        if not _converted(exc):
            raise
        raise describe(exc, is_panic(exc)) from None
    assert isinstance(reader, pa.RecordBatchReader)
    return reader


def guarded_batches(reader: pa.RecordBatchReader, describe: Describe) -> Iterator[pa.RecordBatch]:
    iterator = iter(reader)
    while True:
        try:
            batch = next(iterator)
        except StopIteration:
            return
        except BaseException as exc:
            if not _converted(exc):
                raise
            raise describe(exc, is_panic(exc)) from None
        yield batch
