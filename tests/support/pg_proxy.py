"""A TCP proxy in front of the real PostgreSQL that can lose the answer to a COMMIT, for tests.

It relays the wire protocol byte for byte and reads only the client's side: after the startup packets (an
SSL/GSS request, the startup message), each message is a type byte and a length. With `drop_next_commit()`, the
next simple-query `COMMIT` reaches the server, which commits; the proxy then waits for the server's answer and
closes the client's connection instead of relaying it, as a pooler or network that fails at that moment does.
`drop_commit_after(text)` does so for the first COMMIT after a query containing `text`.
Use it with `sslmode=disable` (the proxy cannot read an encrypted stream).
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from types import TracebackType

__all__ = ["PgProxy"]

_SPECIAL_REQUESTS = frozenset({80877103, 80877104})  # SSLRequest, GSSENCRequest


class PgProxy:
    """Listens on a free local port and relays to `host:port`."""

    def __init__(self, host: str, port: int) -> None:
        self._target = (host, port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._drop_commit = threading.Event()
        self._armed_by: bytes | None = None
        self.dropped = 0
        """How many COMMIT answers were lost."""
        self._stopped = threading.Event()
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, name="pg-proxy", daemon=True).start()

    def __enter__(self) -> PgProxy:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def drop_next_commit(self) -> None:
        self._drop_commit.set()

    def drop_commit_after(self, text: str) -> None:
        self._armed_by = text.encode()

    def stop(self) -> None:
        self._stopped.set()
        with contextlib.suppress(OSError):
            self._listener.close()
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(self._target)
            with self._lock:
                self._sockets += [client, server]
            committing = threading.Event()
            threading.Thread(target=self._client_to_server, args=(client, server, committing), daemon=True).start()
            threading.Thread(target=self._server_to_client, args=(server, client, committing), daemon=True).start()

    @staticmethod
    def _read(sock: socket.socket, size: int) -> bytes:
        data = b""
        while len(data) < size:
            chunk = sock.recv(size - len(data))
            if not chunk:
                raise ConnectionError("closed")
            data += chunk
        return data

    def _client_to_server(self, client: socket.socket, server: socket.socket, committing: threading.Event) -> None:
        try:
            while True:  # startup packets: int32 length, int32 code, rest
                head = self._read(client, 8)
                length, code = struct.unpack("!ii", head)
                server.sendall(head + self._read(client, length - 8))
                if code not in _SPECIAL_REQUESTS:
                    break
            while True:
                kind = self._read(client, 1)
                length_bytes = self._read(client, 4)
                body = self._read(client, struct.unpack("!i", length_bytes)[0] - 4)
                if kind == b"Q" and self._armed_by is not None and self._armed_by in body:
                    self._armed_by = None
                    self._drop_commit.set()
                elif kind == b"Q" and body.lstrip().upper().startswith(b"COMMIT") and self._drop_commit.is_set():
                    self._drop_commit.clear()
                    committing.set()
                server.sendall(kind + length_bytes + body)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                server.shutdown(socket.SHUT_WR)

    def _server_to_client(self, server: socket.socket, client: socket.socket, committing: threading.Event) -> None:
        try:
            while True:
                data = server.recv(65536)
                if not data:
                    break
                if committing.is_set():  # the server has answered the COMMIT: lose the answer
                    self.dropped += 1
                    break
                client.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (client, server):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
