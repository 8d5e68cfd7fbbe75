"""Test support: local sandboxes registered as backends of their own (`osiris_remote.backends.BACKENDS`, the
documented way to add one), for what the plain `local` backend does not let a test do.

`ObservedLocalBackend` runs the local E2B-compatible sandbox server exactly as `--sandbox local` does, but with a
default user of the test's choosing (as a custom E2B template may have: `root`, whose home is `/root`, or any
other name, `/home/<name>`), and it keeps the servers it started so that a test can look into a sandbox while a run
uses it — through the real e2b SDK, with the server's token, as any other client of the sandbox could.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import pytest

from osiris_remote.backends import BACKENDS, Sandbox, SandboxOptions
from osiris_remote.backends.local import LocalSandbox
from osiris_remote.sandbox_server import DEFAULT_USER, LocalSandboxServer


@dataclass
class ObservedLocalBackend:
    """A local sandbox backend whose servers the test can reach (`servers`); `options.local_root` is required."""

    user: str = DEFAULT_USER
    servers: list[LocalSandboxServer] = field(default_factory=list)

    @contextmanager
    def open(self, options: SandboxOptions) -> Iterator[Sandbox]:
        assert options.local_root is not None, "give the test's sandbox a local_root"
        with LocalSandboxServer(options.local_root, lifetime=options.lifetime_s, user=self.user) as server:
            self.servers.append(server)
            sandbox = LocalSandbox(server)
            try:
                yield sandbox
            finally:
                sandbox.kill()


def register_backend(monkeypatch: pytest.MonkeyPatch, name: str, backend: ObservedLocalBackend) -> None:
    """Make `backend` the sandbox backend `name` for this test."""
    monkeypatch.setitem(BACKENDS, name, backend.open)
