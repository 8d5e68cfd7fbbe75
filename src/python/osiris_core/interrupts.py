"""Stopping a run on SIGINT or SIGTERM: quickly, rolled back, with a card that says `interrupted` (exit 130).

`stop_on_signals()` (the CLI wraps a run in it, main thread only) installs handlers for both signals. A signal
marks the run as stopping; the first one that arrives while the steps run (`interruptible()`, which the executor
enters) also raises `KeyboardInterrupt` in the main thread, as Ctrl-C does, so writers roll back as for any
failure. Outside it (the session being opened, the card being written) and after that first one, signals only
mark the stop, so the card is always written; the engine checks the mark before each step. A blocking call that holds
the main thread in native code (a database statement, a DuckDB query) would not see that exception until it
returns, so a watchdog thread, woken by the signal through `signal.set_wakeup_fd`, also calls every canceller
registered with `cancellable(...)` (PostgreSQL: `connection.cancel()`, MySQL: `KILL QUERY` from a second
connection, DuckDB: `interrupt()`). Whatever error the step then reports, `stopping()` says why it happened.

ConnectorX (the mysql/postgres/supabase extractors) holds the GIL while it waits for a batch, so no Python thread
runs until that batch arrives. For such calls, `cancellable_by_helper(action)` registers a picklable action with a
helper process (`osiris_core.stop_helper`, forked by `stop_on_signals`) that reads the wakeup fd itself and runs
the action without this process's GIL (e.g. cancel the server queries carrying a tag), then passes the signal on
to the watchdog.
"""

from __future__ import annotations

import contextlib
import itertools
import pickle
import signal
import socket
import threading
from collections.abc import Callable, Iterator
from types import FrameType

from osiris_core.errors import Interrupted
from osiris_core.stop_helper import Action, StopHelper, start

__all__ = ["Interrupted", "cancel_blocking", "cancellable", "cancellable_by_helper", "check_stop", "interruptible",
           "request_stop", "stop_on_signals", "stopping"]

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)

_lock = threading.Lock()
_stopped = threading.Event()
_signal_name: list[str] = []
_cancellers: dict[int, Callable[[], None]] = {}
_ids = itertools.count()
_armed: list[bool] = []
"""Inside `interruptible()`: a signal raises KeyboardInterrupt (once)."""
_helper: list[StopHelper] = []
"""The stop helper process while `stop_on_signals` runs (none where it could not be started)."""


def stopping() -> bool:
    """A stop was requested (a signal arrived): the run is ending, whatever error a step reports now."""
    return _stopped.is_set()


def stop_signal() -> str | None:
    """The name of the signal that stopped the run (None: no stop)."""
    return _signal_name[0] if _signal_name else None


def stop_reason() -> str:
    return f"interrupted ({_signal_name[0]})" if _signal_name else "interrupted"


def request_stop(name: str = "stop requested") -> None:
    """Mark the run as stopping and cancel every registered blocking call (from any thread)."""
    with _lock:
        if _stopped.is_set():  # the watchdog and the main thread's handler both see one signal: cancel once
            return
        _signal_name.append(name)
        _stopped.set()
        cancellers = list(_cancellers.values())
    for helper in _helper:
        helper.cancel()
    for cancel in cancellers:
        with contextlib.suppress(Exception):  # the call may have ended meanwhile; the exception still comes
            cancel()


def cancel_blocking() -> None:
    """Call every registered canceller now (from any thread), without marking a stop: e.g. a per-step timeout
    ending the native call (a DuckDB query) that keeps its step from seeing the timeout's exception."""
    with _lock:
        cancellers = list(_cancellers.values())
    for cancel in cancellers:
        with contextlib.suppress(Exception):
            cancel()


@contextlib.contextmanager
def interruptible(enabled: bool = True) -> Iterator[None]:
    """A signal raises KeyboardInterrupt in the block (once per run), else it only marks the stop; with `enabled`
    False, the block is not interrupted (e.g. the host waiting for a sandbox worker it asks to stop)."""
    _armed.append(enabled)
    try:
        if enabled and _stopped.is_set():
            raise KeyboardInterrupt
        yield
    finally:
        _armed.pop()


def check_stop() -> None:
    """Raise `Interrupted` when a stop was requested (between steps)."""
    if _stopped.is_set():
        raise Interrupted(stop_reason(), hint="the run was stopped; writes in progress were rolled back")


@contextlib.contextmanager
def cancellable(cancel: Callable[[], None]) -> Iterator[None]:
    """While the block runs, a stop request calls `cancel` (from another thread) to end a blocking call."""
    key = next(_ids)
    with _lock:
        _cancellers[key] = cancel
    try:
        if _stopped.is_set():
            raise KeyboardInterrupt
        yield
    finally:
        with _lock:
            _cancellers.pop(key, None)


@contextlib.contextmanager
def cancellable_by_helper(action: Action) -> Iterator[None]:
    """While the block runs, a stop signal makes the helper process run `action` (picklable), even while a native
    call holds this process's GIL; without a helper (outside `stop_on_signals`), a stop request calls it from the
    watchdog thread as `cancellable` does."""
    if not _helper:
        with cancellable(action):
            yield
        return
    helper = _helper[0]
    if _stopped.is_set():
        raise KeyboardInterrupt
    try:
        key = helper.add(action)
    except (OSError, pickle.PicklingError, TypeError, AttributeError):  # the helper is gone, or `action` unpicklable
        with cancellable(action):
            yield
        return
    try:
        yield
    finally:
        helper.remove(key)


def _watch(reader: socket.socket) -> None:
    while True:
        try:
            data = reader.recv(64)
        except OSError:
            return
        if not data:
            return
        names = [signal.Signals(b).name for b in data if b in {int(s) for s in STOP_SIGNALS}]
        if names:
            first = not _stopped.is_set()
            request_stop(names[0])
            if first:
                # The kernel may have delivered the signal to another thread (DuckDB's, this one): then the main
                # thread, blocked in a socket read, never sees EINTR and its handler waits for the read to end.
                # Sending it the signal itself ends that read, so the handler runs now.
                with contextlib.suppress(Exception):
                    signal.pthread_kill(threading.main_thread().ident or 0, signal.Signals[names[0]])


@contextlib.contextmanager
def stop_on_signals(*, then_ignore: bool = False) -> Iterator[None]:
    """SIGINT and SIGTERM stop what runs in the block (see the module doc); elsewhere than the main thread, no-op.

    `then_ignore`: after the block both signals are ignored instead of handled as before (a CLI whose run is over
    and whose card is printed exits with the run's code, whenever a late signal comes)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    raised = False

    def handle(signum: int, frame: FrameType | None) -> None:
        nonlocal raised
        request_stop(signal.Signals(signum).name)
        if _armed and _armed[-1] and not raised:
            raised = True
            _armed[-1] = False
            raise KeyboardInterrupt

    reader, writer = socket.socketpair()
    writer.setblocking(False)
    helper = start(reader)  # forked before the watchdog thread exists
    if helper is not None:
        _helper.append(helper)
    previous = {s: signal.signal(s, handle) for s in STOP_SIGNALS}
    previous_fd = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
    watchdog = threading.Thread(target=_watch, args=(reader if helper is None else helper.relay,),
                                name="osiris-stop-watchdog", daemon=True)
    watchdog.start()
    try:
        yield
    finally:
        signal.set_wakeup_fd(previous_fd)
        for s, handler in previous.items():
            signal.signal(s, signal.SIG_IGN if then_ignore else handler)
        with contextlib.suppress(OSError):
            writer.shutdown(socket.SHUT_RDWR)
        writer.close()
        if helper is not None:
            _helper.clear()
            helper.close()  # closes the relay: the watchdog ends
        watchdog.join(timeout=1)
        reader.close()
        with _lock:
            _stopped.clear()
            _signal_name.clear()
