"""PostgREST through supabase-py, with every failure a `RestError` that keeps the HTTP status.

postgrest-py turns a JSON error body into `APIError` with only the body's fields: a gateway's `{"message": …}`
(502, 503, 504, 429 from Supabase's API gateway) or an older PostgREST's bare `{}` 404 arrive without a code, and
without the status. The session records each response's status, so errors are classified by status and
SQLSTATE, not only by the body's code:

- transient (retry may help): transport failures, 408/425/429/5xx without a definitive PostgreSQL code,
  PostgREST's connection and schema-cache codes (PGRST000-PGRST003) and transient SQLSTATEs (serialization
  failures, deadlocks, statement timeouts, connection loss);
- `not_visible`: a table PostgREST's schema cache does not know (yet): PGRST205, 42P01, or a bare 404;
- `statement_timeout`: 57014, the role's statement timeout (8 s for Supabase's API roles) cancelled the request;
- `schema_not_exposed`: PGRST106, the schema is not in the Data API's exposed schemas.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from osiris_core.masking import scrub_text
from osiris_drivers.connection import import_client, is_instance
from osiris_drivers.postgres.connection import TRANSIENT_SQLSTATES

if TYPE_CHECKING:
    from postgrest import APIResponse, SyncRequestBuilder
    from supabase import Client

TRANSIENT_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504, 520, 521, 522, 523, 524})
TRANSIENT_POSTGREST_CODES = frozenset({"PGRST000", "PGRST001", "PGRST002", "PGRST003"})
"""Cannot connect to the database, connection pool timeout, schema cache not loaded yet."""
UNKNOWN_TABLE_CODES = frozenset({"PGRST205", "42P01"})
SCHEMA_NOT_EXPOSED = "PGRST106"
STATEMENT_TIMEOUT = "57014"
PK_MARK = "<pk/>"
"""How PostgREST's OpenAPI description marks a primary-key column."""


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
SCHEMA_CACHE_WAIT_S = 20.0
"""How long a table the writer just created may take to appear in PostgREST's schema cache (its own budget:
PostgREST reloads asynchronously after `NOTIFY pgrst`, seconds on a large schema)."""


def _is_sqlstate(code: str) -> bool:
    return len(code) == 5 and code.isalnum() and code.upper() == code and not code.startswith("PGRST")


class RestError(Exception):
    """A failed PostgREST call: what the server (or the way to it) said, and the HTTP status (None: no answer)."""

    def __init__(self, *, status: int | None, code: str | None, message: str, details: str | None = None,
                 hint: str | None = None) -> None:
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.hint = hint
        super().__init__(self.describe())

    @property
    def sqlstate(self) -> str | None:
        return self.code if self.code and _is_sqlstate(self.code) else None

    @property
    def not_visible(self) -> bool:
        """PostgREST does not know the table (yet): a new table waits for a schema-cache reload."""
        if self.code in UNKNOWN_TABLE_CODES:
            return True
        return self.status == 404 and not self.code and not self.message

    @property
    def statement_timeout(self) -> bool:
        return self.code == STATEMENT_TIMEOUT

    @property
    def schema_not_exposed(self) -> bool:
        return self.code == SCHEMA_NOT_EXPOSED

    @property
    def transient(self) -> bool:
        if self.status is None:
            return True  # no answer: refused, reset or timed out on the way
        if self.sqlstate:
            return self.sqlstate.startswith(TRANSIENT_SQLSTATES)
        if self.code in TRANSIENT_POSTGREST_CODES:
            return True
        return self.status in TRANSIENT_STATUSES and not (self.code and self.code.startswith("PGRST"))

    def describe(self) -> str:
        """One line: `code: message (details)`, or the HTTP status where the body had no code."""
        head = self.code or (f"HTTP {self.status}" if self.status is not None else "no answer")
        text = f"{head}: {self.message or 'empty answer'}" + (f" ({self.details})" if self.details else "")
        return scrub_text(" ".join(text.split()))


def key_columns(definition: dict[str, Any] | None) -> list[str] | None:
    """The primary-key columns an OpenAPI table definition marks (in column order); None if none."""
    properties = (definition or {}).get("properties") or {}
    keys = [name for name, prop in properties.items()
            if isinstance(prop, dict) and PK_MARK in str(prop.get("description") or "")]
    return keys or None


def rest_client(url: str, key: str, schema: str) -> Client:
    """supabase-py's client for `schema`, its own retries off (a missing library is `ClientMissing`)."""
    import_client("supabase", project="supabase", family="supabase")
    from supabase import ClientOptions, create_client

    return create_client(url, key, options=ClientOptions(schema=schema, postgrest_client_retry=False))


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


class Rest:
    """supabase-py's PostgREST client for one schema; `execute` raises `RestError` (no raw library errors).

    supabase-py's own retries (GET after 503/520, with up to 7 s of sleeps) are off: callers retry with their
    own policy and events.
    """

    def __init__(self, url: str, key: str, schema: str) -> None:
        self.schema = schema
        self._client = rest_client(url, key, schema)
        self._status: int | None = None
        self._client.postgrest.session.event_hooks["response"].append(self._seen)

    def _seen(self, response: Any) -> None:
        self._status = int(response.status_code)

    def table(self, name: str) -> SyncRequestBuilder:
        return self._client.table(name)

    def call(self, request: Callable[[], APIResponse]) -> APIResponse:
        """`request()` (a built postgrest-py request's `execute`), its failure a `RestError`."""
        import httpx

        self._status = None
        try:
            return request()
        except httpx.TransportError as exc:
            raise RestError(status=None, code=None, message=f"{type(exc).__name__}: {exc}") from None
        except Exception as exc:
            if not is_instance(exc, "postgrest.exceptions", "APIError"):
                raise
            error: Any = exc
            raise RestError(status=self._status, code=_text(error.code), message=_text(error.message) or "",
                            details=_text(error.details), hint=_text(error.hint)) from None

    def primary_key(self, table: str, *, retry: RetryPolicy = DEFAULT_RETRY,
                    sleep: Callable[[float], None] = time.sleep) -> list[str] | None:
        """The table's primary-key columns from PostgREST's OpenAPI root (in column order); None when PostgREST
        does not say (root disabled, no privilege, no key). Transient failures are retried."""
        return key_columns(self.definition(table, retry=retry, sleep=sleep))

    def definition(self, table: str, *, retry: RetryPolicy = DEFAULT_RETRY,
                   sleep: Callable[[float], None] = time.sleep) -> dict[str, Any] | None:
        """The table as PostgREST's OpenAPI root describes it (`properties` name → column in column order,
        `required`: the NOT NULL ones); None when PostgREST does not say. Transient failures are retried."""
        import httpx

        delays = retry.delays()
        while True:
            try:
                response = self._client.postgrest.session.get("", headers={"Accept": "application/openapi+json"})
                status: int | None = response.status_code
            except httpx.HTTPError:
                status = None
            if status is None or status in TRANSIENT_STATUSES:
                delay = next(delays, None)
                if delay is None:
                    return None
                sleep(delay)
                continue
            try:
                document = response.json() if status == 200 else None
            except ValueError:
                document = None
            break
        definition = (document or {}).get("definitions", {}).get(table) if isinstance(document, dict) else None
        if not isinstance(definition, dict) or not isinstance(definition.get("properties"), dict):
            return None
        return definition

    def wait_visible(self, table: str, *, budget_s: float = SCHEMA_CACHE_WAIT_S,
                     sleep: Callable[[float], None] = time.sleep) -> float:
        """Wait until PostgREST's schema cache knows `table` (a read of no rows succeeds); the seconds waited.

        Raises the last `RestError` when the budget runs out, or at once when the error is neither "not
        visible yet" nor transient.
        """
        start = time.monotonic()
        delay = 0.05
        while True:
            try:
                self.call(self.table(table).select("*").limit(0).execute)
                return time.monotonic() - start
            except RestError as exc:
                if not (exc.not_visible or exc.transient) or time.monotonic() - start + delay > budget_s:
                    raise
            sleep(delay)
            delay = min(delay * 2, 1.0)
