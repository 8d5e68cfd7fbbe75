"""ConnectorX Arrow streams with their failures as DriverErrors, and what ConnectorX carries exactly.

ConnectorX raises RuntimeErrors, and for values it cannot convert a Rust panic — a BaseException that is not
an Exception. It also panics when the database fails the query while its rows stream (a subquery returning more
than one row, a division by zero, a cancelled statement): `database_error` finds the database's own message in
such a panic. All must become one-line step failures; interrupts and exits must not be swallowed. A panic also
prints a report on stderr; `open_stream` turns Rust's backtraces off (RUST_BACKTRACE=0), so the user's terminal
gets at most its two lines, not a backtrace.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from typing import Any

import pyarrow as pa

from osiris_core.errors import RunError

Describe = Callable[[BaseException, bool], RunError]
"""(the error, whether it is a panic) → the error to raise instead (a DriverError, or Interrupted when the run
is stopping: the query was cancelled)."""

CONNECTORX_INTEGER_DIGITS = 18
CONNECTORX_SCALE = 10
"""ConnectorX rescales every DECIMAL/NUMERIC to scale 10 inside a 28-digit decimal: exact only up to 18 digits
before the point and 10 after it. Wider columns must travel as text."""

TRANSIENT_TEXT = re.compile(
    r"connection refused|connection reset|broken pipe|timed out|timeout|too many (connections|clients)|"
    r"deadlock|serializ|server has gone away|lost connection|terminating connection|closed the connection",
    re.IGNORECASE)
"""What a ConnectorX error (text only, no code) says when a retry may help."""


MID_STREAM = re.compile(r"cx writer failed: Source\(")
"""A panic of ConnectorX's writer thread because its source (the database) failed."""
MYSQL_ERROR = re.compile(r"MySqlError \{ (ERROR \d+ \(\w+\): .*?) \}")
POSTGRES_ERROR = re.compile(r'code: SqlState\(E?(\w+)\), message: "((?:[^"\\]|\\.)*)"')


def decimal_is_exact(precision: int, scale: int) -> bool:
    return 0 <= scale <= CONNECTORX_SCALE and precision - scale <= CONNECTORX_INTEGER_DIGITS


def is_panic(exc: BaseException) -> bool:
    return type(exc).__name__ == "PanicException"


def is_transient(exc: BaseException) -> bool:
    return not is_panic(exc) and bool(TRANSIENT_TEXT.search(str(exc)))


def database_error(exc: BaseException) -> str | None:
    """The database's message when `exc` is ConnectorX's panic over a query the database failed mid-stream (None:
    another panic, e.g. a value it cannot convert)."""
    text = str(exc)
    if not is_panic(exc) or not MID_STREAM.search(text):
        return None
    if match := MYSQL_ERROR.search(text):
        return match.group(1)
    if match := POSTGRES_ERROR.search(text):
        return f"{match.group(2)} (SQLSTATE {match.group(1)})"
    return " ".join(MID_STREAM.split(text, maxsplit=1)[-1].split()).rstrip(")")


def _converted(exc: BaseException) -> bool:
    return isinstance(exc, Exception) or is_panic(exc)


def open_stream(url: str, query: str, describe: Describe, *, whole: bool = False,
                **options: Any) -> pa.RecordBatchReader:
    """The rows of `query` as a stream; `whole`: read them all before returning (for a bounded result, such as a key
    page). ConnectorX's stream holds the GIL while it waits for the database — every other thread of the process
    (the writer encoding and sending the previous page) stops meanwhile — while a whole read releases it."""
    import connectorx

    os.environ["RUST_BACKTRACE"] = "0"  # a panic (a failed query, see database_error) prints no backtrace
    try:
        result = connectorx.read_sql(url, query, return_type="arrow" if whole else "arrow_stream", **options)
    except BaseException as exc:
        if not _converted(exc):
            raise
        raise describe(exc, is_panic(exc)) from None
    if isinstance(result, pa.Table):
        return pa.RecordBatchReader.from_batches(result.schema, result.to_batches())
    assert isinstance(result, pa.RecordBatchReader)
    return result


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
