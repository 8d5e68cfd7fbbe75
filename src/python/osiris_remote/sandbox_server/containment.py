"""Keeping sandbox processes in line: no login-shell profiles, dying with the sandbox.

* ``without_login_shell`` rewrites the ``/bin/bash -l -c <cmd>`` the SDK sends (and
  ``/bin/bash -i -l`` for a PTY) into ``/bin/bash --noprofile --norc -c <cmd>``, so files in
  the sandbox home (``.bash_profile``, ``.profile``, ``.bashrc``...) are never run by the
  shell the server starts. ``sh -l`` loses its ``-l``. Other programs are run as sent.
* ``child_setup`` runs in each child before ``exec``: the child gets ``SIGKILL`` when the
  server thread that started it dies (Linux ``PR_SET_PDEATHSIG``), even if the server is
  killed without a chance to clean up. This reaches the started process only, not what it
  forks: best effort, on top of ``kill_trees``.
* ``kill_trees`` kills started processes with everything they started: their process
  groups and sessions, and every descendant found through ``/proc``, even one that moved
  to a new session while its parent still lives. Everything found is first stopped
  (``SIGSTOP``) and the search repeated, so nothing forks away in between. A process that
  left the session and whose parent already exited (a daemon) cannot be found: best effort.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import os
import signal
import sys
import termios
from collections.abc import Callable, Iterable
from pathlib import PurePosixPath

_PR_SET_PDEATHSIG = 1
_prctl: Callable[..., int] | None = None
if sys.platform.startswith("linux"):
    with contextlib.suppress(OSError, AttributeError):
        _prctl = ctypes.CDLL(None, use_errno=True).prctl

_SEARCH_ROUNDS = 5


def without_login_shell(argv: list[str]) -> list[str]:
    """``argv`` without the login (and, for bash, rc-file) start-up of ``bash`` or ``sh``."""
    program = PurePosixPath(argv[0]).name
    if program not in ("bash", "sh"):
        return list(argv)
    out = [argv[0], "--noprofile", "--norc"] if program == "bash" else [argv[0]]
    rest = argv[1:]
    i = 0
    while i < len(rest):
        arg = rest[i]
        if arg in ("--login", "--noprofile", "--norc"):
            i += 1
        elif arg.startswith("--") and arg != "--":
            out.append(arg)
            i += 1
        elif arg in ("-o", "+o", "-O", "+O"):
            out += rest[i : i + 2]
            i += 2
        elif len(arg) > 1 and arg[0] == "-" and arg[1:].isalpha():
            letters = arg[1:].replace("l", "")
            if letters:
                out.append("-" + letters)
            i += 1
        else:
            break  # the first operand (the command string or script): the rest is passed as is
    return out + rest[i:]


def child_setup(parent_pid: int, *, controlling_tty: bool) -> Callable[[], None]:
    """The ``preexec_fn`` of a sandbox process (runs in the child between fork and exec)."""

    def setup() -> None:  # pragma: no cover - runs in the child
        if _prctl is not None:
            _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent_pid:  # the server died before the line above
            os._exit(127)
        if controlling_tty:
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    return setup


def _process_table() -> dict[int, tuple[int, int, int]]:
    """pid -> (ppid, process group, session) of every process visible in /proc."""
    table: dict[int, tuple[int, int, int]] = {}
    try:
        names = os.listdir("/proc")
    except OSError:
        return table
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as handle:
                raw = handle.read()
        except OSError:
            continue
        fields = raw[raw.rfind(b")") + 2 :].split()
        with contextlib.suppress(IndexError, ValueError):
            table[int(name)] = (int(fields[1]), int(fields[2]), int(fields[3]))
    return table


def _members(leaders: set[int], found: set[int], table: dict[int, tuple[int, int, int]]) -> set[int]:
    """Processes in the leaders' groups or sessions, or descended from a process already found."""
    members = set(found)
    changed = True
    while changed:
        changed = False
        for pid, (ppid, group, session) in table.items():
            if pid not in members and (ppid in members or group in leaders or session in leaders):
                members.add(pid)
                changed = True
    return members


def _signal_all(pids: Iterable[int], groups: Iterable[int], sig: signal.Signals) -> None:
    for group in groups:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(group, sig)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def kill_trees(leaders: Iterable[int]) -> None:
    """SIGKILL each started process (a session and group leader), its groups and descendants."""
    roots = set(leaders)
    if not roots:
        return
    own = {os.getpid(), os.getpgrp()}
    found = set(roots)
    groups = set(roots)
    for _ in range(_SEARCH_ROUNDS):
        table = _process_table()
        members = _members(roots, found, table) - own
        groups |= {table[pid][1] for pid in members if pid in table}
        groups = {group for group in groups if group > 1} - own
        _signal_all(members, groups, signal.SIGSTOP)
        if members <= found:
            break
        found = members
    _signal_all(found, groups, signal.SIGKILL)
