"""Running the sandbox app with uvicorn: in a background thread or in the foreground."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

import uvicorn

from .app import SandboxApp
from .process_service import DEFAULT_PATH

STARTUP_TIMEOUT = 10.0
SHUTDOWN_TIMEOUT = 10.0


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
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
        access_log=False,
        lifespan="on",
        # Streams of long-running commands keep connections open; don't wait for them forever.
        timeout_graceful_shutdown=2,
    )


class LocalSandboxServer:
    """An envd-compatible sandbox served by uvicorn in a background thread.

    ``port=0`` (the default) binds a free port; ``url`` is the envd base URL to give the
    SDK as ``sandbox_url``. Use as a context manager or call ``stop()``.
    ``envs`` are environment variables every command gets (what ``Sandbox.create(envs=...)``
    would set; debug mode drops those), ``path_env`` is the commands' initial ``PATH``.
    """

    def __init__(
        self,
        root: Path,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        envs: Mapping[str, str] | None = None,
        path_env: str = DEFAULT_PATH,
        log_level: str = "warning",
    ) -> None:
        self.root = Path(root)
        self.app = SandboxApp(self.root, envs=envs, path_env=path_env)
        self._socket = _bind(host, port)
        self.host = host
        self.port: int = self._socket.getsockname()[1]
        self._server = uvicorn.Server(_config(self.app, log_level))
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

    @property
    def url(self) -> str:
        """The envd base URL, e.g. ``http://127.0.0.1:41234`` (pass it as ``sandbox_url``)."""
        return _url(self.host, self.port)

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
                loop.call_soon_threadsafe(self.app.processes.kill_all)
        self._server.should_exit = True
        self._thread.join(SHUTDOWN_TIMEOUT)
        if self._thread.is_alive():
            self._server.force_exit = True
            self._thread.join(SHUTDOWN_TIMEOUT)
        self._socket.close()

    def __enter__(self) -> LocalSandboxServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def serve(
    root: Path,
    host: str = "127.0.0.1",
    port: int = 49983,
    *,
    envs: Mapping[str, str] | None = None,
    path_env: str = DEFAULT_PATH,
    log_level: str = "info",
) -> None:
    """Serve the sandbox in the foreground until interrupted (``osiris sandbox serve``).

    ``port=0`` picks a free port. The envd URL is printed to stderr once the port is bound.
    Returns normally after Ctrl-C (SIGINT); every sandbox process is killed on the way out.
    """
    app = SandboxApp(Path(root), envs=envs, path_env=path_env)
    sock = _bind(host, port)
    actual_port = sock.getsockname()[1]
    print(
        f"osiris sandbox: envd at {_url(host, actual_port)} (root {app.layout.root})",
        file=sys.stderr,
        flush=True,
    )
    server = uvicorn.Server(_config(app, log_level))
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn re-raises SIGINT after its graceful shutdown
        pass
    finally:
        app.processes.kill_all()
        sock.close()
