"""A canceller that needs no GIL of the run's process: a helper process forked when the signals are installed.

Some native calls hold the GIL while they wait on a database (ConnectorX waiting for a batch), so neither the
Python signal handler nor a watchdog thread runs until they return. The C part of CPython's signal handling still
does: it writes the signal number to the wakeup fd. The helper owns that fd's other end. On a stop signal it runs
the cancel actions the run registered (`StopHelper.add`: picklable callables, e.g. "cancel the server queries
tagged X"), which makes the blocked call fail and return the GIL, and it passes every byte on to the watchdog
thread (`relay`), so the in-process cancellers run as before.

Actions reach the helper pickled over a socket pair (credentials stay in memory: no file, argv or environment).
The helper ignores SIGINT/SIGTERM itself (Ctrl-C reaches the whole process group; it must still cancel), and it
exits when the run closes its control socket, or dies.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import pickle
import select
import signal
import socket
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

Action = Callable[[], None]
"""A cancel action: picklable (a module-level function, or a functools.partial of one), run in the helper."""

_LENGTH = struct.Struct("!I")
_STOP_BYTES = frozenset({int(signal.SIGINT), int(signal.SIGTERM)})
REAP_WAIT_S = 2.0


@dataclass
class StopHelper:
    """The run's side of the helper: its pid, the relay the watchdog reads, the control socket."""

    pid: int
    relay: socket.socket
    control: socket.socket
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _ids: itertools.count[int] = field(default_factory=itertools.count)

    def _send(self, message: tuple[object, ...]) -> None:
        data = pickle.dumps(message)
        with self._lock:
            self.control.sendall(_LENGTH.pack(len(data)) + data)

    def add(self, action: Action) -> int:
        """Register `action` (run on the next stop signal, or `cancel()`); its key for `remove`."""
        key = next(self._ids)
        self._send(("add", key, action))
        return key

    def remove(self, key: int) -> None:
        with contextlib.suppress(OSError):  # the helper is gone: nothing to remove
            self._send(("remove", key))

    def cancel(self) -> None:
        """Run the registered actions now (a stop requested without a signal)."""
        with contextlib.suppress(OSError):
            self._send(("cancel",))

    def close(self) -> None:
        """End the helper (it sees its control socket close) and reap it."""
        with contextlib.suppress(OSError):
            self.control.shutdown(socket.SHUT_RDWR)
        self.control.close()
        self.relay.close()
        waited = 0.0
        while waited < REAP_WAIT_S:
            with contextlib.suppress(ChildProcessError):
                if os.waitpid(self.pid, os.WNOHANG)[0]:
                    return
            threading.Event().wait(0.02)
            waited += 0.02


def start(wakeup: socket.socket) -> StopHelper | None:
    """Fork the helper reading `wakeup` (the wakeup fd's other end); None where fork is unavailable or fails."""
    if not hasattr(os, "fork"):
        return None
    relay_read, relay_write = socket.socketpair()
    control, helper_control = socket.socketpair()
    try:
        pid = os.fork()
    except OSError:
        for s in (relay_read, relay_write, control, helper_control):
            s.close()
        return None
    if pid == 0:  # the helper: never returns into the run's code
        code = 0
        try:
            relay_read.close()
            control.close()
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            _serve(wakeup, relay_write, helper_control)
        except BaseException:
            code = 1
        finally:
            os._exit(code)
    relay_write.close()
    helper_control.close()
    return StopHelper(pid, relay_read, control)


def _serve(wakeup: socket.socket, relay: socket.socket, control: socket.socket) -> None:
    actions: dict[int, Action] = {}
    buffer = b""

    def run_all() -> None:
        for key in list(actions):
            with contextlib.suppress(Exception):  # the query may have ended; another action may still matter
                actions.pop(key)()

    while True:
        ready, _, _ = select.select([wakeup, control], [], [])
        if control in ready:  # first: a registration or removal sent before the signal counts
            chunk = control.recv(65536)
            if not chunk:
                return
            buffer += chunk
            while len(buffer) >= _LENGTH.size:
                (size,) = _LENGTH.unpack_from(buffer)
                if len(buffer) < _LENGTH.size + size:
                    break
                payload, buffer = buffer[_LENGTH.size:_LENGTH.size + size], buffer[_LENGTH.size + size:]
                try:
                    message = pickle.loads(payload)  # from the run that forked this process
                except Exception:
                    continue
                if message[0] == "add":
                    actions[message[1]] = message[2]
                elif message[0] == "remove":
                    actions.pop(message[1], None)
                elif message[0] == "cancel":
                    run_all()
        if wakeup in ready:
            data = wakeup.recv(64)
            if not data:
                return
            with contextlib.suppress(OSError):  # the watchdog is gone: the run is ending anyway
                relay.sendall(data)
            if _STOP_BYTES.intersection(data):
                run_all()
