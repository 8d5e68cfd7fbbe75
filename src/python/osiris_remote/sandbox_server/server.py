"""Running the sandbox app with uvicorn: in a background thread or in the foreground."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

import uvicorn

from osiris_core.errors import InputError

from .access import AccessPolicy, is_loopback, new_token
from .app import SandboxApp
from .client import connect_sandbox
from .limits import SandboxLimits
from .paths import DEFAULT_USER
from .process_service import DEFAULT_PATH

if TYPE_CHECKING:
    from e2b import Sandbox

STARTUP_TIMEOUT = 10.0
SHUTDOWN_TIMEOUT = 10.0
SHUTDOWN_POLL_S = 0.005


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that say they are TCP, and without it every
    # response whose body follows its headers in a second write waits ~40 ms for the client's delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def _url(host: str, port: int) -> str:
    if host in ("0.0.0.0", ""):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


def _config(app: SandboxApp, log_level: str) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        log_level=log_level,
        access_log=False,  # request lines would carry signed file URLs
        lifespan="on",
        http="h11",
        ws="none",  # envd speaks HTTP/1.1 only: no WebSocket protocol to import
        limit_concurrency=app.limits.connections,
        # Streams of long-running commands keep connections open; don't wait for them forever.
        timeout_graceful_shutdown=2,
    )


class _ThreadServer(uvicorn.Server):
    """uvicorn's server, woken by `halt` at once instead of at its next 0.1 s tick, and shutting down as soon as
    its connections have closed instead of after uvicorn's fixed 0.1 s pause."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self._wake: asyncio.Event | None = None

    async def main_loop(self) -> None:
        self._wake = asyncio.Event()
        counter = 0
        while not await self.on_tick(counter):
            counter = (counter + 1) % 864000
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), 0.1)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        """uvicorn's graceful shutdown, polling every few milliseconds: stop accepting, ask each connection to close,
        wait for connections and tasks (at most `timeout_graceful_shutdown`, then cancel the tasks), end the app."""
        for server in self.servers:
            server.close()
        for sock in sockets or []:
            sock.close()
        for connection in list(self.server_state.connections):
            connection.shutdown()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (self.config.timeout_graceful_shutdown or 0)
        while (self.server_state.connections or self.server_state.tasks) and loop.time() < deadline:
            await asyncio.sleep(SHUTDOWN_POLL_S)
        for task in self.server_state.tasks:
            task.cancel(msg="Task cancelled, timeout graceful shutdown exceeded")
        for server in self.servers:
            await server.wait_closed()
        await self.lifespan.shutdown()

    def halt(self) -> None:
        """Begin uvicorn's graceful shutdown now (on the server's loop)."""
        self.should_exit = True
        if self._wake is not None:
            self._wake.set()


class LocalSandboxServer:
    """An envd-compatible sandbox served by uvicorn in a background thread.

    ``port=0`` (the default) binds a free port; ``url`` is the envd base URL and ``token``
    the access token every request needs (kept in memory only): ``sandbox()`` gives an SDK
    ``Sandbox`` connected with both. ``lifetime`` (seconds, None for no limit) ends the
    sandbox like E2B's timeout: its processes are killed and later requests refused.
    ``envs`` are environment variables every command gets (what
    ``Sandbox.create(envs=...)`` would set; debug mode drops those), ``path_env`` is the
    commands' initial ``PATH``, ``user`` the default user (as a custom template's: ``root``
    has home ``/root``, any other name ``/home/<name>``). Use as a context manager or call ``stop()``.
    """

    def __init__(
        self,
        root: Path,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        envs: Mapping[str, str] | None = None,
        path_env: str = DEFAULT_PATH,
        lifetime: float | None = None,
        limits: SandboxLimits | None = None,
        log_level: str = "warning",
        user: str = DEFAULT_USER,
    ) -> None:
        self.root = Path(root)
        self._socket = _bind(host, port)
        self.host = host
        self.port: int = self._socket.getsockname()[1]
        self.token = new_token()
        try:
            self.app = SandboxApp(self.root, AccessPolicy(self.token, host, self.port), envs=envs,
                                  path_env=path_env, lifetime=lifetime, limits=limits, user=user)
        except BaseException:
            self._socket.close()
            raise
        self._server = _ThreadServer(_config(self.app, log_level))
        self._loop: asyncio.AbstractEventLoop | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=f"sandbox-server-{self.port}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self._socket.close()
                raise RuntimeError(f"sandbox server failed to start on {self.url}") from self._error
            time.sleep(0.01)

    def __repr__(self) -> str:  # never shows the token
        return f"LocalSandboxServer(root={str(self.root)!r}, url={self.url!r})"

    @property
    def url(self) -> str:
        """The envd base URL, e.g. ``http://127.0.0.1:41234``."""
        return _url(self.host, self.port)

    def sandbox(self, *, request_timeout: float | None = None) -> Sandbox:
        """An ``e2b`` SDK ``Sandbox`` connected to this server with its token (``request_timeout``: the SDK's
        default deadline of a call, 60 s unless given)."""
        return connect_sandbox(self.url, self.token, request_timeout=request_timeout)

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._server.serve(sockets=[self._socket]))
        except BaseException as e:  # reported by __init__
            self._error = e
        finally:
            loop.close()

    def stop(self) -> None:
        """Kill every sandbox process and stop the server (idempotent)."""
        loop = self._loop
        if loop is not None and self._thread.is_alive():
            with contextlib.suppress(RuntimeError):  # the loop is already closed
                loop.call_soon_threadsafe(self._halt)
        self._server.should_exit = True
        self._thread.join(SHUTDOWN_TIMEOUT)
        if self._thread.is_alive():
            self._server.force_exit = True
            self._thread.join(SHUTDOWN_TIMEOUT)
        self._socket.close()
        if not self._thread.is_alive():
            self.app.processes.kill_all()  # anything that started while the server wound down

    def _halt(self) -> None:
        """On the server's loop: every process killed and later requests refused, then the server shuts down."""
        self.app.expire("the server stopped")
        self._server.halt()

    def __enter__(self) -> LocalSandboxServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def write_token_file(path: Path, token: str) -> None:
    """Write ``token`` to ``path``, readable by this user only (0600); a symlink there is refused."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            os.fchmod(handle.fileno(), 0o600)
            handle.write(token + "\n")
    except OSError as exc:
        raise InputError(f"cannot write the token file {path}: {exc.strerror or exc}",
                         hint="give --token-file a path in a directory you own") from None


def serve(
    root: Path,
    host: str = "127.0.0.1",
    port: int = 49983,
    *,
    token_file: Path | None = None,
    lifetime: float | None = None,
    envs: Mapping[str, str] | None = None,
    path_env: str = DEFAULT_PATH,
    limits: SandboxLimits | None = None,
    log_level: str = "info",
    user: str = DEFAULT_USER,
) -> None:
    """Serve the sandbox in the foreground until interrupted (``osiris sandbox serve``).

    A new access token is written to ``token_file`` (0600; default: a new temporary file,
    removed on exit); the envd URL and the token file's path (never the token) are printed
    to stderr once the port is bound. ``port=0`` picks a free port. Binding an address that
    is not loopback needs an explicit ``token_file``. A port that cannot be bound is an
    InputError, raised before anything is created. Returns normally after Ctrl-C (SIGINT);
    every sandbox process is killed on the way out.
    """
    if not is_loopback(host) and token_file is None:
        raise InputError(f"--host {host} would let other machines reach the sandbox",
                         hint="give --token-file too, to say where its access token goes (or bind 127.0.0.1)")
    try:
        sock = _bind(host, port)
    except OSError as exc:
        raise InputError(f"cannot listen on {host}:{port}: {exc.strerror or exc}",
                         hint="pick another --port (0 picks a free one)") from None
    temporary: Path | None = None
    try:
        actual_port = sock.getsockname()[1]
        token = new_token()
        if token_file is None:
            fd, name = tempfile.mkstemp(prefix="osiris-sandbox-token-")
            os.close(fd)
            token_file = temporary = Path(name)
        write_token_file(token_file, token)
        app = SandboxApp(Path(root), AccessPolicy(token, host, actual_port), envs=envs, path_env=path_env,
                         lifetime=lifetime, limits=limits, user=user)
        print(f"osiris sandbox: envd at {_url(host, actual_port)} (root {app.layout.root}); access token in "
              f"{token_file}; connect the e2b SDK with osiris_remote.sandbox_server.connect_sandbox(url, token)",
              file=sys.stderr, flush=True)
        server = uvicorn.Server(_config(app, log_level))
        try:
            server.run(sockets=[sock])
        except KeyboardInterrupt:  # uvicorn re-raises SIGINT after its graceful shutdown
            pass
        finally:
            app.processes.kill_all()
    finally:
        sock.close()
        if temporary is not None:
            temporary.unlink(missing_ok=True)
