"""The ASGI application: access checks, lifetime, then Connect Process + Filesystem, ``/files`` and ``/health``."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping
from pathlib import Path

from e2b.envd.filesystem.filesystem_connect import FilesystemASGIApplication
from e2b.envd.process.process_connect import ProcessASGIApplication

from .access import TOKEN_HEADER, AccessPolicy, Refusal
from .client import SANDBOX_ID
from .files_http import FilesEndpoint, Receive, Scope, Send, send_empty, send_json
from .filesystem_service import FilesystemService
from .limits import SandboxLimits
from .paths import DEFAULT_USER, SandboxLayout
from .process_service import DEFAULT_PATH, ProcessManager, ProcessService

ENVD_VERSION = "0.5.7"
"""The envd version reported by ``/health`` (informational; the SDK does not read it in debug mode)."""

_CONNECT_CODES = {401: "unauthenticated", 403: "permission_denied", 413: "resource_exhausted", 502: "unavailable"}


class SandboxApp:
    """An envd-compatible ASGI application serving one sandbox rooted at ``root``.

    ``policy`` holds the access token and the address the server is bound to (see
    ``access``). After ``lifetime`` seconds (None: no limit) every sandbox process is killed
    and every request is answered 502 "sandbox ... was not found", as E2B does for a sandbox
    past its timeout. ``user`` is the default user (``SandboxLayout.user``).
    """

    def __init__(
        self,
        root: Path,
        policy: AccessPolicy,
        *,
        envs: Mapping[str, str] | None = None,
        path_env: str = DEFAULT_PATH,
        lifetime: float | None = None,
        limits: SandboxLimits | None = None,
        user: str = DEFAULT_USER,
    ) -> None:
        if lifetime is not None and not lifetime > 0:
            raise ValueError(f"sandbox lifetime must be a positive number of seconds, not {lifetime}")
        self.policy = policy
        self.limits = limits or SandboxLimits()
        self.layout = SandboxLayout.create(root, user)
        self.lifetime = lifetime
        self._deadline = None if lifetime is None else time.monotonic() + lifetime
        self._expired = False
        self._end_reason = ""
        self._timer: asyncio.TimerHandle | None = None
        self.processes = ProcessManager(self.layout, envs or {}, path_env, max_processes=self.limits.processes)
        self._process_app = ProcessASGIApplication(
            ProcessService(self.processes), read_max_bytes=self.limits.rpc_message_bytes
        )
        self._filesystem_app = FilesystemASGIApplication(
            FilesystemService(self.layout, self.limits, alive=lambda: not self.expired),
            read_max_bytes=self.limits.rpc_message_bytes,
        )
        self._files = FilesEndpoint(self.layout, self.limits, alive=lambda: not self.expired)

    @property
    def expired(self) -> bool:
        """Whether the sandbox's lifetime is over (checked against the clock, not only the timer)."""
        if not self._expired and self._deadline is not None and time.monotonic() >= self._deadline:
            self.expire()
        return self._expired

    def expire(self, reason: str | None = None) -> None:
        """End the sandbox now: kill every process and refuse every later request (idempotent).

        ``reason`` ends the "was not found" answer (default: the lifetime is over).
        """
        if not self._expired:
            self._end_reason = reason or f"its lifetime of {self.lifetime or 0:g} s is over"
            self.processes.end_reason = self._end_reason
        self._expired = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.processes.kill_all()

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
        refusal = self._refusal(scope, path)
        if refusal is not None:
            await self._refuse(scope, receive, send, path, refusal)
            return
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

    def _refusal(self, scope: Scope, path: str) -> Refusal | None:
        headers: dict[str, str] = {}
        tokens = 0
        for raw_name, raw_value in scope.get("headers", []):
            name = raw_name.decode("latin-1").lower()
            headers[name] = raw_value.decode("latin-1")
            tokens += name == TOKEN_HEADER
        refusal = self.policy.check_origin(headers)
        if refusal is not None:
            return refusal
        if self.expired:
            return Refusal(502, f"The sandbox {SANDBOX_ID} was not found: {self._end_reason}")
        if path == "/health":
            return None
        query = scope.get("query_string", b"").decode("utf-8", "replace")
        return self.policy.check_token(headers, tokens > 1, scope.get("method", "GET"), path, query)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, path: str, refusal: Refusal) -> None:
        """Answer a refused request without acting on it; read at most ``drain_bytes`` of its body."""
        drained = 0
        more = True
        while more and drained <= self.limits.drain_bytes:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            drained += len(message.get("body", b""))
            more = bool(message.get("more_body", False))
        rpc = path.startswith((self._process_app.path + "/", self._filesystem_app.path + "/"))
        code: str | int = _CONNECT_CODES.get(refusal.status, "unknown") if rpc else refusal.status
        body = json.dumps({"code": code, "message": refusal.message}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        if more:
            headers.append((b"connection", b"close"))
        await send({"type": "http.response.start", "status": refusal.status, "headers": headers})
        await send({"type": "http.response.body", "body": body, "more_body": False})

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                if self._deadline is not None:
                    delay = max(self._deadline - time.monotonic(), 0.0)
                    self._timer = asyncio.get_running_loop().call_later(delay, self.expire)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.expire("the server stopped")
                await send({"type": "lifespan.shutdown.complete"})
                return
