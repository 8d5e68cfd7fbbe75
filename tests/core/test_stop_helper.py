"""The stop helper process (`osiris_core.stop_helper`): on a stop signal it runs the actions registered with
`cancellable_by_helper` in its own process, and the signal still reaches this process's handler through it."""

from __future__ import annotations

import os
import select
import signal
import threading
from functools import partial

import pytest

from osiris_core.interrupts import cancellable_by_helper, interruptible, stop_on_signals, stop_signal, stopping


def write_to(fd: int, data: bytes) -> None:
    """The action: visible to the test, though it runs in the helper process."""
    os.write(fd, data)


def signal_self(sig: signal.Signals) -> None:
    """Send `sig` to this process and wait (the handler raises KeyboardInterrupt in the wait)."""
    os.kill(os.getpid(), sig)
    select.select([], [], [], 5)


def test_a_signal_runs_the_registered_action_in_the_helper() -> None:
    read, write = os.pipe()
    try:
        with stop_on_signals():
            with interruptible(), cancellable_by_helper(partial(write_to, write, b"cancelled")), \
                    pytest.raises(KeyboardInterrupt):
                signal_self(signal.SIGTERM)
            assert stopping() and stop_signal() == "SIGTERM"
            ready, _, _ = select.select([read], [], [], 10)
            assert ready and os.read(read, 64) == b"cancelled"
        assert not stopping()
    finally:
        os.close(read)
        os.close(write)


def test_an_action_whose_block_ended_is_not_run() -> None:
    read, write = os.pipe()
    try:
        with stop_on_signals():
            with cancellable_by_helper(partial(write_to, write, b"late")):
                pass
            with interruptible(), cancellable_by_helper(partial(write_to, write, b"now")), \
                    pytest.raises(KeyboardInterrupt):
                signal_self(signal.SIGINT)
            ready, _, _ = select.select([read], [], [], 10)
            assert ready and os.read(read, 64) == b"now"
    finally:
        os.close(read)
        os.close(write)


def test_an_action_the_helper_cannot_take_runs_in_this_process() -> None:
    called = threading.Event()
    with stop_on_signals():
        with interruptible(), cancellable_by_helper(lambda: called.set()), pytest.raises(KeyboardInterrupt):
            signal_self(signal.SIGINT)  # a lambda does not pickle: the watchdog or the handler calls it
        assert called.wait(10)
