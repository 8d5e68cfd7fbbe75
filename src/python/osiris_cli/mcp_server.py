"""`osiris mcp`: an MCP server over stdio, so AI assistants can build, run and debug pipelines.

Each tool is one `osiris_cli.api` function run in a worker thread. Errors come back as one-line tool errors
with the place and the fix; every result and error passes through a masker that knows the components'
secret fields and the values of every connection that resolves here, so no tool hands out a secret.

The protocol owns the process's real standard output: before serving, file descriptor 1 and `sys.stdout`
are pointed at standard error, so nothing a driver or library prints can corrupt the JSON-RPC stream.
"""

from __future__ import annotations

import asyncio
import functools
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO, TypeVar

from mcp.server.fastmcp import FastMCP
from mcp.server.fastmcp.exceptions import ToolError
from mcp.server.stdio import stdio_server
from mcp.types import ToolAnnotations

from osiris_cli import api
from osiris_cli.app import App
from osiris_cli.redact import mask_strings, secrets_masker
from osiris_core.errors import OsirisError
from osiris_core.masking import Masker
from osiris_core.run_session import registry_masker

T = TypeVar("T")
READ_ONLY = ToolAnnotations(readOnlyHint=True, destructiveHint=False, idempotentHint=True, openWorldHint=False)
WRITES_SESSION = ToolAnnotations(readOnlyHint=False, destructiveHint=False, idempotentHint=False,
                                 openWorldHint=False)
LOOKS_UP = ToolAnnotations(readOnlyHint=True, destructiveHint=False, idempotentHint=True, openWorldHint=True)
"""Reads databases and files the connections name, changes nothing."""
RUNS = ToolAnnotations(readOnlyHint=False, destructiveHint=True, idempotentHint=False, openWorldHint=True)
INSTRUCTIONS = """\
Osiris compiles and runs data pipelines written in OML (YAML). Typical loop: `components_list` and
`components_show` to pick components and their config keys, `connections_list` for the `@family.alias`
references a step may use and `discover` for the tables behind one, write the pipeline file, `validate` it
(errors come with file:line and a hint), `dry_run` it to see what it would create or replace, `run` it and read
the run card, then `logs_list` / `logs_show` (with events) to debug a failed run.
Relative paths are relative to the server's working directory: {cwd}. Sessions live in {logs}."""


class OsirisTools:
    """The tools of one server: an `App` (logs dir, connections file, registry) and the masking guard."""

    def __init__(self, app: App) -> None:
        self.app = app

    def masker(self) -> Masker:
        """Knows the secret fields and every resolvable connection's secrets; by pattern only if the
        connections file itself is broken."""
        try:
            return secrets_masker(self.app.registry(), self.app.connections())
        except OsirisError:
            return registry_masker(self.app.registry())

    async def call(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run `function(app, ...)` in a thread; results and errors masked, errors as one-line ToolErrors."""
        try:
            result = await asyncio.to_thread(functools.partial(function, self.app, *args, **kwargs))
        except OsirisError as exc:
            raise ToolError(self._mask(exc.render())) from None
        except Exception as exc:
            raise ToolError(self._mask(f"internal error ({type(exc).__name__}): {exc} — please report this")) \
                from None
        return mask_strings(self.masker(), result)  # type: ignore[no-any-return]

    def _mask(self, text: str) -> str:
        return str(self.masker().mask(" ".join(text.split())))


def build_server(app: App) -> FastMCP:
    """The FastMCP server with every Osiris tool registered."""
    server = FastMCP("osiris", instructions=INSTRUCTIONS.format(cwd=Path.cwd(), logs=app.logs_dir),
                     log_level="WARNING")
    tools = OsirisTools(app)

    @server.tool(annotations=READ_ONLY)
    async def components_list() -> list[dict[str, Any]]:
        """The installed components: name, version, modes (read/write/transform) and description."""
        return await tools.call(api.components_list)

    @server.tool(annotations=READ_ONLY)
    async def components_show(name: str) -> dict[str, Any]:
        """A component's spec: its config JSON Schema (the keys a step's `config` may hold), the connection
        family and fields it takes, its secret fields and the events it emits. `name` like 'duckdb.writer'."""
        return await tools.call(api.components_show, name)

    @server.tool(annotations=READ_ONLY)
    async def connections_list() -> dict[str, Any]:
        """The connections of osiris_connections.yaml by family and alias (reference one from a step as
        '@family.alias'), with secrets masked and ${VAR} references left as written."""
        return await tools.call(api.connections_list)

    @server.tool(annotations=LOOKS_UP)
    async def discover(connection: str, schema: str | None = None) -> dict[str, Any]:
        """What a connection ('@family.alias') holds, read-only: its tables and views (or CSV files) with row
        estimates and columns (type, nullable, primary_key), of one schema (default: the one steps use:
        MySQL's database, public, DuckDB's main); `schemas` lists the others. As `discover --json`."""
        return await tools.call(api.discover, connection, schema)

    @server.tool(annotations=READ_ONLY)
    async def validate(pipeline: str) -> dict[str, Any]:
        """Check a pipeline file without writing anything. Returns {valid: true, pipeline, steps} or
        {valid: false, errors: [{file, line, column, message, hint, text}]} located in the file."""
        return await tools.call(api.validate, pipeline)

    @server.tool(name="compile", annotations=WRITES_SESSION)
    async def compile_pipeline(pipeline: str) -> dict[str, Any]:
        """Compile a pipeline into a new compile session: {session, manifest, steps, fingerprints}."""
        return await tools.call(api.compile_file_json, pipeline)

    @server.tool(annotations=LOOKS_UP)
    async def dry_run(target: str) -> dict[str, Any]:
        """The plan of running a pipeline file or compiled manifest.yaml, without reading rows or writing
        anything: per step its source and target, write_mode, action (create, replace, append, upsert, scd2),
        incremental state and the error that would stop the run. As `run --dry-run --json`."""
        return await tools.call(api.dry_run, target)

    @server.tool(annotations=RUNS)
    async def run(target: str) -> dict[str, Any]:
        """Run a pipeline file (compiled first) or a compiled manifest.yaml on this machine and return its run
        card: status, error with hint, and per step status, rows_in, rows_out, duration_ms, error. A failed run
        is a result, not a tool error: read `error` and the failed step, then `logs_show` with events."""
        return await tools.call(api.run, target)

    @server.tool(annotations=READ_ONLY)
    async def logs_list(pipeline: str | None = None, status: str | None = None, since: str | None = None,
                        limit: int = 20) -> list[dict[str, Any]]:
        """Sessions newest first: session, kind, pipeline, started_at, duration_ms, status (succeeded, failed,
        compiled, incomplete, unknown) and place. Filters: pipeline (a glob), status, since (ISO date/time or an
        age like 2h or 7d)."""
        return await tools.call(api.logs_list, pipeline=pipeline, status=status, since=since, limit=limit)

    @server.tool(annotations=READ_ONLY)
    async def logs_show(session: str, events: bool = False, max_events: int = 200) -> dict[str, Any]:
        """A session's run card (or compile metadata, or an incomplete run's summary); with events=true also its
        last `max_events` events (step_failed events carry the error and traceback)."""
        return await tools.call(api.logs_show, session, events=events, max_events=max_events)

    return server


async def _serve(server: FastMCP, protocol: TextIO) -> None:
    # `stdio_server` wraps whatever `sys.stdout` is when it is entered: the protocol's stream, then stderr again.
    sys.stdout = protocol
    try:
        async with stdio_server() as (read_stream, write_stream):
            sys.stdout = sys.stderr
            low_level = server._mcp_server  # FastMCP's own stdio runner would take the process's stdout
            await low_level.run(read_stream, write_stream, low_level.create_initialization_options())
    finally:
        sys.stdout = sys.stderr


def serve_stdio(app: App) -> int:
    """Serve until the client closes standard input."""
    server = build_server(app)
    sys.stdout.flush()
    saved = os.dup(1)
    protocol = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)  # whatever writes to descriptor 1 now (drivers, native code) lands on stderr
    original = sys.stdout
    try:
        asyncio.run(_serve(server, protocol))
    finally:
        sys.stdout = original
        os.dup2(saved, 1)
        os.close(saved)
        protocol.close()
    return 0
