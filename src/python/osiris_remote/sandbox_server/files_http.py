"""envd's plain HTTP file API: ``GET /files`` (download) and ``POST /files`` (upload).

* ``GET /files?path=<p>[&username=<u>]`` streams the file; ``Accept-Encoding: gzip`` is
  honoured. 404 if missing, 400 if it is a directory.
* ``POST /files?path=<p>[&username=<u>]`` with ``application/octet-stream`` writes the body
  to ``p``; with ``multipart/form-data`` writes each ``file`` part to ``path`` (when given)
  or to the part's filename (the SDK sends the sandbox path as the filename).
  ``Content-Encoding: gzip`` bodies are decompressed; ``X-Metadata-<key>`` headers are
  stored as ``user.e2b.<key>`` extended attributes where the filesystem allows it.
  Parent directories are created (0700). Each file is written to a private temporary file
  (0600) next to its destination and renamed over it once the whole body arrived, so a
  refused or broken upload leaves no partial file; a replaced file keeps its mode. The
  answer is the JSON list envd returns: ``[{"name": ..., "type": "file", "path": ...}]``.
* Bodies are bounded (``SandboxLimits``): over ``upload_bytes`` as sent, over
  ``upload_decoded_bytes`` written (gzip is inflated in bounded steps, so a gzip bomb costs
  no memory) or over ``upload_files`` parts is answered 413 and nothing is written.
* Only regular files are downloaded (a FIFO or device inside the root is refused, 400).

Errors are JSON ``{"code": <status>, "message": ...}`` like envd's.
"""

from __future__ import annotations

import contextlib
import json
import mimetypes
import os
import re
import secrets
import stat
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import parse_qs

from .common import write_metadata
from .limits import MiB, SandboxLimits
from .paths import SandboxLayout, SandboxPathError, make_private_dirs, validate_username

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

DOWNLOAD_CHUNK = 256 * 1024
INFLATE_CHUNK = MiB
"""Most bytes one step of gzip decoding produces (a gzip bomb is inflated in steps of this)."""
_MAX_PART_HEADERS = 64 * 1024
_METADATA_HEADER_PREFIX = "x-metadata-"


class HTTPFailure(Exception):
    """An error answered as envd's JSON error body."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class _ClientGone(Exception):
    pass


async def send_json(send: Send, status: int, payload: object, *, close: bool = False) -> None:
    body = json.dumps(payload).encode("utf-8")
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def send_empty(send: Send, status: int) -> None:
    await send({"type": "http.response.start", "status": status, "headers": [(b"content-length", b"0")]})
    await send({"type": "http.response.body", "body": b"", "more_body": False})


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}


def _query(scope: Scope) -> dict[str, str]:
    raw = scope.get("query_string", b"").decode("utf-8", "replace")
    return {key: values[0] for key, values in parse_qs(raw, keep_blank_values=True).items()}


def _media_type(value: str) -> tuple[str, dict[str, str]]:
    media, _, rest = value.partition(";")
    return media.strip().lower(), _parse_params(rest)


_PARAM_RE = re.compile(r'\s*([^\s=;]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;]*)\s*;?')
_HTML5_ESCAPE_RE = re.compile(r"%(22|[01][0-9A-Fa-f])")


def _parse_params(value: str) -> dict[str, str]:
    params: dict[str, str] = {}
    for match in _PARAM_RE.finditer(value):
        key, raw = match.group(1).lower(), match.group(2).strip()
        if raw.startswith('"') and raw.endswith('"') and len(raw) >= 2:
            raw = re.sub(r"\\(.)", r"\1", raw[1:-1])
        params[key] = raw
    return params


def _part_filename(headers: dict[str, str]) -> tuple[str | None, str | None]:
    """(form field name, filename) of a multipart part; undoes httpx's HTML5 escaping."""
    _, params = _media_type(headers.get("content-disposition", ""))
    filename = params.get("filename")
    if filename is not None:
        filename = _HTML5_ESCAPE_RE.sub(lambda m: chr(int(m.group(1), 16)), filename)
    return params.get("name"), filename


class MultipartParser:
    """Incremental ``multipart/form-data`` parser.

    ``feed`` returns events: ``("start", headers)``, ``("data", bytes)``, ``("end", None)``.
    """

    def __init__(self, boundary: str) -> None:
        if not boundary:
            raise HTTPFailure(400, "multipart body without boundary")
        self._delimiter = b"\r\n--" + boundary.encode("latin-1")
        self._buffer = bytearray(b"\r\n")  # lets the first boundary match like the others
        self._state = "preamble"

    @property
    def finished(self) -> bool:
        return self._state == "done"

    def feed(self, data: bytes) -> list[tuple[str, Any]]:
        buf = self._buffer
        buf += data
        events: list[tuple[str, Any]] = []
        delimiter = self._delimiter
        while True:
            if self._state in ("preamble", "body"):
                index = buf.find(delimiter)
                if index < 0:
                    keep = len(delimiter) - 1
                    if len(buf) > keep:
                        if self._state == "body":
                            events.append(("data", bytes(buf[:-keep])))
                        del buf[:-keep]
                    break
                if self._state == "body":
                    if index:
                        events.append(("data", bytes(buf[:index])))
                    events.append(("end", None))
                del buf[: index + len(delimiter)]
                self._state = "boundary"
            elif self._state == "boundary":
                if len(buf) < 2:
                    break
                if buf[:2] == b"--":
                    self._state = "done"
                    buf.clear()
                    break
                line_end = buf.find(b"\r\n")
                if line_end < 0:
                    if len(buf) > 1024:
                        raise HTTPFailure(400, "malformed multipart boundary line")
                    break
                del buf[: line_end + 2]
                self._state = "headers"
            elif self._state == "headers":
                if buf[:2] == b"\r\n":
                    raw_headers = b""
                    del buf[:2]
                else:
                    end = buf.find(b"\r\n\r\n")
                    if end < 0:
                        if len(buf) > _MAX_PART_HEADERS:
                            raise HTTPFailure(400, "multipart part headers too large")
                        break
                    raw_headers = bytes(buf[:end])
                    del buf[: end + 4]
                headers: dict[str, str] = {}
                for line in raw_headers.decode("utf-8", "replace").split("\r\n"):
                    name, sep, value = line.partition(":")
                    if sep:
                        headers[name.strip().lower()] = value.strip()
                events.append(("start", headers))
                self._state = "body"
            else:  # done: ignore the epilogue
                buf.clear()
                break
        return events


class _RequestBody:
    """The request body as an async iterator of chunks, bounded and remembering whether it was consumed."""

    def __init__(self, receive: Receive, limits: SandboxLimits) -> None:
        self._receive = receive
        self._limits = limits
        self.complete = False
        self.received = 0

    async def chunks(self) -> AsyncIterator[bytes]:
        while not self.complete:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                raise _ClientGone
            if not message.get("more_body", False):
                self.complete = True
            chunk = message.get("body", b"")
            self.received += len(chunk)
            if self.received > self._limits.upload_bytes:
                raise HTTPFailure(413, f"upload body larger than {self._limits.upload_bytes} bytes")
            if chunk:
                yield chunk

    async def decoded(self, content_encoding: str) -> AsyncIterator[bytes]:
        encoding = content_encoding.strip().lower()
        if encoding in ("", "identity"):
            async for chunk in self.chunks():
                yield chunk
            return
        if encoding != "gzip":
            raise HTTPFailure(400, f"unsupported content encoding: {content_encoding}")
        decompressor = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        try:
            async for chunk in self.chunks():
                pending = chunk
                while pending and not decompressor.eof:
                    out = decompressor.decompress(pending, INFLATE_CHUNK)
                    pending = decompressor.unconsumed_tail
                    if out:
                        yield out
            while not decompressor.eof:
                out = decompressor.decompress(b"", INFLATE_CHUNK)
                if not out:
                    break
                yield out
        except zlib.error as e:
            raise HTTPFailure(400, f"error decompressing request body: {e}") from e
        if not decompressor.eof:
            raise HTTPFailure(400, "error decompressing request body: truncated gzip stream")

    async def drain(self) -> bool:
        """Read (and drop) the rest of the body, at most ``drain_bytes`` of it, so an early error answer
        reaches the client; False when more remained (the connection is then closed)."""
        limit = self.received + self._limits.drain_bytes
        while not self.complete:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                raise _ClientGone
            self.complete = not message.get("more_body", False)
            self.received += len(message.get("body", b""))
            if self.received > limit:
                return self.complete
        return True


class _Staged:
    """One file of an upload, written to a private temporary file until the whole request succeeded."""

    def __init__(self, vpath: str, host: Path) -> None:
        self.vpath = vpath
        self.host = host
        if host.is_dir():
            raise HTTPFailure(400, f"path is a directory: {vpath}")
        try:
            make_private_dirs(host.parent)
            self.temp = host.parent / f".{host.name}.{secrets.token_hex(8)}.osiris-upload"
            fd = os.open(self.temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        except (FileExistsError, NotADirectoryError) as e:
            raise HTTPFailure(400, f"error ensuring directories for '{vpath}': a parent is a file") from e
        except OSError as e:
            raise _os_failure(f"error opening file '{vpath}'", e) from e
        self.handle: BinaryIO = os.fdopen(fd, "wb")

    def write(self, data: bytes) -> None:
        try:
            self.handle.write(data)
        except OSError as e:
            raise _os_failure(f"error writing file '{self.vpath}'", e) from e

    def close(self) -> None:
        try:
            self.handle.close()
        except OSError as e:
            raise _os_failure(f"error writing file '{self.vpath}'", e) from e

    def commit(self) -> None:
        """Put the file in place (a replaced regular file keeps its permission bits)."""
        with contextlib.suppress(OSError):
            st = os.stat(self.host, follow_symlinks=False)
            if stat.S_ISREG(st.st_mode):
                os.chmod(self.temp, stat.S_IMODE(st.st_mode))
        try:
            os.replace(self.temp, self.host)
        except IsADirectoryError as e:
            raise HTTPFailure(400, f"path is a directory: {self.vpath}") from e
        except OSError as e:
            raise _os_failure(f"error writing file '{self.vpath}'", e) from e

    def discard(self) -> None:
        with contextlib.suppress(OSError):
            self.handle.close()
        with contextlib.suppress(OSError):
            os.unlink(self.temp)


def _os_failure(what: str, e: OSError) -> HTTPFailure:
    return HTTPFailure(507 if e.errno == 28 else 500, f"{what}: {e.strerror}")


class FilesEndpoint:
    """ASGI handler for ``/files``."""

    def __init__(self, layout: SandboxLayout, limits: SandboxLimits, alive: Callable[[], bool]) -> None:
        self._layout = layout
        self._limits = limits
        self._alive = alive

    def _resolve(self, path: str, query: dict[str, str]) -> tuple[str, Path]:
        try:
            username = validate_username(query.get("username") or self._layout.user)
            vpath = self._layout.resolve(path, username)
            return vpath, self._layout.to_host(vpath)
        except SandboxPathError as e:
            raise HTTPFailure(400, f"error resolving path '{path}': {e}") from e

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        method = scope.get("method", "GET")
        request_body = _RequestBody(receive, self._limits)
        try:
            if method in ("GET", "HEAD"):
                await self._download(scope, send, head=method == "HEAD")
            elif method == "POST":
                await self._upload(scope, request_body, send)
            else:
                raise HTTPFailure(405, f"method {method} not allowed")
        except _ClientGone:
            return
        except HTTPFailure as failure:
            try:
                drained = await request_body.drain()
            except (_ClientGone, HTTPFailure):
                return
            await send_json(send, failure.status, {"code": failure.status, "message": failure.message},
                            close=not drained)

    # -- download ----------------------------------------------------------------------------
    async def _download(self, scope: Scope, send: Send, *, head: bool) -> None:
        query = _query(scope)
        vpath, host = self._resolve(query.get("path", ""), query)
        try:
            # O_NONBLOCK: opening a FIFO must not wait for a writer (it is refused just below).
            fd = os.open(host, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except FileNotFoundError as e:
            raise HTTPFailure(404, f"path '{vpath}' does not exist") from e
        except IsADirectoryError as e:
            raise HTTPFailure(400, f"path '{vpath}' is a directory") from e
        except OSError as e:
            raise HTTPFailure(500, f"error opening file '{vpath}': {e.strerror}") from e
        with os.fdopen(fd, "rb") as handle:
            st = os.fstat(fd)
            if stat.S_ISDIR(st.st_mode):
                raise HTTPFailure(400, f"path '{vpath}' is a directory")
            if not stat.S_ISREG(st.st_mode):
                raise HTTPFailure(400, f"path '{vpath}' is not a regular file")
            os.set_blocking(fd, True)
            content_type = mimetypes.guess_type(vpath)[0] or "application/octet-stream"
            use_gzip = "gzip" in _headers(scope).get("accept-encoding", "").lower()
            headers: list[tuple[bytes, bytes]] = [
                (b"content-type", content_type.encode()),
                (b"vary", b"Accept-Encoding"),
            ]
            if use_gzip:
                headers.append((b"content-encoding", b"gzip"))
            else:
                headers.append((b"content-length", str(st.st_size).encode()))
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            if head:
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                return
            await _send_file(handle, send, use_gzip)

    # -- upload ------------------------------------------------------------------------------
    async def _upload(self, scope: Scope, request_body: _RequestBody, send: Send) -> None:
        query = _query(scope)
        headers = _headers(scope)
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self._limits.upload_bytes:
            raise HTTPFailure(413, f"upload body larger than {self._limits.upload_bytes} bytes")
        media, params = _media_type(headers.get("content-type", ""))
        metadata = {
            name[len(_METADATA_HEADER_PREFIX) :]: value
            for name, value in headers.items()
            if name.startswith(_METADATA_HEADER_PREFIX)
        }
        body = self._bounded(request_body.decoded(headers.get("content-encoding", "")))
        staged: list[_Staged] = []
        try:
            if media == "application/octet-stream":
                await self._upload_raw(body, query, staged)
            elif media.startswith("multipart/"):
                await self._upload_multipart(body, query, params.get("boundary", ""), staged)
            else:
                raise HTTPFailure(
                    400,
                    f"unsupported content type: {media or 'none'}, "
                    "expected multipart/form-data or application/octet-stream",
                )
            if not self._alive():  # the sandbox ended while the body arrived
                raise HTTPFailure(502, "the sandbox was not found: it ended during the upload")
            for item in staged:
                item.commit()
        finally:
            for item in staged:
                item.discard()
        await send_json(send, 200, [self._written(item.vpath, item.host, metadata) for item in staged])

    async def _bounded(self, body: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        written = 0
        async for chunk in body:
            written += len(chunk)
            if written > self._limits.upload_decoded_bytes:
                raise HTTPFailure(413, f"upload writes more than {self._limits.upload_decoded_bytes} bytes")
            yield chunk

    async def _upload_raw(self, body: AsyncIterator[bytes], query: dict[str, str], staged: list[_Staged]) -> None:
        if "path" not in query:
            raise HTTPFailure(400, "path query parameter is required for raw body upload")
        staged.append(item := self._stage(query["path"], query))
        async for chunk in body:
            item.write(chunk)
        item.close()

    async def _upload_multipart(
        self, body: AsyncIterator[bytes], query: dict[str, str], boundary: str, staged: list[_Staged]
    ) -> None:
        parser = MultipartParser(boundary)
        current: _Staged | None = None
        async for chunk in body:
            for kind, value in parser.feed(chunk):
                if kind == "start":
                    current = self._open_part(value, query, staged)
                elif kind == "data" and current is not None:
                    current.write(value)
                elif kind == "end" and current is not None:
                    current.close()
                    current = None
        if not parser.finished:
            raise HTTPFailure(400, "error reading form: unexpected end of multipart body")

    def _stage(self, target: str, query: dict[str, str]) -> _Staged:
        vpath, host = self._resolve(target, query)
        # Written where a symlink inside the root leads (to_host checked that it stays inside).
        return _Staged(vpath, Path(os.path.realpath(host)))

    def _open_part(self, part_headers: dict[str, str], query: dict[str, str], staged: list[_Staged]) -> _Staged | None:
        """Stage the destination of a multipart part (None for parts that are not files)."""
        name, filename = _part_filename(part_headers)
        if name != "file":
            return None
        target = query.get("path", filename)
        if not target:
            raise HTTPFailure(400, "multipart file part without a path")
        if len(staged) >= self._limits.upload_files:
            raise HTTPFailure(413, f"more than {self._limits.upload_files} files in one upload")
        vpath, _ = self._resolve(target, query)
        if any(vpath == done.vpath for done in staged):
            raise HTTPFailure(400, f"cannot upload multiple files to the same path '{vpath}' in one request")
        staged.append(item := self._stage(target, query))
        return item

    def _written(self, vpath: str, host: Path, metadata: dict[str, str]) -> dict[str, object]:
        entry: dict[str, object] = {"name": vpath.rsplit("/", 1)[-1], "type": "file", "path": vpath}
        if metadata:
            stored = write_metadata(host, metadata)
            if stored:
                entry["metadata"] = stored
        return entry


async def _send_file(handle: BinaryIO, send: Send, use_gzip: bool) -> None:
    compressor = zlib.compressobj(wbits=16 + zlib.MAX_WBITS) if use_gzip else None
    while True:
        chunk = handle.read(DOWNLOAD_CHUNK)
        if not chunk:
            break
        if compressor is not None:
            chunk = compressor.compress(chunk)
            if not chunk:
                continue
        await send({"type": "http.response.body", "body": chunk, "more_body": True})
    tail = compressor.flush() if compressor is not None else b""
    await send({"type": "http.response.body", "body": tail, "more_body": False})
