"""The Osiris sandbox protocol: all the sandbox executor asks of a sandbox, whatever backend provides it.

Paths are relative to the sandbox user's home (`osiris/bundle.zip`), which the backend asks the sandbox for once
(`home`: `/home/user` on E2B's base template, another folder for a template with another user, a folder on this
machine for `local`). `put` and `get` stream, with no deadline on the whole transfer, so large inputs and outputs
never sit in memory whole nor fail for taking long. `run` returns the command's exit code (a non-zero one is no
error of the sandbox) and raises `SandboxLost` when the sandbox itself is gone or unreachable; with `on_start` the
command gets a stdin pipe, the only way anything secret reaches it (an environment variable is visible to every
process listing: envd's `List` returns each command's `envs`, and envd logs `Start` requests).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Protocol

from osiris_core.errors import RunError


class SandboxLost(RunError):
    """The sandbox stopped answering: it expired, was killed, or cannot be reached."""


StdinWriter = Callable[[bytes], None]
"""Writes to a running command's stdin."""


class Sandbox(Protocol):
    """One open sandbox."""

    @property
    def default_python(self) -> str:
        """The interpreter to run when `--sandbox-python` is not given."""

    @property
    def home(self) -> str:
        """The absolute path of the sandbox user's home, as the sandbox reports it: where relative paths live."""

    def put(self, path: str, data: bytes | BinaryIO) -> None:
        """Write a file (parent folders are created), from bytes or an open binary file read to its end."""

    def get(self, path: str, into: BinaryIO) -> None:
        """Stream a file's bytes into `into`."""

    def exists(self, path: str) -> bool: ...

    def make_dir(self, path: str) -> None:
        """Create a folder and its parents (an existing one is fine)."""

    def run(self, command: str, *, cwd: str, env: Mapping[str, str], on_stdout: Callable[[str], None],
            on_stderr: Callable[[str], None], on_start: Callable[[StdinWriter], None] | None = None) -> int:
        """Run a shell command in `cwd` with `env` added, streaming its output as it comes; its exit code.

        With `on_start`, the command gets a stdin pipe, and `on_start` is called once it runs with a writer to it
        (which `on_stdout` may call). A write that fails ends the command and says why on `on_stderr`.
        """

    def kill(self) -> None:
        """End the sandbox and everything running in it (idempotent)."""


@dataclass(frozen=True)
class SandboxOptions:
    """Which sandbox to open and how to use it. Every field is honoured; none is decorative."""

    backend: str = "local"
    """A name in `osiris_remote.backends.BACKENDS`."""
    template: str | None = None
    """The backend's image of the sandbox (an E2B template); None for its default."""
    lifetime_s: int = 3600
    """How long the sandbox may live; at the end it is killed with its processes."""
    env: dict[str, str] = field(default_factory=dict)
    """Extra environment variables for the worker (--e2b-env K=V)."""
    python: str | None = None
    """Interpreter inside the sandbox; default the backend's `Sandbox.default_python`."""
    bundle_path: Path | None = None
    """A prebuilt bundle to ship (--bundle), checked to be the one this host would build."""
    local_root: Path | None = None
    """Backends whose files live on this machine: keep them in this folder after the run (default: removed)."""
    install_deps: bool = False
    """Before the worker starts, pip-install in the sandbox the locked, hash-checked third-party projects the
    manifest needs (`osiris_remote.deps`); the interpreter must have pip."""
    reach_private_hosts: bool | None = None
    """Whether the sandbox reaches this machine, its private networks and Unix sockets: None as the backend does
    (`backends.PUBLIC_NETWORK_ONLY`: E2B does not); False refuses connections to such hosts before the sandbox
    opens (`osiris_remote.reachability`; `--e2b-like` for the local sandbox); True skips that check
    (`--e2b-allow-private-hosts`, for an E2B template on a VPN)."""


SandboxOpener = Callable[[SandboxOptions], AbstractContextManager[Sandbox]]
"""A backend: opens a fresh sandbox, killed (and whatever it left on this machine removed) on exit."""
