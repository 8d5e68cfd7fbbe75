"""Reading the files a user hands Osiris (pipelines, connections, manifests, step configs, bundles): regular
files only, under a size limit, refused before any parsing — a FIFO, a directory or a device never blocks or
floods a read, and an oversized file is refused from its `stat` alone."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from osiris_core.errors import InputError, Location

MiB = 1024 * 1024
MAX_YAML_BYTES = 4 * MiB
"""Pipelines, connections files and compiled manifests: a real one is a few KiB."""
MAX_JSON_BYTES = 4 * MiB
"""A compiled step config (`cfg/<step>.json`)."""
MAX_POINTER_BYTES = 64 * 1024
"""Small bookkeeping files such as `logs/last_compile`."""

_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def describe_size(size: int) -> str:
    """`4 MiB`, `64 KiB` or `12 bytes`."""
    for unit, name in ((MiB, "MiB"), (1024, "KiB")):
        if size >= unit and size % unit == 0:
            return f"{size // unit} {name}"
    return f"{size} bytes"


def _kind(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def check_regular_file(path: Path, *, limit: int | None, what: str,
                       error: type[InputError] = InputError) -> os.stat_result:
    """`os.stat` of `path` if it is a regular file within `limit` bytes (None: any size), else `error`."""
    where = Location(str(path))
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise error("file not found", location=where, hint="check the path") from None
    except OSError as exc:
        raise error(f"cannot read file: {exc.strerror or exc}", location=where, hint="check the path") from None
    _check(info, where, limit, what, error)
    return info


def _check(info: os.stat_result, where: Location, limit: int | None, what: str, error: type[InputError]) -> None:
    if not stat.S_ISREG(info.st_mode):
        raise error(f"{_kind(info.st_mode)}, not a regular file", location=where,
                    hint=f"give the path of a regular {what} file")
    if limit is not None and info.st_size > limit:
        raise error(f"{info.st_size} bytes is over the {describe_size(limit)} limit for {what} files",
                    location=where, hint=f"a {what} file is small: check that this is the right file")


def read_regular_file(path: Path, *, limit: int, what: str, error: type[InputError] = InputError) -> bytes:
    """The bytes of `path`, a regular file of at most `limit` bytes; anything else is `error`, named and located.

    The file is checked with `stat` before it is opened, opened without blocking (so a FIFO or device swapped in
    meanwhile cannot hang the read) and checked again through the open descriptor; a file that grows past the
    limit while it is read is refused too.
    """
    where = Location(str(path))
    check_regular_file(path, limit=limit, what=what, error=error)
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise error(f"cannot read file: {exc.strerror or exc}", location=where, hint="check the path") from None
    try:
        _check(os.fstat(fd), where, limit, what, error)
        chunks: list[bytes] = []
        size = 0
        while size <= limit:
            chunk = os.read(fd, min(1 * MiB, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as exc:
        raise error(f"cannot read file: {exc.strerror or exc}", location=where, hint="check the path") from None
    finally:
        os.close(fd)
    if size > limit:
        raise error(f"more than the {describe_size(limit)} limit for {what} files", location=where,
                    hint=f"a {what} file is small: check that this is the right file")
    return b"".join(chunks)


def read_regular_text(path: Path, *, limit: int, what: str, error: type[InputError] = InputError) -> str:
    """`read_regular_file` decoded as UTF-8; other bytes are `error`."""
    data = read_regular_file(path, limit=limit, what=what, error=error)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"not UTF-8 text (byte {exc.start})", location=Location(str(path)),
                    hint=f"save the {what} file as UTF-8") from None
