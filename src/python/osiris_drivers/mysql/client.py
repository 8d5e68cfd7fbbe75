"""pymysql sessions that never send a file the server names, only the one file this session offers.

In `LOAD DATA LOCAL INFILE` the *server* names the file the client must send (packet `0xFB <filename>`), and
may do so in answer to any statement. pymysql sends whatever file is named, so a malicious or compromised server
reads any file of this host (`/proc/self/environ`, keys). `SafeConnection` sends a file only while the writer
offers exactly that file (`offering`), for the statement that loads it; any other request is refused: nothing
of the file is read, the session is closed and `LocalInfileRefused` raised.

This module imports pymysql; `osiris_drivers.mysql.connection` imports it only when a session is opened.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, ClassVar

import pymysql
from pymysql.connections import Connection, MySQLResult
from pymysql.protocol import MysqlPacket

CR_COMMANDS_OUT_OF_SYNC = 2014
CR_LOAD_DATA_LOCAL_INFILE_REJECTED = 2068
"""libmysqlclient's code for a LOCAL INFILE request it refuses (its `local_infile_dir` check)."""


class LocalInfileRefused(pymysql.err.OperationalError):
    """The server asked for a local file this session did not offer; nothing of it was sent."""

    def __init__(self, requested: str) -> None:
        self.requested = requested
        super().__init__(CR_LOAD_DATA_LOCAL_INFILE_REJECTED,
                         f"refused the server's request for local file '{requested}'")


class _GuardedResult(MySQLResult):
    # pymysql's stubs leave out the LOCAL INFILE internals this class hooks, hence the `Any`s.
    def _read_load_local_packet(self, first_packet: MysqlPacket) -> None:
        connection = self.connection
        assert isinstance(connection, SafeConnection)
        packet: Any = first_packet
        requested = bytes(packet.get_all_data()[1:])
        offered = connection.offered_file
        if offered is None or requested != os.fsencode(offered):
            connection.close_unsafely()
            raise LocalInfileRefused(os.fsdecode(requested))
        self._send_offered(connection, offered)

    def _send_offered(self, connection: SafeConnection, path: str) -> None:
        """pymysql's answer to the request, except that an error or a stop (KeyboardInterrupt) while the file goes
        out drops the session: pymysql would still send the end packet and wait for the server's reply, which a
        killed LOAD DATA gives only after `net_read_timeout` (30 s). A dropped session's transaction rolls back."""
        conn: Any = connection
        try:
            send: Any = vars(pymysql.connections)["_send_local_file"]
            send(path, conn)
        except BaseException:
            connection.close_unsafely()
            raise
        conn.write_packet(b"")
        ok_packet = conn._read_packet()
        if not ok_packet.is_ok_packet():
            raise pymysql.err.OperationalError(CR_COMMANDS_OUT_OF_SYNC, "Commands Out of Sync")
        result: Any = self
        result._read_ok_packet(ok_packet)


if TYPE_CHECKING:
    _Connection = Connection[Any]
else:  # pymysql's Connection is generic only in its stubs
    _Connection = Connection


class SafeConnection(_Connection):
    """A pymysql connection whose LOCAL INFILE answers are limited to the file `offering` names."""

    offered_file: str | None = None
    _preferred_tls: ClassVar[Any] = None

    def _create_ssl_ctx(self, sslp: Any) -> Any:
        """pymysql's "preferred" mode (no TLS option) builds an unverified context for each session, loading the
        system's CA certificates every time (~17 ms of CPU); one serves every session of the process."""
        parent: Any = super()  # pymysql's stubs do not declare the method
        if sslp:
            return parent._create_ssl_ctx(sslp)
        if SafeConnection._preferred_tls is None:
            SafeConnection._preferred_tls = parent._create_ssl_ctx(sslp)
        return SafeConnection._preferred_tls

    @contextlib.contextmanager
    def offering(self, path: str) -> Iterator[None]:
        """While inside, a LOCAL INFILE request for exactly `path` is answered with that file."""
        self.offered_file = path
        try:
            yield
        finally:
            self.offered_file = None

    def close_unsafely(self) -> None:
        """Drop the socket without a word: the server is not to be trusted with anything more."""
        connection: Any = self
        connection._force_close()

    def _read_query_result(self, unbuffered: bool = False) -> int:
        # pymysql's own method, with the guarded result class in place of MySQLResult.
        self._result = None
        result = _GuardedResult(self)
        if unbuffered:
            result.init_unbuffered_query()
        else:
            result.read()
        self._result = result
        if result.server_status is not None:
            self.server_status = result.server_status
        return int(result.affected_rows or 0)
