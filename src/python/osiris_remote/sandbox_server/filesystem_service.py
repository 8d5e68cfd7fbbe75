"""The envd ``filesystem.Filesystem`` Connect service over the sandbox root directory.

Listings and watchers are bounded (``SandboxLimits``): ``ListDir`` depth and entries, the
number of watchers at a time and the entries below a watched directory. Going over a
bound is a ``resource_exhausted`` error naming it. Watch streams end when the sandbox's
lifetime does.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import stat
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from connectrpc.code import Code
from connectrpc.errors import ConnectError
from connectrpc.request import RequestContext
from e2b.envd.filesystem import filesystem_pb as fs
from e2b.envd.filesystem.filesystem_connect import Filesystem
from protobuf import Oneof

from .common import entry_info, keepalive_interval, rpc_errors, user_from_headers
from .limits import SandboxLimits
from .paths import SandboxLayout, make_private_dirs

WATCH_POLL_INTERVAL = 0.25
"""Seconds between two scans of a watched directory (watching is done by polling)."""

_Snapshot = dict[str, tuple[bool, int, int]]
"""Relative path -> (is_dir, mtime_ns, size) of every entry below a watched directory."""


def _scan(host_dir: Path, recursive: bool, max_entries: int) -> _Snapshot:
    snapshot: _Snapshot = {}
    pending: list[tuple[Path, str]] = [(host_dir, "")]
    while pending:
        directory, prefix = pending.pop()
        try:
            entries = list(os.scandir(directory))
        except OSError:
            continue
        for entry in entries:
            rel = f"{prefix}{entry.name}"
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            is_dir = stat.S_ISDIR(st.st_mode)
            snapshot[rel] = (is_dir, st.st_mtime_ns, st.st_size)
            if len(snapshot) > max_entries:
                raise ConnectError(
                    Code.RESOURCE_EXHAUSTED,
                    f"more than {max_entries} entries to watch; watch a smaller directory or not recursively",
                )
            if recursive and is_dir:
                pending.append((Path(entry.path), rel + "/"))
    return snapshot


@dataclass
class _Watcher:
    vpath: str
    host: Path
    recursive: bool
    include_entry: bool
    max_entries: int
    snapshot: _Snapshot = field(default_factory=dict)

    def poll(self, layout: SandboxLayout) -> list[fs.FilesystemEvent]:
        current = _scan(self.host, self.recursive, self.max_entries)
        events: list[tuple[str, fs.EventType]] = []
        for rel, (is_dir, mtime, size) in current.items():
            previous = self.snapshot.get(rel)
            if previous is None:
                events.append((rel, fs.EventType.CREATE))
            elif not is_dir and previous[1:] != (mtime, size):
                events.append((rel, fs.EventType.WRITE))
        events.extend((rel, fs.EventType.REMOVE) for rel in self.snapshot if rel not in current)
        self.snapshot = current
        out: list[fs.FilesystemEvent] = []
        for rel, kind in events:
            event = fs.FilesystemEvent(name=rel, type=kind)
            if self.include_entry and kind != fs.EventType.REMOVE:
                vpath = f"{self.vpath.rstrip('/')}/{rel}"
                with contextlib.suppress(OSError):
                    event.entry = entry_info(layout, vpath, self.host / rel)
            out.append(event)
        return out


class FilesystemService(Filesystem):
    """Implements every method of ``filesystem.Filesystem`` (see filesystem_connect.py)."""

    def __init__(self, layout: SandboxLayout, limits: SandboxLimits, alive: Callable[[], bool]) -> None:
        self._layout = layout
        self._limits = limits
        self._alive = alive
        self._watchers: dict[str, _Watcher] = {}
        self._streams = 0

    def _resolve(self, path: str, ctx: RequestContext[Any, Any]) -> str:
        return self._layout.resolve(path, user_from_headers(ctx.request_headers, self._layout.user))

    def _dir_watcher(
        self, path: str, recursive: bool, include_entry: bool, ctx: RequestContext[Any, Any]
    ) -> _Watcher:
        vpath = self._resolve(path, ctx)
        host = self._layout.to_host(vpath)
        if not host.exists():
            raise ConnectError(Code.NOT_FOUND, f"path '{vpath}' not found")
        if not host.is_dir():
            raise ConnectError(Code.INVALID_ARGUMENT, f"path '{vpath}' is not a directory")
        if len(self._watchers) + self._streams >= self._limits.watchers:
            raise ConnectError(
                Code.RESOURCE_EXHAUSTED, f"more than {self._limits.watchers} watchers; remove one first"
            )
        watcher = _Watcher(vpath, host, recursive, include_entry, self._limits.watch_entries)
        watcher.snapshot = _scan(host, recursive, self._limits.watch_entries)
        return watcher

    async def stat(
        self, request: fs.StatRequest, ctx: RequestContext[fs.StatRequest, fs.StatResponse]
    ) -> fs.StatResponse:
        with rpc_errors("error getting file info"):
            vpath = self._resolve(request.path, ctx)
            host = self._layout.to_host(vpath, follow=False)
            return fs.StatResponse(entry=entry_info(self._layout, vpath, host))

    async def make_dir(
        self, request: fs.MakeDirRequest, ctx: RequestContext[fs.MakeDirRequest, fs.MakeDirResponse]
    ) -> fs.MakeDirResponse:
        with rpc_errors("error creating directory"):
            vpath = self._resolve(request.path, ctx)
            host = self._layout.to_host(vpath)
            if host.exists():
                if host.is_dir():
                    raise ConnectError(Code.ALREADY_EXISTS, f"directory already exists: {vpath}")
                raise ConnectError(
                    Code.INVALID_ARGUMENT, f"path already exists but it is not a directory: {vpath}"
                )
            make_private_dirs(host, exist_ok=False)
            return fs.MakeDirResponse(entry=entry_info(self._layout, vpath, host))

    async def move(
        self, request: fs.MoveRequest, ctx: RequestContext[fs.MoveRequest, fs.MoveResponse]
    ) -> fs.MoveResponse:
        with rpc_errors("error moving"):
            source = self._resolve(request.source, ctx)
            destination = self._resolve(request.destination, ctx)
            if source == "/" or destination == "/":
                raise ConnectError(Code.INVALID_ARGUMENT, "cannot move the sandbox root")
            src_host = self._layout.to_host(source, follow=False)
            dst_host = self._layout.to_host(destination, follow=False)
            if not os.path.lexists(src_host):
                raise ConnectError(Code.NOT_FOUND, f"source file not found: {source}")
            make_private_dirs(dst_host.parent)
            os.replace(src_host, dst_host)
            return fs.MoveResponse(entry=entry_info(self._layout, destination, dst_host))

    async def list_dir(
        self, request: fs.ListDirRequest, ctx: RequestContext[fs.ListDirRequest, fs.ListDirResponse]
    ) -> fs.ListDirResponse:
        depth = request.depth or 1
        if depth > self._limits.list_depth:
            raise ConnectError(
                Code.INVALID_ARGUMENT, f"depth {depth} is over the limit of {self._limits.list_depth}"
            )
        with rpc_errors("error listing directory"):
            vpath = self._resolve(request.path, ctx)
            host = self._layout.to_host(vpath)
            if not host.exists():
                raise ConnectError(Code.NOT_FOUND, f"directory not found: {vpath}")
            if not host.is_dir():
                raise ConnectError(Code.INVALID_ARGUMENT, f"path is not a directory: {vpath}")
            entries: list[fs.EntryInfo] = []
            pending: list[tuple[Path, str, int]] = [(host, vpath.rstrip("/"), 1)]
            while pending:
                directory, prefix, level = pending.pop(0)
                for entry in sorted(os.scandir(directory), key=lambda e: e.name):
                    child_vpath = f"{prefix}/{entry.name}"
                    try:
                        info = entry_info(self._layout, child_vpath, Path(entry.path))
                    except FileNotFoundError:
                        continue
                    entries.append(info)
                    if len(entries) > self._limits.list_entries:
                        raise ConnectError(
                            Code.RESOURCE_EXHAUSTED,
                            f"more than {self._limits.list_entries} entries; list a narrower path or a smaller depth",
                        )
                    if level < depth and entry.is_dir(follow_symlinks=False):
                        pending.append((Path(entry.path), child_vpath, level + 1))
            return fs.ListDirResponse(entries=entries)

    async def remove(
        self, request: fs.RemoveRequest, ctx: RequestContext[fs.RemoveRequest, fs.RemoveResponse]
    ) -> fs.RemoveResponse:
        with rpc_errors("error removing file or directory"):
            vpath = self._resolve(request.path, ctx)
            if vpath == "/":
                raise ConnectError(Code.INVALID_ARGUMENT, "refusing to remove the sandbox root")
            host = self._layout.to_host(vpath, follow=False)
            # Like envd (os.RemoveAll): removing a path that does not exist succeeds.
            if host.is_symlink() or (host.exists() and not host.is_dir()):
                host.unlink()
            elif host.is_dir():
                shutil.rmtree(host)
            return fs.RemoveResponse()

    async def watch_dir(
        self, request: fs.WatchDirRequest, ctx: RequestContext[fs.WatchDirRequest, fs.WatchDirResponse]
    ) -> AsyncIterator[fs.WatchDirResponse]:
        with rpc_errors("error watching directory"):
            watcher = self._dir_watcher(request.path, request.recursive, request.include_entry, ctx)
        self._streams += 1
        try:
            start: Oneof[Literal["start"], fs.WatchDirResponse.StartEvent] = Oneof(
                "start", fs.WatchDirResponse.StartEvent()
            )
            yield fs.WatchDirResponse(event=start)
            keepalive = keepalive_interval(ctx)
            idle = 0.0
            while self._alive():
                await asyncio.sleep(WATCH_POLL_INTERVAL)
                events = watcher.poll(self._layout)
                for event in events:
                    change: Oneof[Literal["filesystem"], fs.FilesystemEvent] = Oneof("filesystem", event)
                    yield fs.WatchDirResponse(event=change)
                idle = 0.0 if events else idle + WATCH_POLL_INTERVAL
                if keepalive is not None and idle >= keepalive:
                    idle = 0.0
                    ping: Oneof[Literal["keepalive"], fs.WatchDirResponse.KeepAlive] = Oneof(
                        "keepalive", fs.WatchDirResponse.KeepAlive()
                    )
                    yield fs.WatchDirResponse(event=ping)
            raise ConnectError(Code.UNAVAILABLE, "the sandbox was not found: its lifetime is over")
        finally:
            self._streams -= 1

    async def create_watcher(
        self,
        request: fs.CreateWatcherRequest,
        ctx: RequestContext[fs.CreateWatcherRequest, fs.CreateWatcherResponse],
    ) -> fs.CreateWatcherResponse:
        with rpc_errors("error creating watcher"):
            watcher = self._dir_watcher(request.path, request.recursive, request.include_entry, ctx)
        watcher_id = uuid.uuid4().hex
        self._watchers[watcher_id] = watcher
        return fs.CreateWatcherResponse(watcher_id=watcher_id)

    async def get_watcher_events(
        self,
        request: fs.GetWatcherEventsRequest,
        ctx: RequestContext[fs.GetWatcherEventsRequest, fs.GetWatcherEventsResponse],
    ) -> fs.GetWatcherEventsResponse:
        watcher = self._watchers.get(request.watcher_id)
        if watcher is None:
            raise ConnectError(Code.NOT_FOUND, f"watcher with id {request.watcher_id} not found")
        try:
            return fs.GetWatcherEventsResponse(events=watcher.poll(self._layout))
        except ConnectError:
            del self._watchers[request.watcher_id]  # over its bound: it is gone
            raise

    async def remove_watcher(
        self,
        request: fs.RemoveWatcherRequest,
        ctx: RequestContext[fs.RemoveWatcherRequest, fs.RemoveWatcherResponse],
    ) -> fs.RemoveWatcherResponse:
        if self._watchers.pop(request.watcher_id, None) is None:
            raise ConnectError(Code.NOT_FOUND, f"watcher with id {request.watcher_id} not found")
        return fs.RemoveWatcherResponse()
