"""The ASGI application: Connect Process + Filesystem services, ``/files`` and ``/health``."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from e2b.envd.filesystem.filesystem_connect import FilesystemASGIApplication
from e2b.envd.process.process_connect import ProcessASGIApplication

from .files_http import FilesEndpoint, Receive, Scope, Send, send_empty, send_json
from .filesystem_service import FilesystemService
from .paths import SandboxLayout
from .process_service import DEFAULT_PATH, ProcessManager, ProcessService

ENVD_VERSION = "0.5.7"
"""The envd version reported by ``/health`` (informational; the SDK does not read it in debug mode)."""


class SandboxApp:
    """An envd-compatible ASGI application serving one sandbox rooted at ``root``."""

    def __init__(
        self,
        root: Path,
        *,
        envs: Mapping[str, str] | None = None,
        path_env: str = DEFAULT_PATH,
    ) -> None:
        self.layout = SandboxLayout.create(root)
        self.processes = ProcessManager(self.layout, envs or {}, path_env)
        self._process_app = ProcessASGIApplication(ProcessService(self.processes))
        self._filesystem_app = FilesystemASGIApplication(FilesystemService(self.layout))
        self._files = FilesEndpoint(self.layout)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await self._lifespan(receive, send)
            return
        if kind != "http":
            if kind == "websocket":
                await send({"type": "websocket.close", "code": 1003})
            return
        path: str = scope["path"]
        if path.startswith(self._process_app.path + "/"):
            await self._process_app(scope, receive, send)
        elif path.startswith(self._filesystem_app.path + "/"):
            await self._filesystem_app(scope, receive, send)
        elif path == "/files":
            await self._files(scope, receive, send)
        elif path == "/health":
            await send_empty(send, 204)
        elif path == "/envs" and scope.get("method") == "GET":
            await send_json(send, 200, {})
        else:
            await send_json(send, 404, {"code": 404, "message": f"no route for {path}"})

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.processes.kill_all()
                await send({"type": "lifespan.shutdown.complete"})
                return
