"""The `e2b` backend, and the protocol adapter over any `e2b` SDK sandbox (the local backend uses it too).

This module and the local sandbox server (`osiris_remote.sandbox_server`) are the only places that import `e2b`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, BinaryIO

from osiris_core.errors import InputError, RunError
from osiris_remote.backends.base import Sandbox, SandboxLost, SandboxOptions

if TYPE_CHECKING:
    from e2b import Sandbox as SdkSandbox

E2B_API_KEY_ENV = "E2B_API_KEY"
SDK_HOME = "/home/user"
"""The sandbox user's home as the SDK names it (the local server maps it to a folder on this machine)."""


class E2BSandbox:
    """The Osiris sandbox protocol over an `e2b` SDK `Sandbox`."""

    def __init__(self, sdk: SdkSandbox, *, default_python: str) -> None:
        self._sdk = sdk
        self._default_python = default_python

    @property
    def default_python(self) -> str:
        return self._default_python

    @staticmethod
    def _path(path: str) -> str:
        return f"{SDK_HOME}/{path}" if path else SDK_HOME

    def put(self, path: str, data: bytes | BinaryIO) -> None:
        self._sdk.files.write(self._path(path), data)

    def get(self, path: str, into: BinaryIO) -> None:
        for chunk in self._sdk.files.read(self._path(path), format="stream"):
            into.write(chunk)

    def exists(self, path: str) -> bool:
        return bool(self._sdk.files.exists(self._path(path)))

    def make_dir(self, path: str) -> None:
        self._sdk.files.make_dir(self._path(path))

    def run(self, command: str, *, cwd: str, env: Mapping[str, str], on_stdout: Callable[[str], None],
            on_stderr: Callable[[str], None]) -> int:
        from e2b import CommandExitException

        try:
            self._sdk.commands.run(command, envs=dict(env), cwd=self._path(cwd), timeout=0, on_stdout=on_stdout,
                                   on_stderr=on_stderr)
        except CommandExitException as exc:
            return int(exc.exit_code)
        except Exception as exc:
            raise SandboxLost(f"{type(exc).__name__}: {' '.join(str(exc).split())}",
                              hint="see the sandbox logs; raise --e2b-timeout if it expired") from None
        return 0

    def kill(self) -> None:
        self._sdk.kill()


@contextmanager
def open_e2b(options: SandboxOptions) -> Iterator[Sandbox]:
    """A sandbox in the E2B cloud (needs E2B_API_KEY), killed on exit."""
    from e2b import Sandbox as SdkSandbox

    if not os.environ.get(E2B_API_KEY_ENV):
        raise InputError(f"{E2B_API_KEY_ENV} is not set", hint="export your E2B API key, or use --sandbox local")
    try:
        sdk = SdkSandbox.create(template=options.template, timeout=options.lifetime_s)
    except Exception as exc:
        raise RunError(f"could not create an E2B sandbox: {exc}",
                       hint="check E2B_API_KEY, the template name and your E2B quota") from None
    sandbox = E2BSandbox(sdk, default_python="python3")
    try:
        yield sandbox
    finally:
        sandbox.kill()
