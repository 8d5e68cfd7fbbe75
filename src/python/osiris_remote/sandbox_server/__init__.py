"""A local, E2B-compatible sandbox server (``osiris sandbox serve``, and each ``--sandbox local`` run).

It speaks the envd protocol that the real ``e2b`` Python SDK (``e2b==2.63.*``) uses to
talk to a sandbox, so the unmodified SDK in *debug mode* can move files in and out and
run commands against a directory on this machine, fully offline:

* Connect RPC (JSON or binary protobuf, unary and streaming, over HTTP/1.1):
  ``process.Process`` (Start, Connect, List, SendInput, StreamInput, CloseStdin,
  SendSignal, Update = PTY resize) and ``filesystem.Filesystem`` (Stat, MakeDir, Move,
  ListDir, Remove, WatchDir, CreateWatcher, GetWatcherEvents, RemoveWatcher; watching
  is done by polling the directory, so short-lived changes may be coalesced);
* ``GET /files`` / ``POST /files`` (download / upload; multipart or octet-stream, gzip);
* ``GET /health`` (204) and ``GET /envs`` (``{}``).

Access (``access``)
-------------------
Each server makes a random access token at start. Every request but ``GET /health`` must
carry it as envd expects: the ``X-Access-Token`` header, or on ``/files`` a v1
``signature`` made from it (the SDK's signed ``download_url``/``upload_url``); compared in
constant time, else 401. Before that, a request with an ``Origin`` header (a web page) or
a ``Host`` that is not ``localhost``/``127.0.0.0/8``/``::1`` with the server's port (DNS
rebinding) is refused with 403. Nothing is read, started or written for a refused request.
The server binds ``127.0.0.1`` unless told otherwise; ``osiris sandbox serve`` binds another
address only when given ``--host`` together with ``--token-file``.

Connecting the SDK
------------------
In debug mode ``Sandbox.create()`` never gets an envd token (the E2B API hands it out), so
use ``connect_sandbox(url, token)`` (or ``connect_async_sandbox``): the SDK's own
constructor, fed what ``Sandbox.create`` would have got from the API::

    from osiris_remote.sandbox_server import LocalSandboxServer

    with LocalSandboxServer(Path("/tmp/my-sandbox"), lifetime=600) as server:
        sandbox = server.sandbox()          # = connect_sandbox(server.url, server.token)
        sandbox.files.write("/home/user/in.csv", "a,b\\n1,2\\n")
        result = sandbox.commands.run("wc -l in.csv", envs={"TOKEN": "..."}, timeout=60)
        print(result.stdout)

For ``osiris sandbox serve`` the token is in the file it names on start-up (0600; default a
temporary file removed on exit): ``connect_sandbox(url, Path(token_file).read_text().strip())``.
In debug mode ``kill``, ``set_timeout``, ``get_info``/metrics are skipped by the SDK, and
``create(envs=...)`` is silently dropped: pass ``envs=`` per command, or give them to
the server (``LocalSandboxServer(root, envs={...})``) to apply to every command.

Lifetime and limits
-------------------
``lifetime`` (seconds; ``--e2b-timeout`` for ``--sandbox local`` runs, ``--lifetime`` for
``serve``) ends the sandbox as E2B's timeout does: every process is killed and every later
request is answered 502 "The sandbox ... was not found" (the SDK raises
``SandboxNotRunningException``); stopping the server does the same. A command's ``timeout``
(``Connect-Timeout-Ms``) kills it when it passes. Killing a process kills its process
group, session and descendants (``containment``); each started process also gets SIGKILL if
the server dies (``PR_SET_PDEATHSIG``, best effort: it does not reach a daemon that left the
session after its parent exited). Bodies, inflated gzip, multipart parts, RPC messages,
listings, watchers, processes and connections are bounded (``SandboxLimits``; 413 or
``resource_exhausted``), and so is output waiting for a slow stream (the process then
blocks on its pipe, ``process_service.MAX_QUEUED_CHUNKS``).

Filesystem mapping
------------------
Sandbox paths are virtual and absolute: ``/`` is the sandbox root directory ``root``
and ``/a/b`` is ``<root>/a/b``. The default user (whom a request naming none acts as) is
``user`` with home ``/home/user`` (``<root>/home/user``, created at start-up), as on E2B's
base template; ``LocalSandboxServer(root, user=...)`` makes it another, as a custom
template may (``root`` has home ``/root``, any other name ``/home/<name>``).
Relative paths and ``~`` resolve against the user's home, as in envd. A ``..`` that would
climb above ``/`` is rejected, and no path (including through symlinks) may resolve to
a host path outside ``root``; a symlink leading outside the root is listed without its
target. The root is 0700; uploaded files are 0600 and new directories 0700.

Commands
--------
Commands run as real host processes as the server's OS user, in their own session, with
umask 077, cwd = the resolved ``cwd`` (default ``<root>/home/user``) and a clean
environment: ``PATH`` (``path_env``), ``HOME`` (= the host path of the user's home),
``USER``/``LOGNAME`` (sandbox user name), ``LANG=C.UTF-8``, the server ``envs``, then the
per-command ``envs``. Nothing from the server's own environment is passed on. Like
envd, ``List`` returns each running command's config as started, ``envs`` included, to
any client with the token: a secret never belongs in a command's ``envs``. The SDK's
``/bin/bash -l -c <cmd>`` runs as ``/bin/bash --noprofile --norc -c <cmd>``: no profile or rc
file in the sandbox home is ever run. Note that this is *not* isolation: commands can see
the whole host filesystem under its real paths, so an absolute sandbox path such as
``/home/user/x`` inside a command line refers to the host's ``/home/user/x``; use relative
paths (cwd is the sandbox home) or ``$HOME`` in commands.
"""

from __future__ import annotations

from .access import AccessPolicy, new_token
from .app import SandboxApp
from .client import connect_async_sandbox, connect_sandbox
from .limits import SandboxLimits
from .paths import DEFAULT_USER, SandboxLayout, SandboxPathError
from .process_service import DEFAULT_PATH
from .server import LocalSandboxServer, serve, write_token_file

__all__ = [
    "DEFAULT_PATH",
    "DEFAULT_USER",
    "AccessPolicy",
    "LocalSandboxServer",
    "SandboxApp",
    "SandboxLayout",
    "SandboxLimits",
    "SandboxPathError",
    "connect_async_sandbox",
    "connect_sandbox",
    "new_token",
    "serve",
    "write_token_file",
]
