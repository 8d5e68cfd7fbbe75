"""A small, protocol-faithful PostgREST-compatible HTTP server for tests.

It is backed by a real PostgreSQL database (via psycopg 3) and speaks the subset of the PostgREST
wire protocol that supabase-py / postgrest-py use, so the real ``supabase`` client can be pointed at
it::

    with PostgrestServer("host=127.0.0.1 dbname=test", api_key="k") as server:
        client = supabase.create_client(server.url, "k")
        client.table("items").insert([{"id": 1}]).execute()

Implemented on ``/rest/v1/<table>`` (see ``docs`` in the methods below for details):

* Field names as PostgREST's grammar reads them (``pFieldName``): double-quoted with backslash escapes, or
  runs of letters, digits, ``_``, ``$`` and spaces joined by ``-``; anything else must be quoted.
* ``GET``/``HEAD``: ``select=`` (columns, ``alias:col``, ``col::type``, ``*``), horizontal filters
  (``eq neq gt gte lt lte like ilike match imatch is in cs cd ov isdistinct``, ``not.`` prefix,
  ``or=``/``and=`` logic trees), ``order=``, ``limit=``/``offset=``, ``Range``/``Range-Unit`` headers,
  ``Prefer: count=exact|planned|estimated`` (all counted exactly) with ``Content-Range`` and
  206/416 statuses, ``Accept: application/vnd.pgrst.object+json`` (``.single()``) and
  ``nulls=stripped``.
* ``POST``: insert of a JSON object or array, ``?columns=``, ``Prefer: return=minimal|representation|
  headers-only``, ``resolution=merge-duplicates|ignore-duplicates`` with ``?on_conflict=``,
  ``missing=default``; one request is one transaction.
* ``PATCH`` (update) and ``DELETE`` with filters and ``Prefer: return=...``.
* Errors in PostgREST's JSON shape ``{"code","details","hint","message"}``, SQLSTATEs mapped to HTTP
  statuses the way PostgREST maps them.
* A schema cache of tables and columns that, like PostgREST's, only learns about DDL when it is
  reloaded: by :meth:`PostgrestServer.reload_schema` (at once), or by ``NOTIFY pgrst, 'reload schema'``
  (the server really ``LISTEN``s on the channel) ``reload_delay_s`` later, asynchronously, as PostgREST
  does: until then a new table is unknown (``PGRST205``, or with ``not_found="empty"`` an older
  PostgREST's bare 404 with ``{}``).
* ``GET /rest/v1/``: the OpenAPI (Swagger 2.0) description of the tables the role may read, primary-key
  columns marked ``<pk/>`` in their descriptions as PostgREST marks them.

As on a Supabase project, every request runs as a non-owner role with real grants (``SET LOCAL ROLE``):
the key decides it (an HS256 JWT signed with ``jwt_secret`` by its ``role`` claim, ``api_key`` as
``service_role``, ``anon_key`` as ``anon``; no key configured: ``anon``). ``grants="explicit"`` (the
default, Supabase's since 2026) grants new tables to nobody; ``"legacy"`` grants every table of an exposed
schema to the API roles. Each request has the role's ``statement_timeout`` (``statement_timeout_ms``) and
reads at most ``max_rows`` rows (PostgREST's ``db-max-rows``; Supabase's default is 1000).

Besides, ``POST /pg/query`` (also ``/sql``) with ``{"query": "..."}`` runs SQL as the owner in one
transaction and answers the rows of the last statement that returned rows, as pg-meta does; with
``sql_enabled = False`` it answers like hosted Supabase's gateway, 404 ``no Route matched``.

Faults for tests: :meth:`PostgrestServer.fail_next` (gateway-shaped bodies without a code by default),
:meth:`PostgrestServer.fail_sql_next` (before the query runs, or after it committed, or a dropped
connection) and :meth:`PostgrestServer.slow_writes` (statement timeouts from the real PostgreSQL).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import difflib
import json
import re
import socket
import threading
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Final, Literal, cast
from urllib.parse import parse_qsl, unquote, urlsplit

import psycopg
from psycopg import sql
from psycopg.pq import TransactionStatus

from tests.support.supabase_platform import NO_ROUTE, Grants, apply_grants, ensure_api_roles, gateway_body, jwt_claims

__all__ = ["PostgrestError", "PostgrestServer", "RecordedRequest", "TableInfo"]

REST_PREFIX: Final = "/rest/v1"
SQL_PATH: Final = "/sql"
PG_META_PATH: Final = "/pg/query"
FaultBody = Literal["gateway", "postgrest", "empty"]
_JSON_CT: Final = "application/json; charset=utf-8"
_OBJECT_MEDIA: Final = "application/vnd.pgrst.object+json"
_ARRAY_MEDIA: Final = "application/vnd.pgrst.array+json"
_RESERVED_PARAMS: Final = frozenset({"select", "columns", "order", "limit", "offset", "on_conflict"})
_LOGIC_PARAMS: Final = frozenset({"or", "and", "not.or", "not.and"})
_CAST_RE: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_ ]*(\[\])?$")
_RANGE_RE: Final = re.compile(r"^\s*(?:items\s*=\s*)?(\d+)-(\d*)\s*$")
_BINARY_OPS: Final[Mapping[str, str]] = {
    "eq": "=",
    "neq": "<>",
    "gt": ">",
    "gte": ">=",
    "lt": "<",
    "lte": "<=",
    "like": "LIKE",
    "ilike": "ILIKE",
    "match": "~",
    "imatch": "~*",
    "cs": "@>",
    "cd": "<@",
    "ov": "&&",
    "isdistinct": "IS DISTINCT FROM",
}
_IS_VALUES: Final[Mapping[str, str]] = {
    "null": "IS NULL",
    "not_null": "IS NOT NULL",
    "true": "IS TRUE",
    "false": "IS FALSE",
    "unknown": "IS UNKNOWN",
}
_RELOAD_PAYLOADS: Final = frozenset({"", "reload schema"})


# --------------------------------------------------------------------------------------------------
# Errors


class PostgrestError(Exception):
    """An error answered in PostgREST's JSON shape."""

    def __init__(
        self,
        status: int,
        code: str | None,
        message: str,
        *,
        details: str | None = None,
        hint: str | None = None,
        headers: Sequence[tuple[str, str]] = (),
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.hint = hint
        self.headers = tuple(headers)

    def body(self) -> dict[str, str | None]:
        if self.code is None and not self.message:
            return {}  # a bare error: an older PostgREST's 404 for an unknown table
        return {"code": self.code, "details": self.details, "hint": self.hint, "message": self.message}


def _parse_error(message: str, details: str | None = None) -> PostgrestError:
    return PostgrestError(400, "PGRST100", message, details=details)


def sqlstate_http_status(sqlstate: str | None, message: str = "") -> int:
    """The HTTP status PostgREST answers for a PostgreSQL error (PostgREST's ``pgErrorStatus``)."""
    if sqlstate is None:
        return 503
    exact: dict[str, int] = {
        "23503": 409,
        "23505": 409,
        "25006": 405,
        "53400": 500,
        "57P01": 503,
        "P0001": 400,
        "42883": 404,
        "42P01": 404,
        "42P17": 500,
        "42501": 403,
    }
    if sqlstate in exact:
        return exact[sqlstate]
    if sqlstate == "21000":
        return 400 if "requires a WHERE clause" in message else 500
    by_class: dict[str, int] = {
        "08": 503,
        "09": 500,
        "0L": 403,
        "0P": 403,
        "25": 500,
        "28": 403,
        "2D": 500,
        "38": 500,
        "39": 500,
        "3B": 500,
        "40": 500,
        "53": 503,
        "54": 500,
        "55": 500,
        "57": 500,
        "58": 500,
        "F0": 500,
        "HV": 500,
        "P0": 500,
        "XX": 500,
    }
    return by_class.get(sqlstate[:2], 400)


def _pg_error(exc: psycopg.Error, role: str | None = None) -> PostgrestError:
    diag = exc.diag
    message = diag.message_primary or str(exc).strip() or type(exc).__name__
    if exc.sqlstate is None:
        return PostgrestError(
            503, "PGRST001", "Database client error. Retrying the connection.", details=message
        )
    status = sqlstate_http_status(exc.sqlstate, message)
    if exc.sqlstate == "42501" and role == "anon":
        status = 401  # PostgREST: insufficient privilege is 401 without a JWT role, 403 with one
    return PostgrestError(
        status,
        exc.sqlstate,
        message,
        details=diag.message_detail,
        hint=diag.message_hint,
    )


# --------------------------------------------------------------------------------------------------
# Schema cache


@dataclass(frozen=True)
class TableInfo:
    """A table, view or foreign table as known to the schema cache."""

    schema: str
    name: str
    columns: tuple[str, ...]
    primary_key: tuple[str, ...]

    @property
    def ident(self) -> sql.Identifier:
        return sql.Identifier(self.schema, self.name)


_TABLES_SQL: Final = """
SELECT n.nspname, c.relname, a.attname
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
WHERE c.relkind IN ('r', 'v', 'm', 'f', 'p') AND n.nspname = ANY(%s)
ORDER BY n.nspname, c.relname, a.attnum
"""

_PKEYS_SQL: Final = """
SELECT n.nspname, c.relname, a.attname
FROM pg_catalog.pg_constraint k
JOIN pg_catalog.pg_class c ON c.oid = k.conrelid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
CROSS JOIN LATERAL unnest(k.conkey) WITH ORDINALITY AS u(attnum, ord)
JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum = u.attnum
WHERE k.contype = 'p' AND n.nspname = ANY(%s)
ORDER BY n.nspname, c.relname, u.ord
"""


def _load_schema_cache(
    conn: psycopg.Connection[Any], schemas: Sequence[str]
) -> dict[tuple[str, str], TableInfo]:
    columns: dict[tuple[str, str], list[str]] = {}
    pkeys: dict[tuple[str, str], list[str]] = {}
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(_TABLES_SQL, [list(schemas)])
        for nsp, rel, att in cur.fetchall():
            columns.setdefault((nsp, rel), []).append(att)
        cur.execute(_PKEYS_SQL, [list(schemas)])
        for nsp, rel, att in cur.fetchall():
            pkeys.setdefault((nsp, rel), []).append(att)
    return {
        key: TableInfo(key[0], key[1], tuple(cols), tuple(pkeys.get(key, ())))
        for key, cols in columns.items()
    }


# --------------------------------------------------------------------------------------------------
# Query-string grammar (a subset of PostgREST's)


def _split_top(text: str, sep: str = ",") -> list[str]:
    """Split on ``sep`` outside double quotes and parentheses."""
    parts: list[str] = []
    buf: list[str] = []
    depth = 0
    in_quotes = False
    escaped = False
    for ch in text:
        if escaped:
            escaped = False
        elif in_quotes:
            if ch == "\\":
                escaped = True
            elif ch == '"':
                in_quotes = False
        elif ch == '"':
            in_quotes = True
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == sep and depth == 0:
            parts.append("".join(buf))
            buf = []
            continue
        buf.append(ch)
    parts.append("".join(buf))
    return parts


def _unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        return re.sub(r"\\(.)", r"\1", text[1:-1])
    return text


def _is_ident_char(ch: str) -> bool:
    """PostgREST's ``pIdentifierChar``: ``letter <|> digit <|> oneOf "_ $"`` (letters in Unicode, digits ASCII)."""
    return ch.isalpha() or ch in "0123456789_ $"


def _take_name(text: str) -> tuple[str, str]:
    """Read a field name as PostgREST's ``pFieldName`` does; answer it and the rest of ``text``.

    A name is either double-quoted (inside, a backslash escapes the next character) or runs of identifier
    characters joined by ``-`` (not ``->``), with surrounding spaces stripped. Anything else (``,`` ``.`` ``:``
    ``(`` ``"`` ...) ends an unquoted name, so such names must be quoted.
    """
    if text.startswith('"'):
        i = 1
        while i < len(text):
            if text[i] == "\\":
                i += 2
                continue
            if text[i] == '"':
                return _unquote(text[: i + 1]), text[i + 1 :]
            i += 1
        raise _parse_error(f'unterminated quoted name in "{text}"')
    i = 0
    while i < len(text):
        if _is_ident_char(text[i]):
            i += 1
        elif text[i] == "-" and i > 0 and i + 1 < len(text) and _is_ident_char(text[i + 1]):
            i += 1  # a dash joins two identifier runs; "->" starts a JSON path
        else:
            break
    name = text[:i].strip()
    if not name:
        raise _parse_error(f'failed to parse a field name at "{text}"',
                           details="quote names with characters other than letters, digits, _ $ space and -")
    return name, text[i:]


def _column_list(value: str) -> list[str]:
    """``pColumns``: field names separated by commas (``columns=`` and ``on_conflict=``)."""
    names: list[str] = []
    for part in _split_top(value):
        name, rest = _take_name(part.strip())
        if rest.strip():
            raise _parse_error(f'failed to parse column list "{value}"', details=f"unexpected {rest!r}")
        names.append(name)
    return names


@dataclass(frozen=True)
class _Cond:
    column: str
    op: str
    value: str
    negate: bool


@dataclass(frozen=True)
class _Logic:
    op: str  # "AND" | "OR"
    negate: bool
    children: tuple[_Cond | _Logic, ...]


def _parse_opexpr(column: str, expr: str, *, in_tree: bool) -> _Cond:
    negate = False
    if expr.startswith("not."):
        negate, expr = True, expr[4:]
    op, dot, value = expr.partition(".")
    if not dot or (op not in _BINARY_OPS and op not in ("is", "in")):
        raise _parse_error(
            f"failed to parse filter ({expr})", details=f"unknown or unsupported operator {op!r}"
        )
    if in_tree and op != "in":
        value = _unquote(value)
    return _Cond(column, op, value, negate)


def _parse_logic(value: str, op: str, negate: bool) -> _Logic:
    value = value.strip()
    if not (value.startswith("(") and value.endswith(")")):
        raise _parse_error(f"failed to parse logic tree ({value})", details='expected "(" ... ")"')
    children: list[_Cond | _Logic] = []
    for raw in _split_top(value[1:-1]):
        item = raw.strip()
        neg = False
        if item.startswith("not.") and item[4:].startswith(("and(", "or(")):
            neg, item = True, item[4:]
        if item.startswith(("and(", "or(")):
            sub_op, _, rest = item.partition("(")
            children.append(_parse_logic("(" + rest, sub_op.upper(), neg))
            continue
        column, rest = _take_name(item)
        if not rest.startswith("."):
            raise _parse_error(f"failed to parse logic tree ({value})")
        children.append(_parse_opexpr(column, rest[1:], in_tree=True))
    return _Logic(op, negate, tuple(children))


def _parse_in_list(value: str) -> list[str]:
    value = value.strip()
    if not (value.startswith("(") and value.endswith(")")):
        raise _parse_error(f"failed to parse filter (in.{value})", details='expected "(" ... ")"')
    inner = value[1:-1]
    if not inner.strip():
        return []
    return [_unquote(v.strip()) for v in _split_top(inner)]


def _cond_sql(cond: _Cond, table: TableInfo) -> tuple[sql.Composable, list[object]]:
    col = sql.SQL("{}.{}").format(table.ident, sql.Identifier(cond.column))
    params: list[object] = []
    expr: sql.Composable
    if cond.op == "is":
        suffix = _IS_VALUES.get(cond.value.lower())
        if suffix is None:
            raise _parse_error(
                f"failed to parse filter (is.{cond.value})",
                details="is. accepts null, not_null, true, false or unknown",
            )
        expr = sql.SQL("{} " + suffix).format(col)
    elif cond.op == "in":
        values = _parse_in_list(cond.value)
        if values:
            expr = sql.SQL("{} IN ({})").format(col, sql.SQL(", ").join(sql.Placeholder() * len(values)))
            params.extend(values)
        else:
            expr = sql.SQL("FALSE")
    else:
        value = cond.value.replace("*", "%") if cond.op in ("like", "ilike") else cond.value
        expr = sql.SQL("{} " + _BINARY_OPS[cond.op] + " {}").format(col, sql.Placeholder())
        params.append(value)
    if cond.negate:
        expr = sql.SQL("NOT ({})").format(expr)
    return expr, params


def _filter_sql(node: _Cond | _Logic, table: TableInfo) -> tuple[sql.Composable, list[object]]:
    if isinstance(node, _Cond):
        return _cond_sql(node, table)
    parts: list[sql.Composable] = []
    params: list[object] = []
    for child in node.children:
        part, child_params = _filter_sql(child, table)
        parts.append(sql.SQL("({})").format(part))
        params.extend(child_params)
    if parts:
        expr: sql.Composable = sql.SQL(" " + node.op + " ").join(parts)
    else:
        expr = sql.SQL("TRUE" if node.op == "AND" else "FALSE")
    if node.negate:
        expr = sql.SQL("NOT ({})").format(expr)
    return expr, params


@dataclass(frozen=True)
class _SelectItem:
    column: str | None  # None for all columns (an unquoted ``*``; a quoted ``"*"`` is a column named *)
    alias: str | None
    cast: str | None


def _parse_select(value: str) -> list[_SelectItem]:
    items: list[_SelectItem] = []
    for raw in _split_top(value):
        text = raw.strip()
        if not text:
            raise _parse_error(f'failed to parse select parameter ("{value}")', details="empty item")
        if text == "*":
            items.append(_SelectItem(None, None, None))
            continue
        if text.startswith("..."):
            raise PostgrestError(
                400, "PGRST200", "Embedded resources are not supported by this test server", details=text
            )
        name, rest = _take_name(text)
        alias: str | None = None
        if rest.startswith(":") and not rest.startswith("::"):
            alias = name
            name, rest = _take_name(rest[1:])
        if rest.startswith(("(", "!")):
            raise PostgrestError(
                400, "PGRST200", "Embedded resources are not supported by this test server", details=text
            )
        if rest.startswith("->"):
            raise _parse_error("JSON path selection is not supported by this test server", details=text)
        cast_type: str | None = None
        if rest.startswith("::"):
            cast_type = rest[2:].strip()
            if not _CAST_RE.match(cast_type):
                raise _parse_error(
                    f'failed to parse select parameter ("{value}")', details=f"bad cast {rest}"
                )
        elif rest.strip():
            raise _parse_error(
                f'failed to parse select parameter ("{value}")', details=f"unexpected {rest!r}"
            )
        items.append(_SelectItem(name, alias, cast_type))
    return items


def _select_sql(items: Sequence[_SelectItem], source: sql.Composable) -> sql.Composable:
    parts: list[sql.Composable] = []
    for item in items:
        if item.column is None:
            parts.append(sql.SQL("{}.*").format(source))
            continue
        col: sql.Composable = sql.SQL("{}.{}").format(source, sql.Identifier(item.column))
        if item.cast is not None:
            col = sql.SQL("CAST({} AS {})").format(col, sql.SQL(item.cast))
        parts.append(sql.SQL("{} AS {}").format(col, sql.Identifier(item.alias or item.column)))
    return sql.SQL(", ").join(parts)


def _order_sql(value: str, source: sql.Composable) -> sql.Composable:
    terms: list[sql.Composable] = []
    for raw in _split_top(value):
        name, rest = _take_name(raw.strip())
        if rest and not rest.startswith("."):
            raise _parse_error(f'failed to parse order ("{value}")', details=f"unexpected {rest!r}")
        modifiers = [m for m in rest.split(".") if m]
        direction, nulls = "", ""
        for mod in modifiers:
            if mod in ("asc", "desc"):
                direction = " " + mod.upper()
            elif mod in ("nullsfirst", "nullslast"):
                nulls = " NULLS " + mod[5:].upper()
            else:
                raise _parse_error(f'failed to parse order ("{value}")', details=f"unexpected {mod!r}")
        terms.append(sql.SQL("{}.{}" + direction + nulls).format(source, sql.Identifier(name)))
    return sql.SQL(", ").join(terms)


def _non_negative_int(name: str, value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise _parse_error(f'failed to parse {name} parameter ("{value}")') from None
    if number < 0:
        raise _parse_error(f'failed to parse {name} parameter ("{value}")', details="must be >= 0")
    return number


# --------------------------------------------------------------------------------------------------
# Requests and responses


@dataclass(frozen=True)
class RecordedRequest:
    """One request the server answered (for assertions in tests)."""

    method: str
    path: str
    query: str
    headers: Mapping[str, str]
    body: bytes
    status: int


DROP_CONNECTION: Final = 0
"""A `_Response` status: close the connection without answering."""


@dataclass
class _Response:
    status: int
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)


def _json_response(status: int, payload: object, headers: Iterable[tuple[str, str]] = ()) -> _Response:
    body = json.dumps(payload, separators=(",", ":")).encode()
    return _Response(status, body, [("Content-Type", _JSON_CT), *headers])


def _error_response(err: PostgrestError) -> _Response:
    return _json_response(err.status, err.body(), err.headers)


@dataclass(frozen=True)
class _Request:
    method: str
    path: str
    query: list[tuple[str, str]]
    headers: Mapping[str, str]  # lower-cased names; repeated headers joined by ", "
    body: bytes

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def prefer(self) -> dict[str, str]:
        prefs: dict[str, str] = {}
        for item in (self.header("prefer") or "").split(","):
            key, _, value = item.strip().partition("=")
            if key:
                prefs[key.strip().lower()] = value.strip()
        return prefs


def _jsonable(value: object) -> object:
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return str(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return "\\x" + bytes(value).hex()
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return str(value)


def _content_range(lower: int, upper: int, total: int | None) -> str:
    range_part = f"{lower}-{upper}" if total != 0 and lower <= upper else "*"
    return f"{range_part}/{'*' if total is None else total}"


def _join_json_arrays(texts: Sequence[str]) -> str:
    inner = [t.strip()[1:-1] for t in texts if t.strip() != "[]"]
    return "[" + ", ".join(inner) + "]"


# --------------------------------------------------------------------------------------------------
# The server


class _HTTPServer(ThreadingHTTPServer):
    """Threading HTTP server that can close its open keep-alive connections on stop."""

    daemon_threads = True
    owner: PostgrestServer

    def __init__(self, address: tuple[str, int]) -> None:
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(
        self, request: socket.socket | tuple[bytes, socket.socket], client_address: Any
    ) -> None:
        if isinstance(request, socket.socket):
            with self._open_lock:
                self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: socket.socket | tuple[bytes, socket.socket]) -> None:
        if isinstance(request, socket.socket):
            with self._open_lock:
                self._open.discard(request)
        super().shutdown_request(request)

    def close_open_connections(self) -> None:
        with self._open_lock:
            open_sockets = list(self._open)
        for sock in open_sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "postgrest-test"
    timeout = 60

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _handle(self) -> None:
        body = self._read_body()
        split = urlsplit(self.path)
        headers: dict[str, str] = {}
        for name, value in self.headers.items():
            key = name.lower()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        request = _Request(
            method=self.command,
            path=split.path,
            query=parse_qsl(split.query, keep_blank_values=True),
            headers=headers,
            body=body,
        )
        owner = cast(_HTTPServer, self.server).owner
        response = owner._dispatch(request)
        owner._record(request, split.query, response.status)
        if response.status == DROP_CONNECTION:
            self.close_connection = True  # the connection ends without an answer
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.send_response(response.status)
        for name, value in response.headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if self.command != "HEAD" and response.body:
            self.wfile.write(response.body)

    do_GET = do_HEAD = do_POST = do_PATCH = do_PUT = do_DELETE = do_OPTIONS = _handle


class PostgrestServer:
    """PostgREST-compatible server on a free local port, backed by a real PostgreSQL database.

    ``schema`` is the exposed schema (PostgREST's ``db-schemas``; a comma-separated list is
    accepted, the first being the default). Keys: ``api_key`` (opaque, runs as ``service_role``, like
    Supabase's secret keys), ``anon_key`` (opaque, ``anon``) and JWTs signed with ``jwt_secret`` (their
    ``role`` claim); when any is configured, a request must present one (``apikey`` header and/or
    ``Authorization: Bearer``) and every credential presented must be valid. ``db_channel`` is the NOTIFY
    channel the schema cache listens on (PostgREST's ``db-channel``); set ``listen=False`` to reload
    only explicitly. See the module docstring for ``grants``, ``reload_delay_s``, ``max_rows``,
    ``statement_timeout_ms`` and ``not_found``.
    """

    def __init__(
        self,
        pg_dsn: str,
        *,
        schema: str = "public",
        api_key: str | None = None,
        anon_key: str | None = None,
        jwt_secret: str | None = None,
        host: str = "127.0.0.1",
        db_channel: str = "pgrst",
        listen: bool = True,
        grants: Grants = "explicit",
        reload_delay_s: float = 0.3,
        max_rows: int | None = 1000,
        statement_timeout_ms: int | None = 8000,
        not_found: Literal["pgrst205", "empty"] = "pgrst205",
        sql_enabled: bool = True,
    ) -> None:
        self.pg_dsn = pg_dsn
        self.schemas: tuple[str, ...] = tuple(s.strip() for s in schema.split(",") if s.strip())
        if not self.schemas:
            raise ValueError("at least one schema must be exposed")
        self.api_key = api_key
        self.anon_key = anon_key
        self.jwt_secret = jwt_secret
        self.db_channel = db_channel
        self.reload_delay_s = reload_delay_s
        self.max_rows = max_rows
        self.statement_timeout_ms = statement_timeout_ms
        self.not_found = not_found
        self.sql_enabled = sql_enabled
        """False: the SQL endpoint answers like hosted Supabase's gateway (404, no Route matched)."""
        self.requests: list[tuple[str, str]] = []
        self.log: list[RecordedRequest] = []
        self.roles: list[str] = []
        """The database role of each REST request, in order."""
        self._lock = threading.Lock()
        self._pool: list[psycopg.Connection[Any]] = []
        self._cache: dict[tuple[str, str], TableInfo] = {}
        self._faults: list[tuple[int, frozenset[str] | None, FaultBody, str | None]] = []
        self._sql_faults: list[tuple[int, bool, str | None]] = []
        self._row_cost_s = 0.0
        self._timers: list[threading.Timer] = []
        self._stopped = threading.Event()
        self._listener: threading.Thread | None = None
        with self._connection() as conn:
            ensure_api_roles(conn)
            apply_grants(conn, self.schemas, grants)
        self.reload_schema()
        self._httpd = _HTTPServer((host, 0))
        self._httpd.owner = self
        try:
            if listen:
                ready = threading.Event()
                self._listener = threading.Thread(
                    target=self._listen_loop, args=(ready,), name="postgrest-listen", daemon=True
                )
                self._listener.start()
                if not ready.wait(10):
                    raise RuntimeError(f"could not LISTEN on channel {db_channel!r}")
            self._thread = threading.Thread(
                target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="postgrest-http"
            )
            self._thread.daemon = True
            self._thread.start()
        except BaseException:
            self._stopped.set()
            self._httpd.server_close()
            self._close_pool()
            raise
        port = self._httpd.server_address[1]
        self.url = f"http://{host}:{port}"
        self.rest_url = self.url + REST_PREFIX
        self.sql_url = self.url + SQL_PATH

    # ---- lifecycle -------------------------------------------------------------------------------

    def __enter__(self) -> PostgrestServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop serving, end the LISTEN thread and close pooled connections (idempotent)."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        with self._lock:
            timers, self._timers = self._timers, []
        for timer in timers:
            timer.cancel()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._httpd.close_open_connections()
        self._thread.join(5)
        if self._listener is not None:
            self._listener.join(5)
        self._close_pool()

    # ---- test hooks ------------------------------------------------------------------------------

    def fail_next(
        self,
        n: int,
        status: int = 503,
        *,
        methods: Iterable[str] | None = None,
        body: FaultBody = "gateway",
        path: str | None = None,
    ) -> None:
        """Answer the next ``n`` data requests (``/rest/v1/...``) with ``status``; ``fail_next(0)`` clears.

        ``body``: ``gateway`` is what Supabase's gateway answers when PostgREST does not
        (``{"message": …}``, no code); ``postgrest`` is PostgREST-shaped JSON with ``code`` = the status;
        ``empty`` is ``{}``. With ``methods``, only requests of those HTTP methods are failed (and counted);
        with ``path``, only requests to that path (e.g. ``/rest/v1/items``).
        """
        allowed = frozenset(m.upper() for m in methods) if methods is not None else None
        with self._lock:
            if n == 0:
                self._faults.clear()
            self._faults.extend([(status, allowed, body, path)] * n)

    def fail_sql_next(
        self, n: int, status: int = 504, *, after_commit: bool = False, matching: str | None = None
    ) -> None:
        """Answer the next ``n`` SQL-endpoint requests with ``status`` (gateway-shaped), without running
        them; with ``after_commit``, after running and committing them (a gateway that timed out on a query
        that went on). ``status=0`` drops the connection instead of answering. With ``matching``, only queries
        containing that text are failed (and counted). ``fail_sql_next(0)`` clears."""
        with self._lock:
            if n == 0:
                self._sql_faults.clear()
            self._sql_faults.extend([(status, after_commit, matching)] * n)

    def slow_writes(self, seconds_per_row: float) -> None:
        """Make every REST insert, update and delete spend this long per row in its transaction (the real
        server's ``statement_timeout`` then cancels large ones with 57014)."""
        self._row_cost_s = seconds_per_row

    def reload_schema(self) -> None:
        """Reload the schema cache (tables, columns, primary keys) from the database, now."""
        with self._connection() as conn:
            cache = _load_schema_cache(conn, self.schemas)
        with self._lock:
            self._cache = cache

    def tables(self) -> list[TableInfo]:
        """The tables currently in the schema cache."""
        with self._lock:
            return list(self._cache.values())

    # ---- internals: connections ------------------------------------------------------------------

    @contextlib.contextmanager
    def _connection(self) -> Iterator[psycopg.Connection[Any]]:
        with self._lock:
            conn = self._pool.pop() if self._pool else None
        if conn is None or conn.closed:
            conn = psycopg.connect(self.pg_dsn, autocommit=True)
        try:
            yield conn
        finally:
            reusable = not conn.closed and conn.info.transaction_status == TransactionStatus.IDLE
            if reusable and not self._stopped.is_set():
                with self._lock:
                    self._pool.append(conn)
            else:
                conn.close()

    @contextlib.contextmanager
    def _api_cursor(self, role: str, *, read_only: bool = False) -> Iterator[psycopg.Cursor[Any]]:
        """One transaction as ``role``, with the role's statement timeout, as PostgREST runs a request."""
        with self._connection() as conn, conn.transaction(), conn.cursor() as cur:
            if read_only:
                cur.execute("SET TRANSACTION READ ONLY")
            cur.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(role)))
            if self.statement_timeout_ms is not None:
                cur.execute(sql.SQL("SET LOCAL statement_timeout = {}").format(sql.Literal(self.statement_timeout_ms)))
            yield cur

    def _close_pool(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, []
        for conn in pool:
            conn.close()

    def _listen_loop(self, ready: threading.Event) -> None:
        while not self._stopped.is_set():
            try:
                with psycopg.connect(self.pg_dsn, autocommit=True) as conn:
                    conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self.db_channel)))
                    ready.set()
                    while not self._stopped.is_set():
                        for note in conn.notifies(timeout=0.1):
                            if note.payload in _RELOAD_PAYLOADS:
                                self._schedule_reload()
            except psycopg.Error:
                if self._stopped.wait(0.2):
                    return

    def _schedule_reload(self) -> None:
        """Reload ``reload_delay_s`` from now, in the background (requests meanwhile see the old cache)."""
        timer = threading.Timer(self.reload_delay_s, self._reload_in_background)
        timer.daemon = True
        with self._lock:
            self._timers = [t for t in self._timers if t.is_alive()] + [timer]
        timer.start()

    def _reload_in_background(self) -> None:
        if self._stopped.is_set():
            return
        with contextlib.suppress(psycopg.Error):
            self.reload_schema()

    def _record(self, request: _Request, query: str, status: int) -> None:
        with self._lock:
            self.requests.append((request.method, request.path))
            self.log.append(
                RecordedRequest(
                    request.method, request.path, query, dict(request.headers), request.body, status
                )
            )

    # ---- internals: dispatch ---------------------------------------------------------------------

    def _dispatch(self, request: _Request) -> _Response:
        role: str | None = None
        try:
            if request.path == REST_PREFIX or request.path.startswith(REST_PREFIX + "/"):
                fault = self._take_fault(request.method, request.path)
                if fault is not None:
                    return self._fault_response(*fault)
                role = self._check_auth(request)
                with self._lock:
                    self.roles.append(role)
                return self._rest(request, role)
            if request.path in (SQL_PATH, PG_META_PATH) and self.sql_enabled:
                self._check_auth(request)
                return self._sql(request)
            return _json_response(404, {"message": NO_ROUTE})  # the gateway routes nothing else
        except PostgrestError as err:
            return _error_response(err)
        except psycopg.Error as exc:
            return _error_response(_pg_error(exc, role))
        except Exception as exc:  # a bug in this server: answer it rather than drop the connection
            return _error_response(PostgrestError(500, "PGRSTX00", f"{type(exc).__name__}: {exc}"))

    def _take_fault(self, method: str, path: str) -> tuple[int, FaultBody] | None:
        with self._lock:
            for i, (status, methods, body, only) in enumerate(self._faults):
                if (methods is None or method in methods) and (only is None or only == path):
                    del self._faults[i]
                    return status, body
        return None

    @staticmethod
    def _fault_response(status: int, body: FaultBody) -> _Response:
        if body == "empty":
            return _json_response(status, {})
        if body == "gateway":
            return _json_response(status, gateway_body(status))
        try:
            phrase = HTTPStatus(status).phrase
        except ValueError:
            phrase = "Error"
        return _json_response(status, {"code": str(status), "details": "injected fault", "hint": None,
                                       "message": phrase})

    def _key_role(self, credential: str) -> str | None:
        if self.api_key is not None and credential == self.api_key:
            return "service_role"
        if self.anon_key is not None and credential == self.anon_key:
            return "anon"
        claims = jwt_claims(credential, self.jwt_secret) if self.jwt_secret else None
        role = claims.get("role") if claims else None
        return role if isinstance(role, str) and role else None

    def _check_auth(self, request: _Request) -> str:
        """The database role of the request: the bearer token's, else the apikey's (PostgREST and Kong)."""
        if self.api_key is None and self.anon_key is None and self.jwt_secret is None:
            return "anon"
        presented: list[str] = []
        apikey = request.header("apikey")
        if apikey is not None:
            presented.append(apikey)
        authorization = request.header("authorization")
        if authorization is not None:
            scheme, _, token = authorization.partition(" ")
            presented.append(token.strip() if scheme.lower() == "bearer" else "")
        if not presented:
            raise PostgrestError(
                401,
                "PGRST302",
                "No API key found in request",
                hint="No `apikey` request header or url param was found.",
                headers=[("WWW-Authenticate", "Bearer")],
            )
        roles = [self._key_role(p) for p in presented]
        if any(r is None for r in roles):
            raise PostgrestError(
                401,
                "PGRST301",
                "Invalid API key",
                hint="Double check your Supabase `anon` or `service_role` API key.",
                headers=[
                    ("WWW-Authenticate", 'Bearer error="invalid_token", error_description="Invalid API key"')
                ],
            )
        return cast(str, roles[-1])

    # ---- /pg/query (pg-meta) ---------------------------------------------------------------------

    def _take_sql_fault(self, query: str) -> tuple[int, bool] | None:
        with self._lock:
            for i, (status, after_commit, matching) in enumerate(self._sql_faults):
                if matching is None or matching in query:
                    del self._sql_faults[i]
                    return status, after_commit
        return None

    def _sql(self, request: _Request) -> _Response:
        if request.method != "POST":
            raise PostgrestError(405, None, 'Use POST with a JSON body {"query": "..."}')
        try:
            payload = json.loads(request.body or b"null")
        except ValueError:
            return _json_response(400, {"error": "Invalid JSON body", "message": "Invalid JSON body"})
        query = payload.get("query") if isinstance(payload, dict) else None
        if not isinstance(query, str) or not query.strip():
            return _json_response(400, {"error": "query not found", "message": "query not found"})
        fault = self._take_sql_fault(query)
        if fault is not None and not fault[1]:
            return self._sql_fault_response(fault[0])
        rows: list[object] = []
        try:
            with self._connection() as conn, conn.transaction(), conn.cursor() as cur:
                cur.execute(query.encode())
                while True:
                    if cur.description is not None:
                        names = [d.name for d in cur.description]
                        result: list[object] = [dict(zip(names, map(_jsonable, row), strict=True))
                                                for row in cur.fetchall()]
                        rows = result if result else rows  # pg-meta: the last statement that returned rows
                    if not cur.nextset():
                        break
        except psycopg.Error as exc:
            err = _pg_error(exc)
            body = {"error": f"ERROR:  {err.code}: {err.message}", "message": err.message, "code": err.code,
                    "severity": "ERROR", "detail": err.details, "hint": err.hint}
            return _json_response(400, body)
        if fault is not None:
            return self._sql_fault_response(fault[0])
        return _json_response(200, rows)

    @staticmethod
    def _sql_fault_response(status: int) -> _Response:
        return _Response(DROP_CONNECTION) if status == DROP_CONNECTION else _json_response(status, gateway_body(status))

    # ---- /rest/v1 --------------------------------------------------------------------------------

    def _rest(self, request: _Request, role: str) -> _Response:
        resource = request.path[len(REST_PREFIX) :].strip("/")
        if not resource:
            if request.method not in ("GET", "HEAD"):
                raise PostgrestError(405, "PGRST117", f"Unsupported HTTP method: {request.method}")
            return self._openapi(self._request_schema(request), role)
        if resource.startswith("rpc/"):
            raise PostgrestError(
                404, "PGRST202", f"Could not find the function {unquote(resource[4:])} in the schema cache"
            )
        if "/" in resource:
            raise PostgrestError(404, None, f"Not found: {request.path}")
        schema = self._request_schema(request)
        table = self._lookup(schema, unquote(resource))
        if request.method in ("GET", "HEAD"):
            return self._read(request, table, role)
        if request.method == "POST":
            return self._insert(request, table, role)
        if request.method == "PATCH":
            return self._update(request, table, role)
        if request.method == "DELETE":
            return self._delete(request, table, role)
        raise PostgrestError(405, "PGRST117", f"Unsupported HTTP method: {request.method}")

    def _request_schema(self, request: _Request) -> str:
        header = "accept-profile" if request.method in ("GET", "HEAD") else "content-profile"
        schema = request.header(header)
        if schema is None:
            return self.schemas[0]
        if schema not in self.schemas:
            raise PostgrestError(
                406, "PGRST106", f"Invalid schema: {schema}",
                hint=f"Only the following schemas are exposed: {', '.join(self.schemas)}",
            )
        return schema

    def _lookup(self, schema: str, name: str) -> TableInfo:
        with self._lock:
            table = self._cache.get((schema, name))
            candidates = [n for (s, n) in self._cache if s == schema]
        if table is not None:
            return table
        if self.not_found == "empty":
            raise PostgrestError(404, None, "")  # an older PostgREST: a bare 404, body {}
        close = difflib.get_close_matches(name, candidates, n=1)
        raise PostgrestError(
            404,
            "PGRST205",
            f"Could not find the table '{schema}.{name}' in the schema cache",
            hint=f"Perhaps you meant the table '{schema}.{close[0]}'" if close else None,
        )

    # ---- request pieces ----------------------------------------------------------------------------

    @staticmethod
    def _params(request: _Request) -> tuple[dict[str, str], list[_Cond | _Logic]]:
        reserved: dict[str, str] = {}
        filters: list[_Cond | _Logic] = []
        for key, value in request.query:
            if key in _RESERVED_PARAMS:
                reserved[key] = value
            elif key in _LOGIC_PARAMS:
                negate = key.startswith("not.")
                filters.append(_parse_logic(value, key.removeprefix("not.").upper(), negate))
            else:
                column, rest = _take_name(key)
                if rest:
                    raise _parse_error(
                        f'"{key}" is not supported by this test server',
                        details="embedded or JSON-path filter",
                    )
                filters.append(_parse_opexpr(column, value, in_tree=False))
        return reserved, filters

    @staticmethod
    def _where(filters: Sequence[_Cond | _Logic], table: TableInfo) -> tuple[sql.Composable, list[object]]:
        if not filters:
            return sql.SQL(""), []
        expr, params = _filter_sql(_Logic("AND", False, tuple(filters)), table)
        return sql.SQL(" WHERE {}").format(expr), params

    @staticmethod
    def _media(request: _Request) -> tuple[bool, bool]:
        """(singular, strip_nulls) from the Accept header; 406 for media types not served."""
        accept = request.header("accept") or "*/*"
        for raw in accept.split(","):
            media, *params = (p.strip() for p in raw.split(";"))
            strip = "nulls=stripped" in params
            if media == _OBJECT_MEDIA:
                return True, strip
            if media in (_ARRAY_MEDIA, "application/json", "application/*", "*/*"):
                return False, strip
        raise PostgrestError(406, "PGRST107", f"None of these media types are available: {accept}")

    @staticmethod
    def _projection(
        source: sql.Composable,
        select: str | None,
        strip_nulls: bool,
        order: str | None = None,
        where: sql.Composable | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> sql.Composed:
        items = _parse_select(select) if select else [_SelectItem(None, None, None)]
        inner = sql.SQL("SELECT {} FROM {}{}").format(
            _select_sql(items, source), source, where or sql.SQL("")
        )
        if order:
            inner = sql.SQL("{} ORDER BY {}").format(inner, _order_sql(order, source))
        if limit is not None:
            inner = sql.SQL("{} LIMIT {}").format(inner, sql.Literal(limit))
        if offset:
            inner = sql.SQL("{} OFFSET {}").format(inner, sql.Literal(offset))
        agg = (
            "json_strip_nulls(coalesce(json_agg(_pgrst_t), '[]'))"
            if strip_nulls
            else ("coalesce(json_agg(_pgrst_t), '[]')")
        )
        return sql.SQL("SELECT " + agg + "::text, count(*) FROM ({}) _pgrst_t").format(inner)

    @staticmethod
    def _singular_body(text: str, count: int) -> str:
        if count != 1:
            raise PostgrestError(
                406,
                "PGRST116",
                "JSON object requested, multiple (or no) rows returned",
                details=f"The result contains {count} rows",
            )
        return text.strip()[1:-1].strip()

    @staticmethod
    def _range(request: _Request, reserved: Mapping[str, str]) -> tuple[int, int | None]:
        """The requested [lower, upper] (upper None = unbounded): Range header ∩ limit/offset."""
        lower, upper = 0, None
        header = request.header("range")
        if header is not None and (request.header("range-unit") or "items") == "items":
            m = _RANGE_RE.match(header)
            if m:
                lower = int(m.group(1))
                upper = int(m.group(2)) if m.group(2) else None
                if upper is not None and upper < lower:
                    raise PostgrestError(
                        416,
                        "PGRST103",
                        "Requested range not satisfiable",
                        details=f"The lower boundary must be lower than or equal to the upper boundary "
                        f"in the Range header ({header}).",
                    )
        offset = _non_negative_int("offset", reserved["offset"]) if "offset" in reserved else 0
        limit = _non_negative_int("limit", reserved["limit"]) if "limit" in reserved else None
        p_upper = offset + limit - 1 if limit is not None else None
        lower = max(lower, offset)
        if upper is None:
            upper = p_upper
        elif p_upper is not None:
            upper = min(upper, p_upper)
        return lower, upper

    @staticmethod
    def _count_wanted(prefs: Mapping[str, str]) -> bool:
        return prefs.get("count") in ("exact", "planned", "estimated")

    @staticmethod
    def _applied(prefs: Mapping[str, str], *keys: str) -> list[tuple[str, str]]:
        applied = [f"{k}={prefs[k]}" for k in keys if k in prefs]
        return [("Preference-Applied", ", ".join(applied))] if applied else []

    # ---- GET / HEAD ------------------------------------------------------------------------------

    def _openapi(self, schema: str, role: str) -> _Response:
        """The Swagger 2.0 root as PostgREST serves it (openapi-mode follow-privileges): the tables the role
        may read, each column's type, primary-key columns noted `<pk/>`."""
        definitions: dict[str, object] = {}
        with self._api_cursor(role, read_only=True) as cur:
            for table in sorted(self.tables(), key=lambda t: t.name):
                if table.schema != schema:
                    continue
                # A table dropped since the cache was loaded (another test's) is skipped, not an error: PostgREST
                # answers from its cache and never fails the whole description for one stale entry.
                cur.execute("SELECT to_regclass(%s) IS NOT NULL AND has_table_privilege(to_regclass(%s), 'SELECT')",
                            [f'"{table.schema}"."{table.name}"'] * 2)
                if not cast(tuple[bool], cur.fetchone())[0]:
                    continue
                cur.execute("SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
                            "WHERE a.attrelid = to_regclass(%s) AND a.attnum > 0 AND NOT a.attisdropped "
                            "ORDER BY a.attnum", [f'"{table.schema}"."{table.name}"'])
                properties: dict[str, object] = {}
                for column, pg_type in cur.fetchall():
                    prop: dict[str, object] = {"format": pg_type, "type": "string"}
                    if column in table.primary_key:
                        prop["description"] = "Note:\nThis is a Primary Key.<pk/>"
                    properties[column] = prop
                definitions[table.name] = {"type": "object", "properties": properties}
        document = {"swagger": "2.0", "info": {"title": "PostgREST API", "version": "test"},
                    "basePath": "/", "schemes": ["http"], "consumes": ["application/json"],
                    "produces": ["application/json"], "paths": {f"/{n}": {} for n in definitions},
                    "definitions": definitions}
        return _json_response(200, document, [("Content-Type", "application/openapi+json; charset=utf-8")])

    def _read(self, request: _Request, table: TableInfo, role: str) -> _Response:
        reserved, filters = self._params(request)
        singular, strip = self._media(request)
        prefs = request.prefer()
        lower, upper = self._range(request, reserved)
        if self.max_rows is not None:  # db-max-rows: no response has more rows, whatever was asked
            upper = lower + self.max_rows - 1 if upper is None else min(upper, lower + self.max_rows - 1)
        where, params = self._where(filters, table)
        limit = None if upper is None else max(upper - lower + 1, 0)
        query = self._projection(
            table.ident, reserved.get("select"), strip, reserved.get("order"), where, limit, lower
        )
        with self._api_cursor(role, read_only=True) as cur:
            cur.execute(query, params)
            body_text, returned = cast(tuple[str, int], cur.fetchone())
            total: int | None = None
            if self._count_wanted(prefs):
                cur.execute(sql.SQL("SELECT count(*) FROM {}{}").format(table.ident, where), params)
                total = cast(tuple[int], cur.fetchone())[0]
        if total is not None and lower > total:
            raise PostgrestError(
                416,
                "PGRST103",
                "Requested range not satisfiable",
                details=f"An offset of {lower} was requested, but there are only {total} rows.",
                headers=[("Content-Range", f"*/{total}")],
            )
        status = 200
        if total is not None and returned < total:
            status = 206
        if singular:
            body_text = self._singular_body(body_text, returned)
        headers = [
            ("Content-Type", (_OBJECT_MEDIA if singular else "application/json") + "; charset=utf-8"),
            ("Content-Range", _content_range(lower, lower + returned - 1, total)),
            *self._applied(prefs, "count"),
        ]
        return _Response(status, body_text.encode(), headers)

    # ---- mutations -------------------------------------------------------------------------------

    def _mutation_response(
        self,
        request: _Request,
        prefs: Mapping[str, str],
        texts: Sequence[str],
        count: int,
        *,
        created: bool,
        singular: bool,
        applied: Sequence[str],
    ) -> _Response:
        total = count if self._count_wanted(prefs) else None
        content_range = _content_range(1, 0, total) if created else _content_range(0, count - 1, total)
        headers = [("Content-Range", content_range), *self._applied(prefs, "return", "count", *applied)]
        returning = prefs.get("return", "minimal")
        if returning == "representation":
            body = _join_json_arrays(texts)
            if singular:
                body = self._singular_body(body, count)
            media = _OBJECT_MEDIA if singular else "application/json"
            headers.insert(0, ("Content-Type", media + "; charset=utf-8"))
            return _Response(201 if created else 200, body.encode(), headers)
        return _Response(201 if created else 204, b"", headers)

    def _run_mutations(
        self,
        statements: Sequence[tuple[sql.Composed, Sequence[object]]],
        singular: bool,
        role: str,
        rows: int = 1,
    ) -> tuple[list[str], int]:
        """Run (mutation CTE, params) statements in one transaction as ``role``; answer JSON texts and a row
        count. ``rows`` is what the request sends (what ``slow_writes`` charges for)."""
        texts: list[str] = []
        count = 0
        with self._api_cursor(role) as cur:
            if self._row_cost_s:
                cur.execute("SELECT pg_sleep(%s)", [self._row_cost_s * rows])
            for query, params in statements:
                cur.execute(query, params)
                text, n = cast(tuple[str, int], cur.fetchone())
                texts.append(text)
                count += n
            if singular and count != 1:  # PostgREST rolls back a singular mutation of != 1 rows
                self._singular_body("[]", count)
        return texts, count

    @staticmethod
    def _body_json(request: _Request) -> object:
        try:
            return json.loads(request.body or b"")
        except ValueError as exc:
            raise PostgrestError(400, "PGRST102", "Empty or invalid json", details=str(exc)) from None

    @staticmethod
    def _check_columns(table: TableInfo, columns: Iterable[str]) -> None:
        for column in columns:
            if column not in table.columns:
                raise PostgrestError(
                    400,
                    "PGRST204",
                    f"Could not find the '{column}' column of '{table.name}' in the schema cache",
                )

    def _wrap(
        self, mutation: sql.Composable, table: TableInfo, request: _Request, reserved: Mapping[str, str]
    ) -> sql.Composed:
        _, strip = self._media(request)
        returning = sql.SQL("{} RETURNING {}.*").format(mutation, table.ident)
        projection = self._projection(
            sql.Identifier("pgrst_source"), reserved.get("select"), strip, reserved.get("order")
        )
        return sql.SQL("WITH pgrst_source AS ({}) {}").format(returning, projection)

    def _insert(self, request: _Request, table: TableInfo, role: str) -> _Response:
        reserved, filters = self._params(request)
        if filters:
            raise _parse_error("Filters are not allowed on insert")
        singular, _ = self._media(request)
        prefs = request.prefer()
        payload = self._body_json(request)
        rows: list[dict[str, object]]
        if isinstance(payload, dict):
            rows = [payload]
        elif isinstance(payload, list) and all(isinstance(r, dict) for r in payload):
            rows = cast(list[dict[str, object]], payload)
        else:
            raise PostgrestError(
                400, "PGRST102", "Empty or invalid json", details="expected an object or array"
            )
        if "columns" in reserved:
            columns = _column_list(reserved["columns"])
        elif rows:
            columns = list(rows[0])
            if any(set(r) != set(columns) for r in rows[1:]):
                raise PostgrestError(400, "PGRST102", "All object keys must match")
        else:
            columns = []
        self._check_columns(table, columns)

        resolution = prefs.get("resolution")
        conflict: list[str] = []
        if resolution in ("merge-duplicates", "ignore-duplicates"):
            conflict = (
                _column_list(reserved["on_conflict"])
                if "on_conflict" in reserved
                else list(table.primary_key)
            )

        missing_default = prefs.get("missing") == "default"
        groups: list[tuple[list[str], list[dict[str, object]]]] = []
        for row in rows:
            cols = [c for c in columns if c in row] if missing_default else columns
            if groups and groups[-1][0] == cols:
                groups[-1][1].append(row)
            else:
                groups.append((cols, [row]))

        statements: list[tuple[sql.Composed, Sequence[object]]] = []
        for cols, group in groups:
            if not cols:
                for _ in group:
                    mutation = sql.SQL("INSERT INTO {} DEFAULT VALUES").format(table.ident)
                    statements.append((self._wrap(mutation, table, request, reserved), []))
                continue
            idents = sql.SQL(", ").join(map(sql.Identifier, cols))
            mutation = sql.SQL(
                "INSERT INTO {t} ({c}) SELECT {c} FROM json_populate_recordset(NULL::{t}, %s::json)"
            ).format(t=table.ident, c=idents)
            if conflict:
                target = sql.SQL(", ").join(map(sql.Identifier, conflict))
                if resolution == "merge-duplicates":
                    sets = sql.SQL(", ").join(
                        sql.SQL("{} = EXCLUDED.{}").format(sql.Identifier(c), sql.Identifier(c)) for c in cols
                    )
                    mutation = sql.SQL("{} ON CONFLICT ({}) DO UPDATE SET {}").format(mutation, target, sets)
                else:
                    mutation = sql.SQL("{} ON CONFLICT ({}) DO NOTHING").format(mutation, target)
            statements.append((self._wrap(mutation, table, request, reserved), [json.dumps(group)]))

        texts, count = self._run_mutations(statements, singular, role, len(rows)) if statements else ([], 0)
        applied = ["resolution"] if conflict else []
        if missing_default:
            applied.append("missing")
        return self._mutation_response(
            request, prefs, texts, count, created=True, singular=singular, applied=applied
        )

    def _update(self, request: _Request, table: TableInfo, role: str) -> _Response:
        reserved, filters = self._params(request)
        singular, _ = self._media(request)
        prefs = request.prefer()
        payload = self._body_json(request)
        if not isinstance(payload, dict):
            raise PostgrestError(400, "PGRST102", "Empty or invalid json", details="expected a JSON object")
        columns = list(payload)
        self._check_columns(table, columns)
        if not columns:
            return self._mutation_response(request, prefs, [], 0, created=False, singular=False, applied=())
        where, params = self._where(filters, table)
        body = sql.Identifier("pgrst_body")
        sets = sql.SQL(", ").join(
            sql.SQL("{} = {}.{}").format(sql.Identifier(c), body, sql.Identifier(c)) for c in columns
        )
        mutation = sql.SQL(
            "UPDATE {t} SET {sets} FROM (SELECT {c} FROM json_populate_record(NULL::{t}, %s::json)) {b}{w}"
        ).format(
            t=table.ident,
            sets=sets,
            c=sql.SQL(", ").join(map(sql.Identifier, columns)),
            b=body,
            w=where,
        )
        statement = self._wrap(mutation, table, request, reserved)
        texts, count = self._run_mutations([(statement, [json.dumps(payload), *params])], singular, role)
        return self._mutation_response(
            request, prefs, texts, count, created=False, singular=singular, applied=()
        )

    def _delete(self, request: _Request, table: TableInfo, role: str) -> _Response:
        reserved, filters = self._params(request)
        singular, _ = self._media(request)
        prefs = request.prefer()
        where, params = self._where(filters, table)
        mutation = sql.SQL("DELETE FROM {}{}").format(table.ident, where)
        texts, count = self._run_mutations(
            [(self._wrap(mutation, table, request, reserved), params)], singular, role
        )
        return self._mutation_response(
            request, prefs, texts, count, created=False, singular=singular, applied=()
        )
