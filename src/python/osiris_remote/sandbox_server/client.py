"""An unmodified ``e2b`` SDK sandbox object connected to a local sandbox server with its token.

In debug mode ``Sandbox.create()`` / ``Sandbox.connect()`` never receive an envd access token
(the E2B API hands it out, and debug mode skips the API). So these helpers build the sandbox
object the way ``Sandbox._create`` does after the API answered: the SDK's own constructor with
``envd_access_token`` and a connection config whose sandbox headers carry ``X-Access-Token``.
Everything after that is the SDK's normal code path (commands, files, PTY, signed
``download_url``/``upload_url``), as against an E2B sandbox created with a secure envd.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from e2b import AsyncSandbox, Sandbox

SANDBOX_ID = "debug_sandbox_id"
"""The id of a debug-mode sandbox (what ``Sandbox.create(debug=True)`` uses)."""


def _options(url: str, token: str, request_timeout: float | None) -> dict[str, Any]:
    from e2b import ConnectionConfig
    from e2b.envd.versions import ENVD_DEBUG_FALLBACK

    headers = {
        "X-Access-Token": token,
        "E2b-Sandbox-Id": SANDBOX_ID,
        "E2b-Sandbox-Port": str(ConnectionConfig.envd_port),
    }
    config = ConnectionConfig(debug=True, sandbox_url=url, extra_sandbox_headers=headers,
                              request_timeout=request_timeout)
    return {
        "sandbox_id": SANDBOX_ID,
        "sandbox_domain": None,
        "envd_version": ENVD_DEBUG_FALLBACK,
        "envd_access_token": token,
        "traffic_access_token": None,
        "connection_config": config,
    }


def connect_sandbox(url: str, token: str, *, request_timeout: float | None = None) -> Sandbox:
    """A ``Sandbox`` talking to the server at ``url`` (e.g. ``LocalSandboxServer.url``) with ``token``;
    ``request_timeout`` is the SDK's default deadline of a call (None: its own, 60 s)."""
    from e2b import Sandbox

    sandbox: Sandbox = Sandbox(**_options(url, token, request_timeout))
    return sandbox


def connect_async_sandbox(url: str, token: str, *, request_timeout: float | None = None) -> AsyncSandbox:
    """The ``AsyncSandbox`` twin of ``connect_sandbox``."""
    from e2b import AsyncSandbox

    sandbox: AsyncSandbox = AsyncSandbox(**_options(url, token, request_timeout))
    return sandbox
