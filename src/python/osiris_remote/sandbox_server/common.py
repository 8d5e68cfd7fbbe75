"""Helpers shared by the Connect services and the HTTP endpoints."""

from __future__ import annotations

import base64
import binascii
import errno
import grp
import os
import pwd
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from connectrpc.code import Code
from connectrpc.errors import ConnectError
from connectrpc.request import Headers, RequestContext
from e2b.envd.filesystem import filesystem_pb
from protobuf.wkt import Timestamp

from .paths import SandboxLayout, SandboxPathError, validate_username

METADATA_XATTR_PREFIX = "user.e2b."
"""User metadata is stored as extended attributes with this prefix, like envd does."""


def user_from_basic_auth(authorization: str | None, default: str) -> str:
    """The user named by an ``Authorization: Basic base64("<user>:")`` header.

    The SDK sends this header (with an empty password) when a call passes ``user=``;
    without it envd acts as its default user (``default``).
    """
    if not authorization:
        return default
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "basic":
        raise ConnectError(Code.UNAUTHENTICATED, "unsupported authorization scheme")
    try:
        decoded = base64.b64decode(token.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError) as e:
        raise ConnectError(Code.UNAUTHENTICATED, "malformed basic authorization") from e
    username = decoded.partition(":")[0] or default
    try:
        return validate_username(username)
    except SandboxPathError as e:
        raise ConnectError(Code.UNAUTHENTICATED, f"invalid username: '{username}'") from e


def user_from_headers(headers: Headers, default: str) -> str:
    return user_from_basic_auth(headers.get("authorization"), default)


@contextmanager
def rpc_errors(what: str) -> Iterator[None]:
    """Translate path and OS errors raised inside a handler into Connect errors."""
    try:
        yield
    except ConnectError:
        raise
    except SandboxPathError as e:
        raise ConnectError(Code.INVALID_ARGUMENT, str(e)) from e
    except FileNotFoundError as e:
        raise ConnectError(Code.NOT_FOUND, f"{what}: path not found") from e
    except (NotADirectoryError, IsADirectoryError) as e:
        raise ConnectError(Code.INVALID_ARGUMENT, f"{what}: {e.strerror}") from e
    except PermissionError as e:
        raise ConnectError(Code.PERMISSION_DENIED, f"{what}: {e.strerror}") from e
    except OSError as e:
        if e.errno == errno.ENOSPC:
            raise ConnectError(Code.RESOURCE_EXHAUSTED, f"{what}: not enough disk space") from e
        if e.errno == errno.ELOOP:
            raise ConnectError(Code.FAILED_PRECONDITION, f"{what}: too many symlinks") from e
        raise ConnectError(Code.INTERNAL, f"{what}: {e}") from e


def _owner_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def read_metadata(host: Path) -> dict[str, str]:
    """User metadata stored on a file as ``user.e2b.*`` extended attributes."""
    try:
        names = os.listxattr(host, follow_symlinks=False)
    except OSError:
        return {}
    out: dict[str, str] = {}
    for name in names:
        if name.startswith(METADATA_XATTR_PREFIX):
            try:
                value = os.getxattr(host, name, follow_symlinks=False)
            except OSError:
                continue
            out[name[len(METADATA_XATTR_PREFIX) :]] = value.decode("utf-8", "replace")
    return out


def write_metadata(host: Path, metadata: dict[str, str]) -> dict[str, str]:
    """Store metadata as extended attributes (best effort); return what was stored."""
    stored: dict[str, str] = {}
    for key, value in metadata.items():
        try:
            os.setxattr(host, METADATA_XATTR_PREFIX + key, value.encode("utf-8"))
        except OSError:
            continue
        stored[key] = value
    return stored


def entry_info(layout: SandboxLayout, vpath: str, host: Path) -> filesystem_pb.EntryInfo:
    """An ``EntryInfo`` for a host path (not following a final symlink), named by ``vpath``.

    A symlink whose target lies inside the root reports that target (as a sandbox path) and
    the target's type; one that leads outside the root reveals nothing about where it
    points: no target, type ``SYMLINK``, size 0.
    """
    st = os.lstat(host)
    is_symlink = stat.S_ISLNK(st.st_mode)
    target_mode = st.st_mode
    size = st.st_size
    symlink_target: str | None = None
    if is_symlink:
        symlink_target = layout.to_virtual(os.path.realpath(host))
        target_mode = 0
        if symlink_target is None:
            size = 0  # an lstat size is the length of the target path
        else:
            try:
                target_mode = os.stat(host).st_mode
            except OSError:
                target_mode = 0
    if stat.S_ISDIR(target_mode):
        file_type = filesystem_pb.FileType.DIRECTORY
    elif stat.S_ISREG(target_mode):
        file_type = filesystem_pb.FileType.FILE
    elif is_symlink:
        file_type = filesystem_pb.FileType.SYMLINK
    else:
        file_type = filesystem_pb.FileType.UNSPECIFIED
    name = vpath.rsplit("/", 1)[-1] or "/"
    info = filesystem_pb.EntryInfo(
        name=name,
        type=file_type,
        path=vpath,
        size=size,
        mode=stat.S_IMODE(st.st_mode),
        permissions=stat.filemode(st.st_mode),
        owner=_owner_name(st.st_uid),
        group=_group_name(st.st_gid),
        modified_time=Timestamp.from_datetime(datetime.fromtimestamp(st.st_mtime, tz=UTC)),
        metadata=read_metadata(host) or None,
        is_symlink=is_symlink,
    )
    if symlink_target is not None:
        info.symlink_target = symlink_target
    return info


def keepalive_interval(ctx: RequestContext[Any, Any]) -> float | None:
    """Seconds between keepalive events the client asked for (``Keepalive-Ping-Interval``)."""
    raw = ctx.request_headers.get("keepalive-ping-interval")
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        return None
    return value if value > 0 else None
