"""Bound glibc's malloc arenas in a process that runs pipelines, so its peak memory does not grow with the run.

glibc gives threads their own arenas (up to 8 per core) and keeps the pages they freed. ConnectorX's reader
threads allocate each batch in Rust with malloc, a new thread per key page: over a long read the freed pages of
many arenas add up (P1: +39 MB from 1M to 10M rows while Arrow's own pool held 10 MB). Two arenas keep the
peak flat; Arrow's buffers live in its own pool (mimalloc), not here.
"""

from __future__ import annotations

import ctypes

M_ARENA_MAX = -8
"""`mallopt` parameter (glibc's malloc.h)."""
ARENAS = 2


def limit_malloc_arenas(arenas: int = ARENAS) -> bool:
    """At most `arenas` malloc arenas from now on (call it before threads start); False where the C library is
    not glibc (nothing changes)."""
    try:
        libc = ctypes.CDLL(None)  # the process's own symbols: its C library
        mallopt = libc.mallopt
        libc.gnu_get_libc_version  # noqa: B018 (only glibc has it: musl's mallopt ignores M_ARENA_MAX)
    except (OSError, AttributeError, TypeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    return bool(mallopt(M_ARENA_MAX, arenas))
