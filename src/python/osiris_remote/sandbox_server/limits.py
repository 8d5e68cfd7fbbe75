"""Bounds on what one client can make the sandbox server hold, read or write."""

from __future__ import annotations

from dataclasses import dataclass

MiB = 1024 * 1024
GiB = 1024 * MiB


@dataclass(frozen=True)
class SandboxLimits:
    """Every bound the server enforces; the defaults are documented here and in the package docstring.

    Exceeding one is answered with a one-line error: 413 for ``/files`` bodies, Connect
    ``resource_exhausted`` for RPCs.
    """

    upload_bytes: int = 2 * GiB
    """Largest ``POST /files`` body as sent (compressed, with multipart framing)."""
    upload_decoded_bytes: int = 2 * GiB
    """Most bytes one ``POST /files`` request may write (after gzip decoding, all parts together)."""
    upload_files: int = 1000
    """Most files in one multipart upload."""
    rpc_message_bytes: int = 4 * MiB
    """Largest Connect request message (after decompression)."""
    list_depth: int = 32
    """Deepest ``ListDir`` depth."""
    list_entries: int = 100_000
    """Most entries one ``ListDir`` answer may hold."""
    watchers: int = 32
    """Most directory watchers (``WatchDir`` streams and ``CreateWatcher`` ones) at a time."""
    watch_entries: int = 100_000
    """Most entries below a watched directory (each poll scans them all)."""
    processes: int = 256
    """Most processes started through ``Start`` running at a time."""
    connections: int = 256
    """Most open HTTP connections (uvicorn answers 503 beyond)."""
    drain_bytes: int = 16 * MiB
    """Most of a refused request's body read (and discarded) so the client sees the answer."""
