"""`limit_malloc_arenas` caps the arenas glibc gives new threads (so a long run's freed pages cannot pile up in
one arena per reader thread)."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="M_ARENA_MAX is glibc's")

THREADS = """
import ctypes, sys, threading
from osiris_core.malloc_arenas import limit_malloc_arenas
if sys.argv[1] == "limited":
    assert limit_malloc_arenas()
gate = threading.Barrier(8)
def allocate():
    gate.wait()  # all eight threads allocate at once: each wants an arena of its own
    kept.append([bytearray(50_000) for _ in range(20)])
kept = []
threads = [threading.Thread(target=allocate) for _ in range(8)]
for t in threads: t.start()
for t in threads: t.join()
ctypes.CDLL(None).malloc_stats()  # one "Arena N:" block per arena, on stderr
"""


def _arenas(mode: str) -> int:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    env.pop("MALLOC_ARENA_MAX", None)
    done = subprocess.run([sys.executable, "-c", THREADS, mode], env=env, capture_output=True, text=True, check=True)
    return sum(1 for line in done.stderr.splitlines() if line.startswith("Arena "))


def test_threads_share_at_most_two_arenas_once_limited() -> None:
    assert _arenas("limited") <= 2


def test_without_the_limit_threads_get_arenas_of_their_own() -> None:
    """The control: the test above would pass for nothing if these threads never got arenas of their own."""
    assert _arenas("default") > 2
