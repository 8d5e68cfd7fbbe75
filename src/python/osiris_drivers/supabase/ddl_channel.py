"""DDL channels: how SQL reaches a Supabase database — psycopg2 over `pg_dsn`, or HTTP SQL with the service key.

Statements are SQL text: identifiers are double-quoted (`PostgresDialect.quote_ident`, immune to server settings)
and string literals are escape strings (`quote_literal`), safe whatever `standard_conforming_strings` is.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import urllib.error
import urllib.request
from abc import ABC, abstractmethod
from typing import Any, ClassVar

from osiris_core.masking import scrub_text
from osiris_drivers.connection import is_instance
from osiris_drivers.postgres.connection import TRANSIENT_SQLSTATES, pg_connection
from osiris_drivers.postgres.dialect import quote_literal

HTTP_TIMEOUT_S = 60
NO_ROUTE = "no route matched"
"""Supabase's gateway (Kong) answering a path it does not route: hosted projects have no `/pg/query`."""
GATEWAY_STATUSES = frozenset({408, 500, 502, 503, 504, 520, 521, 522, 523, 524})
"""Answers from the way to PostgreSQL, not from it: the query may have run (and committed) regardless."""


class DdlError(Exception):
    """A SQL channel could not run a statement.

    `transient`: a retry may succeed. `ambiguous`: the statements may have run and committed although no answer
    said so (a timeout, a dropped connection, a gateway error): only a load marker tells. `no_endpoint`: there is
    no HTTP SQL endpoint at that URL (hosted Supabase).
    """

    def __init__(self, message: str, *, transient: bool = False, ambiguous: bool = False, no_endpoint: bool = False,
                 cause: BaseException | None = None) -> None:
        super().__init__(message)
        self.transient = transient
        self.ambiguous = ambiguous
        self.no_endpoint = no_endpoint
        self.cause = cause


def may_have_committed(exc: BaseException) -> bool:
    """Whether a failed SQL call may still have committed (ask the load marker)."""
    if isinstance(exc, DdlError):
        return exc.ambiguous
    return is_instance(exc, "psycopg2", "Error") and not getattr(exc, "pgcode", None)


class DdlChannel(ABC):
    """Runs SQL in one transaction and returns the rows of the last statement as dicts."""

    name: ClassVar[str]

    @abstractmethod
    def run(self, sql: str) -> list[dict[str, Any]]: ...

    def table_columns(self, schema: str, table: str) -> list[str] | None:
        """The table's columns in order, or None when it does not exist."""
        rows = self.run(
            "SELECT a.attname AS name FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            f"WHERE n.nspname = {quote_literal(schema)} AND c.relname = {quote_literal(table)} "
            "AND c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum")
        if rows:
            return [str(r["name"]) for r in rows]
        exists = self.run(
            "SELECT count(*) AS n FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            f"WHERE n.nspname = {quote_literal(schema)} AND c.relname = {quote_literal(table)}")
        return [] if exists and int(exists[0]["n"]) else None


class Psycopg2Channel(DdlChannel):
    """psycopg2 over a DSN. Errors propagate (the family's `problem` explains them), except a connection lost
    after the statements were sent, which may have committed: a `DdlError` marked ambiguous."""

    name = "psycopg2"

    def __init__(self, dsn: str) -> None:
        self._dsn = dsn

    def run(self, sql: str) -> list[dict[str, Any]]:
        with pg_connection(self._dsn) as connection:  # a failure to connect: nothing ran
            try:
                with connection.cursor() as cursor:
                    cursor.execute(sql)
                    rows: list[dict[str, Any]] = []
                    if cursor.description is not None:
                        names = [d[0] for d in cursor.description]
                        rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
                connection.commit()
            except Exception as exc:
                if not may_have_committed(exc):
                    raise
                text = " ".join(str(exc).split()) or type(exc).__name__
                raise DdlError(f"lost the connection to PostgreSQL while it ran the statements ({text})",
                               transient=True, ambiguous=True, cause=exc) from None
            return rows


class HttpSqlChannel(DdlChannel):
    """POST `{"query": sql}` to the connection's `sql_url` (pg-meta's `/pg/query` on self-hosted Supabase) with
    the key as bearer token."""

    name = "http_sql"

    def __init__(self, sql_url: str, key: str) -> None:
        self._url = sql_url
        self._key = key

    def run(self, sql: str) -> list[dict[str, Any]]:
        request = urllib.request.Request(
            self._url, data=json.dumps({"query": sql}).encode(), method="POST",
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {self._key}",
                     "apikey": self._key})
        try:
            with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S) as response:
                body = response.read()
        except urllib.error.HTTPError as exc:
            raise self._http_error(exc.code, exc.read()) from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            reason = getattr(exc, "reason", exc)
            sent = not isinstance(reason, ConnectionRefusedError | socket.gaierror)
            raise DdlError(f"cannot reach {scrub_text(self._url)}: {reason or type(exc).__name__}", transient=True,
                           ambiguous=sent) from None
        try:
            result = json.loads(body) if body else []
        except ValueError:
            result = None
        if not isinstance(result, list):
            raise DdlError(f"unexpected answer from {scrub_text(self._url)}: expected a JSON array of rows")
        return [dict(row) for row in result]

    def _http_error(self, status: int, raw: bytes) -> DdlError:
        """pg-meta's error (`{"error", "message", "code": SQLSTATE, …}`), or the gateway's (`{"message"}`)."""
        text = raw.decode("utf-8", "replace")
        body: Any = None
        with contextlib.suppress(ValueError):
            body = json.loads(text)
        fields = body if isinstance(body, dict) else {}
        message = str(fields.get("message") or fields.get("error") or text).strip()
        code = str(fields.get("code") or "")
        url = scrub_text(self._url)
        detail = scrub_text(" ".join(message.split()))
        if status == 404 and NO_ROUTE in message.lower():
            return DdlError(f"no HTTP SQL endpoint at {url} (HTTP 404: {detail})", no_endpoint=True)
        sqlstate = code if len(code) == 5 and code.isalnum() else ""
        if sqlstate:
            return DdlError(f"HTTP {status} from {url}: {sqlstate}: {detail}",
                            transient=sqlstate.startswith(TRANSIENT_SQLSTATES))
        gateway = status in GATEWAY_STATUSES
        return DdlError(f"HTTP {status} from {url}: {detail}", transient=gateway or status == 429,
                        ambiguous=gateway)
