"""The `local` backend: an E2B-compatible server on this machine (`osiris_remote.sandbox_server`), spoken to
through the real `e2b` SDK with the server's per-run access token; the server lives as long as `--e2b-timeout`
allows, and its files in a temporary folder (or `--sandbox-root`)."""

from __future__ import annotations

import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from osiris_remote.backends.base import Sandbox, SandboxOptions
from osiris_remote.backends.e2b import E2BSandbox

if TYPE_CHECKING:
    from osiris_remote.sandbox_server import LocalSandboxServer


class LocalSandbox(E2BSandbox):
    """The protocol over a local sandbox server; killing it stops the server and every process it started."""

    def __init__(self, server: LocalSandboxServer) -> None:
        super().__init__(server.sandbox(), default_python=sys.executable)
        self._server = server

    def kill(self) -> None:
        self._server.stop()


@contextmanager
def open_local(options: SandboxOptions) -> Iterator[Sandbox]:
    """A fresh local sandbox; on exit its server stops and (without `local_root`) its files are removed."""
    from osiris_remote.sandbox_server import LocalSandboxServer

    root = options.local_root or Path(tempfile.mkdtemp(prefix="osiris-sandbox-"))
    try:
        # The token stays in this process: the server checks it, the SDK object sends it.
        with LocalSandboxServer(root, lifetime=options.lifetime_s) as server:
            sandbox = LocalSandbox(server)
            try:
                yield sandbox
            finally:
                sandbox.kill()
    finally:
        if options.local_root is None:
            shutil.rmtree(root, ignore_errors=True)
