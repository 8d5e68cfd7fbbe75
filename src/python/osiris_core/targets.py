"""Credential-free URIs that name what a step read or wrote, in one format for every component.

Events `source_opened` and `output_written` carry them as `target`:

- a database object: ``<scheme>://<host>:<port>/<database>/<schema>.<table>`` (``postgresql``), or
  ``<scheme>://<host>:<port>/<database>/<table>`` where the family has no schemas (``mysql``);
- a database behind an HTTP API: ``https://<host>/<schema>.<table>`` (Supabase over PostgREST);
- a file: ``file:///absolute/path.csv``; an object inside a database file: ``duckdb:///abs/path.duckdb#schema.table``.

A query (rather than a table) is named by its database with ``#query``. No user, password or parameter
ever appears.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote, urlsplit


def _host(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def _part(text: str) -> str:
    return quote(text, safe="")


def database_uri(scheme: str, host: str, port: int | None, database: str, *objects: str) -> str:
    """``scheme://host:port/database/obj1.obj2``; each name percent-encoded, no credentials."""
    where = _host(host) + (f":{port}" if port is not None else "")
    tail = ".".join(_part(o) for o in objects)
    return f"{scheme}://{where}/{_part(database)}" + (f"/{tail}" if tail else "")


def api_uri(base_url: str, *objects: str) -> str:
    """``https://host/schema.table`` from an API base URL (its path, user info and query dropped)."""
    parts = urlsplit(base_url)
    host = parts.hostname or ""
    where = _host(host) + (f":{parts.port}" if parts.port else "")
    return f"{parts.scheme or 'https'}://{where}/" + ".".join(_part(o) for o in objects)


def file_uri(path: str | Path) -> str:
    """``file:///absolute/path`` of a local file (relative paths resolve against the working directory)."""
    return Path(path).absolute().as_uri()


def file_object_uri(scheme: str, path: str | Path, *objects: str) -> str:
    """``scheme:///absolute/path#schema.table``: an object inside a database file."""
    file_part = Path(path).absolute().as_uri()[len("file://"):]
    return f"{scheme}://{file_part}#" + ".".join(_part(o) for o in objects)
