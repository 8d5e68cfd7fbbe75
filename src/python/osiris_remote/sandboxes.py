"""Sandbox backends. Both speak to the sandbox through the real `e2b` SDK: `e2b` to the E2B cloud,
`local` to an E2B-compatible server on this machine (the SDK in debug mode, pointed at a free loopback port,
with the server's per-run access token; the server lives as long as `--e2b-timeout` allows)."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from osiris_core.errors import InputError, RunError

if TYPE_CHECKING:
    from e2b import Sandbox

Backend = Literal["local", "e2b"]
E2B_API_KEY_ENV = "E2B_API_KEY"


@dataclass(frozen=True)
class SandboxOptions:
    """How to get a sandbox and run the worker in it. Every field is honoured; none is decorative."""

    backend: Backend = "local"
    template: str | None = None
    lifetime_s: int = 3600
    """How long the sandbox may live: E2B kills it after this, and so does the local server (with its processes)."""
    step_timeout_s: float | None = None
    """Per-step limit enforced by the worker."""
    env: dict[str, str] = field(default_factory=dict)
    """Extra environment variables for the worker (--e2b-env K=V)."""
    python: str | None = None
    """Interpreter inside the sandbox; default `python3` on E2B, this interpreter for the local backend."""
    bundle_path: Path | None = None
    checksums: bool = False
    local_root: Path | None = None
    """Local backend: keep the sandbox's files in this folder after the run (default: a removed temp dir)."""
    install_deps: bool = False
    """Before the worker starts, pip-install in the sandbox the locked, hash-checked third-party projects the
    manifest needs (`osiris_remote.deps`); the interpreter must have pip."""

    def interpreter(self) -> str:
        return self.python or (sys.executable if self.backend == "local" else "python3")


@contextmanager
def open_sandbox(options: SandboxOptions) -> Iterator[Sandbox]:
    """A fresh sandbox, killed (or its server stopped and its files removed) on exit."""
    from e2b import Sandbox

    if options.backend == "local":
        from osiris_remote.sandbox_server import LocalSandboxServer

        root = options.local_root or Path(tempfile.mkdtemp(prefix="osiris-sandbox-"))
        try:
            # The token stays in this process: the server checks it, the SDK object sends it.
            with LocalSandboxServer(root, lifetime=options.lifetime_s) as server:
                yield server.sandbox()
        finally:
            if options.local_root is None:
                shutil.rmtree(root, ignore_errors=True)
        return
    if not os.environ.get(E2B_API_KEY_ENV):
        raise InputError(f"{E2B_API_KEY_ENV} is not set", hint="export your E2B API key, or use --sandbox local")
    try:
        sandbox = Sandbox.create(template=options.template, timeout=options.lifetime_s)
    except Exception as exc:
        raise RunError(f"could not create an E2B sandbox: {exc}",
                       hint="check E2B_API_KEY, the template name and your E2B quota") from None
    try:
        yield sandbox
    finally:
        sandbox.kill()
