"""A local, E2B-compatible sandbox server (``osiris sandbox serve``).

It speaks the envd protocol that the real ``e2b`` Python SDK (``e2b==2.63.*``) uses to
talk to a sandbox, so the unmodified SDK in *debug mode* can create a "sandbox", move
files in and out and run commands against a directory on this machine, fully offline:

* Connect RPC (JSON or binary protobuf, unary and streaming, over HTTP/1.1):
  ``process.Process`` (Start, Connect, List, SendInput, StreamInput, CloseStdin,
  SendSignal, Update = PTY resize) and ``filesystem.Filesystem`` (Stat, MakeDir, Move,
  ListDir, Remove, WatchDir, CreateWatcher, GetWatcherEvents, RemoveWatcher; watching
  is done by polling the directory, so short-lived changes may be coalesced);
* ``GET /files`` / ``POST /files`` (download / upload; multipart or octet-stream, gzip);
* ``GET /health`` (204) and ``GET /envs`` (``{}``).

Connecting the SDK
------------------
In debug mode (``debug=True`` or ``E2B_DEBUG=true``) ``Sandbox.create()`` skips the E2B
API entirely (no API key, no network): it makes a sandbox object with id
``"debug_sandbox_id"`` and envd version 99.99.99 that talks to envd at
``http://localhost:49983``, or at ``sandbox_url`` when that is given (env var
``E2B_SANDBOX_URL``; both are marked deprecated in the SDK but work). Use a free port
and ``sandbox_url``::

    from e2b import Sandbox
    from osiris_remote.sandbox_server import LocalSandboxServer

    with LocalSandboxServer(Path("/tmp/my-sandbox")) as server:
        sandbox = Sandbox.create(debug=True, sandbox_url=server.url)
        sandbox.files.write("/home/user/in.csv", "a,b\\n1,2\\n")
        result = sandbox.commands.run("wc -l in.csv", envs={"TOKEN": "..."})
        print(result.stdout)
        sandbox.kill()  # a no-op in debug mode; processes die with the server

``Sandbox.connect("any-id", debug=True, sandbox_url=server.url)`` works the same way.
In debug mode ``kill``, ``set_timeout``, ``get_info``/metrics are skipped by the SDK, and
``create(envs=...)`` is silently dropped: pass ``envs=`` per command, or give them to
the server (``LocalSandboxServer(root, envs={...})``) to apply to every command.

Filesystem mapping
------------------
Sandbox paths are virtual and absolute: ``/`` is the sandbox root directory ``root``
and ``/a/b`` is ``<root>/a/b``. The default user is ``user`` with home ``/home/user``
(``<root>/home/user``, created at start-up); ``user="root"`` has home ``/root``.
Relative paths and ``~`` resolve against the user's home, as in envd. A ``..`` that would
climb above ``/`` is rejected, and no path (including through symlinks) may resolve to
a host path outside ``root``.

Commands
--------
Commands run as real host processes (``/bin/bash -l -c <cmd>`` as the SDK sends it) as
the server's OS user, in their own process group, with cwd = the resolved ``cwd``
(default ``<root>/home/user``) and a clean environment: ``PATH`` (``path_env``),
``HOME`` (= the host path of the user's home), ``USER``/``LOGNAME`` (sandbox user name),
``LANG=C.UTF-8``, the server ``envs``, then the per-command ``envs``. Nothing from the
server's own environment is passed on. Note that this is *not* isolation: commands can
see the whole host filesystem under its real paths, so an absolute sandbox path such as
``/home/user/x`` inside a command line refers to the host's ``/home/user/x``; use
relative paths (cwd is the sandbox home) or ``$HOME`` in commands.
"""

from __future__ import annotations

from .app import SandboxApp
from .paths import DEFAULT_USER, SandboxLayout, SandboxPathError
from .process_service import DEFAULT_PATH
from .server import LocalSandboxServer, serve

__all__ = [
    "DEFAULT_PATH",
    "DEFAULT_USER",
    "LocalSandboxServer",
    "SandboxApp",
    "SandboxLayout",
    "SandboxPathError",
    "serve",
]
