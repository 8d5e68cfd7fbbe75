"""Sandbox backends by name. Each opens a sandbox that speaks the Osiris sandbox protocol (`base.Sandbox`); the
sandbox executor (`osiris_remote.proxy`) speaks nothing else.

Adding a backend — say Docker — takes one new module and one registration line. The module,
`osiris_remote/backends/docker.py`::

    class DockerSandbox:            # implements base.Sandbox: put/get/exists/make_dir/run/kill, default_python, home
        ...

    @contextmanager
    def open_docker(options: SandboxOptions) -> Iterator[Sandbox]:
        sandbox = DockerSandbox(image=options.template or "python:3.11", lifetime_s=options.lifetime_s)
        try:
            yield sandbox
        finally:
            sandbox.kill()

and in `BACKENDS` below: `"docker": open_docker,`. `osiris run --sandbox docker` and `osiris parity --sandbox
docker` then work (the CLI's choices are the names here), with the same bundle, worker, events and run card.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Final

from osiris_core.errors import InputError
from osiris_remote.backends.base import Sandbox, SandboxLost, SandboxOpener, SandboxOptions, StdinWriter
from osiris_remote.backends.e2b import open_e2b
from osiris_remote.backends.local import open_local

BACKENDS: Final[dict[str, SandboxOpener]] = {
    "local": open_local,
    "e2b": open_e2b,
}
PUBLIC_NETWORK_ONLY: Final = frozenset({"e2b"})
"""Backends whose sandboxes reach only the public internet: not this machine, its private networks or sockets."""


def refuses_private_hosts(options: SandboxOptions) -> bool:
    """Whether connections to hosts the sandbox cannot reach are refused before it opens (`reach_private_hosts`)."""
    if options.reach_private_hosts is not None:
        return not options.reach_private_hosts
    return options.backend in PUBLIC_NETWORK_ONLY


def open_sandbox(options: SandboxOptions) -> AbstractContextManager[Sandbox]:
    """A fresh sandbox of `options.backend`, closed on exit."""
    opener = BACKENDS.get(options.backend)
    if opener is None:
        raise InputError(f"no sandbox backend '{options.backend}'", hint=f"use one of {sorted(BACKENDS)}")
    return opener(options)


__all__ = ["BACKENDS", "PUBLIC_NETWORK_ONLY", "Sandbox", "SandboxLost", "SandboxOptions", "StdinWriter", "open_sandbox",
           "refuses_private_hosts"]
