"""A rogue MySQL server for tests: it speaks the MySQL client/server protocol faithfully enough for pymysql and
ConnectorX's Rust client, and answers with a LOCAL INFILE request naming a file of *its* choosing.

A client that honours such a request reads that file from its own disk and sends it: that is how a malicious
or compromised server steals `/proc/self/environ`, SSH keys or credentials. The server records every byte a
client sends in answer, so a test can assert that nothing of the file left the client::

    with RogueMySQLServer(secret_file) as server:
        ...connect to 127.0.0.1:server.port and run anything...
        assert server.infile_requests and not server.file_bytes

Protocol (https://dev.mysql.com/doc/dev/mysql-server/latest/PAGE_PROTOCOL.html): a HandshakeV10 greeting
(mysql_native_password, CLIENT_LOCAL_FILES advertised), any credentials accepted with an OK packet, then
every COM_QUERY and COM_STMT_EXECUTE answered with `0xFB <filename>`, the LOCAL INFILE request (only the
session-setup statements clients read a bare OK for and `SELECT @@variable` probes get the answers any server
gives). The client's file content packets are read up to the empty packet that ends them and the statement is
answered with OK. COM_PING, COM_INIT_DB and COM_STMT_RESET get OK, COM_STMT_CLOSE nothing, COM_QUIT closes.

With `tls` (a server-side `ssl.SSLContext`) the greeting offers TLS and an SSLRequest upgrades the session,
so clients' certificate checks can be tested. With `play_along=True` the server behaves like a plain MariaDB
to the Osiris MySQL writer (its session setup, its probes and DDL get believable answers) and springs the
request only on the writer's own `LOAD DATA LOCAL INFILE`, when the client does have LOCAL INFILE enabled.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import socket
import socketserver
import ssl
import struct
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

__all__ = ["RogueMySQLProcess", "RogueMySQLServer"]

SERVER_VERSION = "5.7.44-rogue"
CHARSET_UTF8MB4 = 45
STATUS_AUTOCOMMIT = 0x0002

CLIENT_LONG_PASSWORD = 0x1
CLIENT_FOUND_ROWS = 0x2
CLIENT_LONG_FLAG = 0x4
CLIENT_CONNECT_WITH_DB = 0x8
CLIENT_LOCAL_FILES = 0x80
CLIENT_PROTOCOL_41 = 0x200
CLIENT_SSL = 0x800
CLIENT_TRANSACTIONS = 0x2000
CLIENT_SECURE_CONNECTION = 0x8000
CLIENT_MULTI_STATEMENTS = 0x10000
CLIENT_MULTI_RESULTS = 0x20000
CLIENT_PS_MULTI_RESULTS = 0x40000
CLIENT_PLUGIN_AUTH = 0x80000
CAPABILITIES = (CLIENT_LONG_PASSWORD | CLIENT_FOUND_ROWS | CLIENT_LONG_FLAG | CLIENT_CONNECT_WITH_DB
                | CLIENT_LOCAL_FILES | CLIENT_PROTOCOL_41 | CLIENT_TRANSACTIONS | CLIENT_SECURE_CONNECTION
                | CLIENT_MULTI_STATEMENTS | CLIENT_MULTI_RESULTS | CLIENT_PS_MULTI_RESULTS | CLIENT_PLUGIN_AUTH)

COM_QUIT, COM_INIT_DB, COM_QUERY, COM_PING = 0x01, 0x02, 0x03, 0x0E
COM_STMT_PREPARE, COM_STMT_EXECUTE, COM_STMT_CLOSE, COM_STMT_RESET = 0x16, 0x17, 0x19, 0x1A
TYPE_VAR_STRING = 0xFD
ER_NO_SUCH_TABLE = 1146
SESSION_COMMANDS = re.compile(r"\s*(SET\s+NAMES|SET\s+AUTOCOMMIT|COMMIT|ROLLBACK)\b", re.I)
"""Statements clients send while setting up or ending a session and whose answer they read as a bare OK
(pymysql's `SET NAMES`, `SET AUTOCOMMIT`, `commit()`): answered with OK, as any server would."""
VARIABLE_PROBE = re.compile(r"\s*SELECT\s+@@[\w.]+(\s*,\s*@@[\w.]+)*\s*$", re.I)
"""`SELECT @@max_allowed_packet`, `SELECT @@SESSION.sql_mode, @@GLOBAL.local_infile`: answered with values."""
VARIABLES: dict[str, str | None] = {"max_allowed_packet": "16777216", "socket": "/nonexistent/rogue.sock",
                                    "wait_timeout": "28800", "sql_mode": "STRICT_TRANS_TABLES", "local_infile": "1"}


def _lenenc_int(value: int) -> bytes:
    if value < 0xFB:
        return bytes([value])
    if value < 1 << 16:
        return b"\xfc" + struct.pack("<H", value)
    if value < 1 << 24:
        return b"\xfd" + struct.pack("<I", value)[:3]
    return b"\xfe" + struct.pack("<Q", value)


def _lenenc_str(value: bytes) -> bytes:
    return _lenenc_int(len(value)) + value


OK_PACKET = b"\x00\x00\x00" + struct.pack("<HH", STATUS_AUTOCOMMIT, 0)
EOF_PACKET = b"\xfe" + struct.pack("<HH", 0, STATUS_AUTOCOMMIT)


def _error_packet(code: int, state: str, message: str) -> bytes:
    return b"\xff" + struct.pack("<H", code) + b"#" + state.encode() + message.encode()


def _column_definition(name: str) -> bytes:
    return (_lenenc_str(b"def") + _lenenc_str(b"") + _lenenc_str(b"") + _lenenc_str(b"")
            + _lenenc_str(name.encode()) + _lenenc_str(name.encode()) + b"\x0c"
            + struct.pack("<HIBHB", CHARSET_UTF8MB4, 1024, TYPE_VAR_STRING, 0, 0) + b"\x00\x00")


@dataclass
class _Connection:
    """One client connection's framing: packets with a sequence number."""

    sock: socket.socket
    seq: int = 0
    buffer: bytearray = field(default_factory=bytearray)

    def _read_exactly(self, n: int) -> bytes | None:
        while len(self.buffer) < n:
            chunk = self.sock.recv(n - len(self.buffer))  # never past the packet: TLS may start right after it
            if not chunk:
                return None
            self.buffer.extend(chunk)
        data = bytes(self.buffer[:n])
        del self.buffer[:n]
        return data

    def read(self) -> bytes | None:
        header = self._read_exactly(4)
        if header is None:
            return None
        length = header[0] | header[1] << 8 | header[2] << 16
        self.seq = (header[3] + 1) & 0xFF
        return self._read_exactly(length)

    def write(self, payload: bytes) -> None:
        self.sock.sendall(struct.pack("<I", len(payload))[:3] + bytes([self.seq]) + payload)
        self.seq = (self.seq + 1) & 0xFF


class RogueMySQLServer:
    """A MySQL-protocol server on a free local port that asks every client for `requested_file`."""

    def __init__(self, requested_file: Path | str, *, play_along: bool = False, host: str = "127.0.0.1",
                 record_dir: Path | None = None, tls: ssl.SSLContext | None = None) -> None:
        self.requested_file = str(requested_file)
        self.play_along = play_along
        self.record_dir = record_dir
        self.tls = tls
        """With a server-side context, CLIENT_SSL is advertised and a client's SSLRequest upgrades to TLS."""
        self.tls_sessions = 0
        self.queries: list[str] = []
        self.infile_requests = 0
        self.file_bytes = b""
        """Everything clients sent in answer to LOCAL INFILE requests."""
        self.handshakes = 0
        self._lock = threading.Lock()
        owner = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                with contextlib.suppress(OSError):
                    owner._serve(_Connection(self.request))

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

        self._server = Server((host, 0), Handler)
        self.host = host
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="rogue-mysql", daemon=True)
        self._thread.start()

    def __enter__(self) -> RogueMySQLServer:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    # ------------------------------------------------------------------------------------------ protocol

    def _serve(self, conn: _Connection) -> None:
        salt = os.urandom(20).replace(b"\x00", b"\x01")
        capabilities = CAPABILITIES | (CLIENT_SSL if self.tls else 0)
        greeting = (b"\x0a" + SERVER_VERSION.encode() + b"\x00" + struct.pack("<I", 7) + salt[:8] + b"\x00"
                    + struct.pack("<HBHH", capabilities & 0xFFFF, CHARSET_UTF8MB4, STATUS_AUTOCOMMIT,
                                  capabilities >> 16)
                    + bytes([21]) + b"\x00" * 10 + salt[8:] + b"\x00" + b"mysql_native_password\x00")
        conn.write(greeting)
        response = conn.read()
        if response is not None and self.tls and len(response) == 32 and \
                struct.unpack("<I", response[:4])[0] & CLIENT_SSL:  # an SSLRequest: TLS, then the real response
            try:
                conn.sock = self.tls.wrap_socket(conn.sock, server_side=True)
            except (ssl.SSLError, OSError):
                return  # the client refused our certificate
            with self._lock:
                self.tls_sessions += 1
            response = conn.read()
        if response is None:  # the HandshakeResponse41: any credentials will do
            return
        with self._lock:
            self.handshakes += 1
        conn.write(OK_PACKET)
        while True:
            conn.seq = 0
            packet = conn.read()
            if not packet or packet[0] == COM_QUIT:
                return
            command, body = packet[0], packet[1:]
            if command == COM_QUERY:
                self._query(conn, body.decode("utf-8", "replace"))
            elif command == COM_STMT_PREPARE:
                with self._lock:
                    self.queries.append(body.decode("utf-8", "replace"))
                conn.write(b"\x00" + struct.pack("<IHHBH", 1, 0, 0, 0, 0))  # statement 1: no columns, no params
            elif command == COM_STMT_EXECUTE:
                self._request_file(conn)
            elif command == COM_STMT_CLOSE:
                continue
            elif command in (COM_PING, COM_INIT_DB, COM_STMT_RESET):
                conn.write(OK_PACKET)
            else:
                conn.write(_error_packet(1047, "08S01", "Unknown command"))

    def _query(self, conn: _Connection, sql: str) -> None:
        with self._lock:
            self.queries.append(sql)
            self._record("queries", sql.encode() + b"\n")
        if SESSION_COMMANDS.match(sql):
            conn.write(OK_PACKET)
        elif VARIABLE_PROBE.match(sql):
            names = re.findall(r"@@(?:SESSION\.|GLOBAL\.)?(\w+)", sql, re.I)
            self._rows(conn, names, [[VARIABLES.get(name.lower(), "") for name in names]])
        elif not self.play_along or re.match(r"\s*LOAD\s+DATA\b", sql, re.I):
            self._request_file(conn)
        elif re.search(r"\bVERSION\(\)", sql, re.I):
            self._rows(conn, ["version", "user"], [[SERVER_VERSION, "root@%"]])
        elif re.search(r"\bLIMIT 0\s*$", sql, re.I):
            conn.write(_error_packet(ER_NO_SUCH_TABLE, "42S02", "Table doesn't exist"))
        elif re.match(r"\s*(SELECT|SHOW)\b", sql, re.I):
            self._rows(conn, ["x"], [])
        else:
            conn.write(OK_PACKET)

    def _request_file(self, conn: _Connection) -> None:
        """`0xFB <filename>`, then whatever the client sends up to the empty packet, then OK."""
        with self._lock:
            self.infile_requests += 1
            self._record("requests", b"x")
        conn.write(b"\xfb" + self.requested_file.encode())
        while True:
            data = conn.read()
            if data is None:
                return
            if not data:
                break
            with self._lock:
                self.file_bytes += data
                self._record("file_bytes", data)
        conn.write(OK_PACKET)

    def _record(self, name: str, data: bytes) -> None:
        if self.record_dir is not None:
            with (self.record_dir / name).open("ab") as handle:
                handle.write(data)

    @staticmethod
    def _rows(conn: _Connection, columns: list[str], rows: list[list[str | None]]) -> None:
        conn.write(_lenenc_int(len(columns)))
        for name in columns:
            conn.write(_column_definition(name))
        conn.write(EOF_PACKET)
        for row in rows:
            conn.write(b"".join(b"\xfb" if value is None else _lenenc_str(value.encode()) for value in row))
        conn.write(EOF_PACKET)


class RogueMySQLProcess:
    """The same server in a child process, for clients that hold the GIL while they talk (ConnectorX's Rust
    client would starve a server thread of this process). What clients sent is read from `record_dir`."""

    def __init__(self, requested_file: Path | str, record_dir: Path, *, play_along: bool = False) -> None:
        self.record_dir = record_dir
        record_dir.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, __file__, str(requested_file), str(record_dir)]
        self._process = subprocess.Popen([*command, *(["--play-along"] if play_along else [])],
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        if not line.strip().isdigit():
            self.stop()
            raise RuntimeError(f"the rogue MySQL server did not start: {line!r}")
        self.host = "127.0.0.1"
        self.port = int(line)

    def __enter__(self) -> RogueMySQLProcess:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def stop(self) -> None:
        if self._process.poll() is None:
            self._process.terminate()
        self._process.wait(10)

    def _read(self, name: str) -> bytes:
        path = self.record_dir / name
        return path.read_bytes() if path.exists() else b""

    @property
    def infile_requests(self) -> int:
        return len(self._read("requests"))

    @property
    def file_bytes(self) -> bytes:
        return self._read("file_bytes")


def main() -> None:
    parser = argparse.ArgumentParser(description="Serve the rogue MySQL server until stdin closes.")
    parser.add_argument("requested_file")
    parser.add_argument("record_dir", type=Path)
    parser.add_argument("--play-along", action="store_true")
    args = parser.parse_args()
    with RogueMySQLServer(args.requested_file, play_along=args.play_along, record_dir=args.record_dir) as server:
        print(server.port, flush=True)
        sys.stdin.read()


if __name__ == "__main__":
    main()
