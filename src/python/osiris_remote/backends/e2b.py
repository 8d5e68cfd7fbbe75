"""The `e2b` backend, and the protocol adapter over any `e2b` SDK sandbox (the local backend uses it too).

This module and the local sandbox server (`osiris_remote.sandbox_server`) are the only places that import `e2b`.

What the adapter relies on in the SDK (`e2b==2.63.*`): `files.write` streams a binary file object (octet-stream,
or a streamed multipart part on an older envd) with no client-side deadline, while `str`/`bytes` data is sent
under the whole-request deadline (`request_timeout`, 60 s by default) — so `put` always hands it a file object;
`files.read(format="stream")` has no deadline on the whole download unless `request_timeout` is passed (it is not),
only the SDK's idle bound on each read (60 s without a byte). `request_timeout_s` bounds every other call.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from typing import TYPE_CHECKING, BinaryIO

from osiris_core.errors import InputError, RunError
from osiris_remote.backends.base import Sandbox, SandboxLost, SandboxOptions, StdinWriter

if TYPE_CHECKING:
    from e2b import CommandHandle
    from e2b import Sandbox as SdkSandbox

E2B_API_KEY_ENV = "E2B_API_KEY"
REQUEST_TIMEOUT_S = 60.0
"""The deadline of each call that is not a file transfer or a command (the SDK's default)."""
MAX_LIFETIME_S = 24 * 3600
"""E2B's longest sandbox lifetime (Pro; Hobby: 1 h); `--e2b-timeout` above it is refused."""


def _one_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {' '.join(str(exc).split())}"


class E2BSandbox:
    """The Osiris sandbox protocol over an `e2b` SDK `Sandbox`.

    `request_timeout_s` is the deadline of each call other than a transfer or a command: `put` and `get` stream
    whatever their size and duration, `run` waits for the command however long it runs (the sandbox's lifetime
    bounds both).
    """

    def __init__(self, sdk: SdkSandbox, *, default_python: str, request_timeout_s: float = REQUEST_TIMEOUT_S) -> None:
        self._sdk = sdk
        self._default_python = default_python
        self._request_timeout_s = request_timeout_s
        self._home: str | None = None

    @property
    def default_python(self) -> str:
        return self._default_python

    @property
    def home(self) -> str:
        """The user's home as envd resolves `~` (asked once): a template's own user has its own home.

        An envd too old to put paths in its answers leaves `~` itself, which envd expands the same way.
        """
        if self._home is None:
            try:
                path = str(self._sdk.files.get_info("~", request_timeout=self._request_timeout_s).path or "")
            except Exception as exc:
                raise SandboxLost(f"the sandbox did not say where its home is: {_one_line(exc)}",
                                  hint="see the sandbox logs; nothing ran") from None
            self._home = path if path.startswith("/") else "~"
        return self._home

    def _path(self, path: str) -> str:
        return f"{self.home}/{path}" if path else self.home

    def put(self, path: str, data: bytes | BinaryIO) -> None:
        source = io.BytesIO(data) if isinstance(data, bytes) else data  # a file object is streamed, undeadlined
        self._sdk.files.write(self._path(path), source)

    def get(self, path: str, into: BinaryIO) -> None:
        with self._sdk.files.read(self._path(path), format="stream") as chunks:
            for chunk in chunks:
                into.write(chunk)

    def exists(self, path: str) -> bool:
        return bool(self._sdk.files.exists(self._path(path), request_timeout=self._request_timeout_s))

    def make_dir(self, path: str) -> None:
        self._sdk.files.make_dir(self._path(path), request_timeout=self._request_timeout_s)

    def run(self, command: str, *, cwd: str, env: Mapping[str, str], on_stdout: Callable[[str], None],
            on_stderr: Callable[[str], None], on_start: Callable[[StdinWriter], None] | None = None) -> int:
        from e2b import CommandExitException

        try:
            handle = self._sdk.commands.run(command, background=True, envs=dict(env), cwd=self._path(cwd),
                                            timeout=0, stdin=on_start is not None)
            if on_start is not None:
                on_start(self._stdin_writer(handle, on_stderr))
            handle.wait(on_stdout=on_stdout, on_stderr=on_stderr)
        except CommandExitException as exc:
            return int(exc.exit_code)
        except Exception as exc:
            raise SandboxLost(_one_line(exc),
                              hint="see the sandbox logs; raise --e2b-timeout if it expired") from None
        return 0

    def _stdin_writer(self, handle: CommandHandle, on_stderr: Callable[[str], None]) -> StdinWriter:
        """Writes to the command's stdin; a write that fails kills the command (it would wait for input forever)."""

        def write(data: bytes) -> None:
            try:
                handle.send_stdin(data, request_timeout=self._request_timeout_s)
            except Exception as exc:
                with suppress(Exception):  # it may have ended already
                    handle.kill()
                on_stderr(f"\nosiris: could not write to the command's stdin: {_one_line(exc)}\n")

        return write

    def kill(self) -> None:
        self._sdk.kill()


@contextmanager
def open_e2b(options: SandboxOptions) -> Iterator[Sandbox]:
    """A sandbox in the E2B cloud (needs E2B_API_KEY), killed on exit."""
    from e2b import Sandbox as SdkSandbox

    if not os.environ.get(E2B_API_KEY_ENV):
        raise InputError(f"{E2B_API_KEY_ENV} is not set", hint="export your E2B API key, or use --sandbox local")
    try:
        sdk = SdkSandbox.create(template=options.template, timeout=options.lifetime_s,
                                request_timeout=REQUEST_TIMEOUT_S)
    except Exception as exc:
        raise RunError(f"could not create an E2B sandbox: {exc}",
                       hint="check E2B_API_KEY, the template name, your E2B quota and --e2b-timeout (at most 1 h "
                            "on the Hobby plan, 24 h on Pro)") from None
    sandbox = E2BSandbox(sdk, default_python="python3")
    try:
        yield sandbox
    finally:
        sandbox.kill()
