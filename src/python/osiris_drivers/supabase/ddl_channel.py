"""DDL channels: how SQL reaches a Supabase database — psycopg2 over `pg_dsn`, or HTTP SQL with the service key.

Statements are SQL text: identifiers are double-quoted (`PostgresDialect.quote_ident`, immune to server settings)
and string literals are escape strings (`quote_literal`), safe whatever `standard_conforming_strings` is.
"""

from __future__ import annotations

import contextlib
import json
import urllib.error
import urllib.request
from abc import ABC, abstractmethod
from typing import Any, ClassVar

from osiris_core.masking import scrub_text
from osiris_drivers.postgres.connection import pg_connection
from osiris_drivers.postgres.dialect import quote_literal

HTTP_TIMEOUT_S = 60


class DdlError(Exception):
    """The HTTP SQL channel could not run a statement; `transient` when a retry may succeed."""

    def __init__(self, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


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
    """psycopg2 over a DSN; its errors propagate (the family's `problem` explains them)."""

    name = "psycopg2"

    def __init__(self, dsn: str) -> None:
        self._dsn = dsn

    def run(self, sql: str) -> list[dict[str, Any]]:
        with pg_connection(self._dsn) as connection:
            with connection.cursor() as cursor:
                cursor.execute(sql)
                rows: list[dict[str, Any]] = []
                if cursor.description is not None:
                    names = [d[0] for d in cursor.description]
                    rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
            connection.commit()
            return rows


class HttpSqlChannel(DdlChannel):
    """POST `{"query": sql}` to the connection's `sql_url` with the key as bearer token."""

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
            detail = exc.read().decode("utf-8", "replace")
            with contextlib.suppress(ValueError, AttributeError):
                detail = str(json.loads(detail).get("message", detail))
            raise DdlError(f"HTTP {exc.code} from {self._url}: {scrub_text(' '.join(detail.split()))}",
                           transient=exc.code in (429, 502, 503, 504)) from None
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            reason = getattr(exc, "reason", exc)
            raise DdlError(f"cannot reach {self._url}: {reason}", transient=True) from None
        result = json.loads(body) if body else []
        if not isinstance(result, list):
            raise DdlError(f"unexpected answer from {self._url}: expected a JSON array of rows")
        return [dict(row) for row in result]
