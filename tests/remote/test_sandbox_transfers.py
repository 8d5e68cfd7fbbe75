"""Transfers to and from a sandbox stream with no deadline on the whole transfer: with the adapter's (and the
SDK's) request deadline set to one second, 64 MiB that take several seconds each way — from a slow disk, into a
slow disk, and from memory — arrive whole, without the whole file ever being held in memory on the way."""

from __future__ import annotations

import hashlib
import io
import sys
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from osiris_remote.backends.e2b import E2BSandbox
from osiris_remote.sandbox_server import LocalSandboxServer

DEADLINE_S = 1.0
SIZE = 64 * 1024 * 1024
RATE = 24 * 1024 * 1024
"""Bytes a second the slow files move: 64 MiB take over 2.5 s."""


class SlowFile(io.FileIO):
    """A file on a slow disk: reads and writes move at most RATE bytes a second."""

    def read(self, size: int | None = -1) -> bytes:
        data = super().read(-1 if size is None else size)
        time.sleep(len(data) / RATE)
        return data

    def write(self, data: bytes) -> int:  # type: ignore[override]
        time.sleep(len(data) / RATE)
        return super().write(data)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalSandboxServer]:
    with LocalSandboxServer(tmp_path_factory.mktemp("sandbox")) as srv:
        yield srv


@pytest.fixture(scope="module")
def big_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("data") / "big.bin"
    block = hashlib.sha512(b"osiris").digest() * 1024  # 64 KiB
    with path.open("wb") as handle:
        for index in range(SIZE // len(block)):
            handle.write(index.to_bytes(8, "big") + block[8:])
    return path


def _digest(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _timed(action: Callable[[], None]) -> tuple[float, int]:
    """Seconds `action` took and the peak of Python memory it allocated."""
    tracemalloc.start()
    started = time.monotonic()
    try:
        action()
        return time.monotonic() - started, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _sandbox(server: LocalSandboxServer) -> E2BSandbox:
    return E2BSandbox(server.sandbox(request_timeout=DEADLINE_S), default_python=sys.executable,
                      request_timeout_s=DEADLINE_S)


def test_a_slow_large_upload_outlasts_the_request_deadline(server: LocalSandboxServer, big_file: Path) -> None:
    sandbox = _sandbox(server)

    def upload() -> None:
        with SlowFile(big_file, "rb") as source:
            sandbox.put("osiris/work/big.bin", source)

    seconds, peak = _timed(upload)
    assert seconds > 2 * DEADLINE_S, "the upload was not slow: it proves nothing"
    assert _digest(server.app.layout.root / "home/user/osiris/work/big.bin") == _digest(big_file)
    assert peak < SIZE // 4, f"the upload held {peak} bytes in memory"


def test_a_slow_large_download_outlasts_the_request_deadline(server: LocalSandboxServer, big_file: Path,
                                                             tmp_path: Path) -> None:
    sandbox = _sandbox(server)
    sandbox.put("osiris/logs/big.bin", big_file.read_bytes())  # from memory: streamed too, under no deadline
    target = tmp_path / "back.bin"

    def download() -> None:
        with SlowFile(target, "wb") as sink:
            sandbox.get("osiris/logs/big.bin", sink)

    seconds, peak = _timed(download)
    assert seconds > 2 * DEADLINE_S, "the download was not slow: it proves nothing"
    assert _digest(target) == _digest(big_file)
    assert peak < SIZE // 4, f"the download held {peak} bytes in memory"


def test_other_calls_keep_the_deadline(server: LocalSandboxServer) -> None:
    sandbox = _sandbox(server)
    sandbox.make_dir("osiris/deadline")
    assert sandbox.exists("osiris/deadline") and sandbox.home == "/home/user"
