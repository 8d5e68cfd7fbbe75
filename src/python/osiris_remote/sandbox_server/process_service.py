"""The envd ``process.Process`` Connect service: real host processes, sandbox-rooted.

Each started process runs ``ProcessConfig.cmd`` with ``ProcessConfig.args`` as the SDK sends
them (``commands.run`` sends ``/bin/bash -l -c <cmd>``; ``pty.create`` sends ``/bin/bash -i -l``
with a PTY), except that a bash or sh is never a login shell and bash reads no rc file
(``containment.without_login_shell``), in a new session (its own process group), with
umask 077, and:

* cwd: the requested ``cwd`` resolved as a sandbox path (default: the user's home, e.g.
  ``/home/user`` -> ``<root>/home/user``); it must exist;
* a clean environment: ``PATH``, ``HOME`` (host path of the user's home), ``USER``,
  ``LOGNAME``, ``LANG``, then the server-wide ``envs``, then the per-command ``envs``
  (later entries win). Nothing is inherited from the server process.

Output is read in chunks of up to 32 KiB and broadcast to every stream attached to the
process (the ``Start`` stream and any ``Connect`` streams); there is no replay of output
produced before a stream attached. Like envd, a ``Connect-Timeout-Ms`` on ``Start`` (the
SDK's ``timeout``) bounds the process's lifetime: when the deadline passes it is SIGKILLed
with everything it started (``containment.kill_trees``), as on ``SendSignal(SIGKILL)``, at the
end of the sandbox's lifetime and when the server stops. A client that goes away does not
kill the process. SIGTERM goes to the process group. At most ``SandboxLimits.processes``
run at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import os
import select
import signal
import struct
import subprocess
import termios
import threading
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Literal, TypeAlias

from connectrpc.code import Code
from connectrpc.errors import ConnectError
from connectrpc.request import RequestContext
from e2b.envd.process import process_pb as pb
from e2b.envd.process.process_connect import Process
from protobuf import Oneof

from .client import SANDBOX_ID
from .common import keepalive_interval, rpc_errors, user_from_headers
from .containment import child_setup, kill_trees, without_login_shell
from .paths import SandboxLayout

CHUNK_SIZE = 32 * 1024
"""Largest output chunk sent in one data event (envd uses 32 KiB for pipes)."""

DRAIN_GRACE = 0.5
"""Seconds to keep reading output after the process exited (e.g. from its descendants)."""

MAX_QUEUED_CHUNKS = 256
"""Output chunks (of up to CHUNK_SIZE) waiting for the slowest attached stream before the server stops
reading the process's output (it then blocks writing, as on a full pipe) until that stream caught up to half."""

SLOW_READER_GRACE = 60.0
"""Seconds an exited process's remaining output may wait for a slow stream before it is dropped."""

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DEFAULT_LANG = "C.UTF-8"

_DataOutput: TypeAlias = (
    Oneof[Literal["stdout"], bytes] | Oneof[Literal["stderr"], bytes] | Oneof[Literal["pty"], bytes]
)


class _FdReader:
    """Reads a non-blocking fd on the event loop and hands each chunk to a callback.

    At EOF (or ``close()``) it stops reading and, if ``owns_fd``, closes the fd.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        fd: int,
        on_data: Callable[[bytes], None],
        *,
        owns_fd: bool = True,
    ) -> None:
        self._loop = loop
        self._fd = fd
        self._on_data = on_data
        self._owns_fd = owns_fd
        self.done: asyncio.Future[None] = loop.create_future()
        self.paused = False
        os.set_blocking(fd, False)
        loop.add_reader(fd, self._readable)

    def pause(self) -> None:
        if not self.paused and not self.done.done():
            self._loop.remove_reader(self._fd)
            self.paused = True

    def resume(self) -> None:
        if self.paused and not self.done.done():
            self._loop.add_reader(self._fd, self._readable)
        self.paused = False

    def _readable(self) -> None:
        try:
            data = os.read(self._fd, CHUNK_SIZE)
        except BlockingIOError:
            return
        except OSError:  # EIO: the PTY slave side was closed
            data = b""
        if data:
            self._on_data(data)
        else:
            self.close()

    def close(self) -> None:
        if self.done.done():
            return
        if not self.paused:
            self._loop.remove_reader(self._fd)
        if self._owns_fd:
            os.close(self._fd)
        self.done.set_result(None)


def _write_all(fd: int, data: bytes, stop: threading.Event) -> None:
    """Write all of ``data`` to the non-blocking ``fd``; runs in a worker thread.

    Gives up (with BrokenPipeError) once ``stop`` is set, i.e. the process has exited.
    """
    view = memoryview(data)
    while view:
        if stop.is_set():
            raise BrokenPipeError(errno.EPIPE, "the process has exited")
        try:
            written = os.write(fd, view)
        except BlockingIOError:
            select.select([], [fd], [], 0.2)
            continue
        view = view[written:]


def _exit_details(returncode: int) -> tuple[int, bool, str, str | None]:
    """(exit_code, exited, status, error) the way envd (Go's ProcessState) reports them."""
    if returncode >= 0:
        status = f"exit status {returncode}"
        return returncode, True, status, (status if returncode else None)
    try:
        name = (signal.strsignal(-returncode) or f"signal {-returncode}").lower()
    except ValueError:
        name = f"signal {-returncode}"
    status = f"signal: {name}"
    return -1, False, status, status


def _set_winsize(fd: int, size: pb.PTY.Size | None) -> None:
    rows = size.rows if size is not None and size.rows else 24
    cols = size.cols if size is not None and size.cols else 80
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def _data_event(kind: Literal["stdout", "stderr", "pty"], chunk: bytes) -> pb.ProcessEvent:
    output: _DataOutput
    if kind == "stdout":
        stdout: Oneof[Literal["stdout"], bytes] = Oneof("stdout", chunk)
        output = stdout
    elif kind == "stderr":
        stderr: Oneof[Literal["stderr"], bytes] = Oneof("stderr", chunk)
        output = stderr
    else:
        pty: Oneof[Literal["pty"], bytes] = Oneof("pty", chunk)
        output = pty
    data: Oneof[Literal["data"], pb.ProcessEvent.DataEvent] = Oneof(
        "data", pb.ProcessEvent.DataEvent(output=output)
    )
    return pb.ProcessEvent(event=data)


def _end_event(end: pb.ProcessEvent.EndEvent) -> pb.ProcessEvent:
    event: Oneof[Literal["end"], pb.ProcessEvent.EndEvent] = Oneof("end", end)
    return pb.ProcessEvent(event=event)


def _keepalive_event() -> pb.ProcessEvent:
    event: Oneof[Literal["keepalive"], pb.ProcessEvent.KeepAlive] = Oneof(
        "keepalive", pb.ProcessEvent.KeepAlive()
    )
    return pb.ProcessEvent(event=event)


class ManagedProcess:
    """One process started through ``Start``, with its output subscribers."""

    def __init__(
        self,
        popen: subprocess.Popen[bytes],
        config: pb.ProcessConfig,
        tag: str | None,
        stdin_fd: int | None,
        pty_fd: int | None,
    ) -> None:
        self.popen = popen
        self.pid = popen.pid
        self.config = config
        self.tag = tag
        self.stdin_fd = stdin_fd
        self.pty_fd = pty_fd
        self.readers: list[_FdReader] = []
        self.deadline: asyncio.TimerHandle | None = None
        self._subscribers: set[asyncio.Queue[pb.ProcessEvent]] = set()
        self.input_lock = asyncio.Lock()
        self.exited = threading.Event()

    # -- events ------------------------------------------------------------------------------
    def subscribe(self) -> asyncio.Queue[pb.ProcessEvent]:
        queue: asyncio.Queue[pb.ProcessEvent] = asyncio.Queue()
        self._subscribers.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[pb.ProcessEvent]) -> None:
        self._subscribers.discard(queue)
        self.regulate()

    def broadcast(self, event: pb.ProcessEvent) -> None:
        for queue in self._subscribers:
            queue.put_nowait(event)
        self.regulate()

    def regulate(self) -> None:
        """Pause reading output while a stream lags MAX_QUEUED_CHUNKS behind; resume at half."""
        backlog = max((queue.qsize() for queue in self._subscribers), default=0)
        if backlog >= MAX_QUEUED_CHUNKS:
            for reader in self.readers:
                reader.pause()
        elif backlog <= MAX_QUEUED_CHUNKS // 2:
            for reader in self.readers:
                reader.resume()

    @property
    def throttled(self) -> bool:
        return any(reader.paused for reader in self.readers)

    def output(self, kind: Literal["stdout", "stderr", "pty"]) -> Callable[[bytes], None]:
        def emit(chunk: bytes) -> None:
            self.broadcast(_data_event(kind, chunk))

        return emit

    def start_event(self) -> pb.ProcessEvent:
        start: Oneof[Literal["start"], pb.ProcessEvent.StartEvent] = Oneof(
            "start", pb.ProcessEvent.StartEvent(pid=self.pid)
        )
        return pb.ProcessEvent(event=start)

    # -- control -----------------------------------------------------------------------------
    def signal(self, sig: signal.Signals) -> None:
        if sig == signal.SIGKILL:
            self.kill()
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, sig)  # the process leads its own session / process group

    def kill(self) -> None:
        """SIGKILL the process with everything it started (unless it already ended)."""
        if self.popen.returncode is None:
            kill_trees([self.pid])

    async def write_input(self, process_input: pb.ProcessInput | None) -> None:
        match process_input.input if process_input is not None else None:
            case Oneof(field="stdin", value=data):
                fd = self.stdin_fd
                if fd is None:
                    raise ConnectError(Code.FAILED_PRECONDITION, "stdin not enabled or closed")
            case Oneof(field="pty", value=data):
                fd = self.pty_fd
                if fd is None:
                    raise ConnectError(Code.FAILED_PRECONDITION, "tty not assigned to process")
            case _:
                return
        async with self.input_lock:
            if fd not in (self.stdin_fd, self.pty_fd):
                raise ConnectError(Code.FAILED_PRECONDITION, "input is closed")
            try:
                await asyncio.to_thread(_write_all, fd, bytes(data), self.exited)
            except OSError as e:
                raise ConnectError(Code.FAILED_PRECONDITION, f"error writing input: {e}") from e

    async def close_stdin(self) -> None:
        if self.pty_fd is not None:
            raise ConnectError(Code.FAILED_PRECONDITION, "cannot close stdin for PTY process, send Ctrl+D")
        async with self.input_lock:
            if self.stdin_fd is not None:
                os.close(self.stdin_fd)
                self.stdin_fd = None

    def resize(self, size: pb.PTY.Size | None) -> None:
        if self.pty_fd is None:
            raise ConnectError(Code.FAILED_PRECONDITION, "tty not assigned to process")
        _set_winsize(self.pty_fd, size)


class ProcessManager:
    """Starts processes and keeps the table of running ones (pid -> ManagedProcess)."""

    def __init__(
        self, layout: SandboxLayout, envs: Mapping[str, str], path_env: str, *, max_processes: int = 256
    ) -> None:
        self._layout = layout
        self._envs = dict(envs)
        self._path_env = path_env
        self._max_processes = max_processes
        self._processes: dict[int, ManagedProcess] = {}
        self._finishers: set[asyncio.Task[None]] = set()
        self.end_reason: str | None = None
        """Set when the sandbox ended (lifetime over, server stopping): streams then end with UNAVAILABLE."""

    @property
    def processes(self) -> list[ManagedProcess]:
        return list(self._processes.values())

    @property
    def user(self) -> str:
        """The sandbox's default user (``SandboxLayout.user``)."""
        return self._layout.user

    def find(self, selector: pb.ProcessSelector | None) -> ManagedProcess:
        match selector.selector if selector is not None else None:
            case Oneof(field="pid", value=pid):
                found = self._processes.get(int(pid))
                if found is not None:
                    return found
                raise ConnectError(Code.NOT_FOUND, f"process with pid {pid} not found")
            case Oneof(field="tag", value=tag):
                for proc in self._processes.values():
                    if proc.tag == tag:
                        return proc
                raise ConnectError(Code.NOT_FOUND, f"process with tag {tag} not found")
            case _:
                raise ConnectError(Code.INVALID_ARGUMENT, "invalid process selector")

    def _environment(self, username: str, config: pb.ProcessConfig) -> dict[str, str]:
        home = self._layout.ensure_home(username)
        env = {
            "PATH": self._path_env,
            "HOME": os.fspath(home),
            "USER": username,
            "LOGNAME": username,
            "LANG": DEFAULT_LANG,
        }
        env.update(self._envs)
        env.update(config.envs)
        return env

    def start(
        self, request: pb.StartRequest, username: str
    ) -> tuple[ManagedProcess, asyncio.Queue[pb.ProcessEvent]]:
        """Spawn the requested process; return it and a queue already subscribed to it."""
        loop = asyncio.get_running_loop()
        config = request.process or pb.ProcessConfig()
        if not config.cmd:
            raise ConnectError(Code.INVALID_ARGUMENT, "process cmd is required")
        with rpc_errors("error resolving cwd"):
            env = self._environment(username, config)
            vcwd = self._layout.resolve(config.cwd if config.has_field("cwd") else "", username)
            cwd = self._layout.to_host(vcwd)
        if not cwd.is_dir():
            raise ConnectError(Code.INVALID_ARGUMENT, f"cwd '{vcwd}' does not exist")
        if len(self._processes) >= self._max_processes:
            raise ConnectError(
                Code.RESOURCE_EXHAUSTED, f"more than {self._max_processes} processes running; wait or kill some"
            )
        argv = without_login_shell([config.cmd, *config.args])
        use_pty = request.has_field("pty") and request.pty is not None
        # envd keeps stdin open unless the request explicitly disables it.
        want_stdin = not request.has_field("stdin") or request.stdin
        parent_fds: list[int] = []
        child_fds: list[int] = []
        try:
            if use_pty:
                master, slave = os.openpty()
                parent_fds.append(master)
                child_fds.append(slave)
                _set_winsize(master, request.pty.size if request.pty is not None else None)
                popen = subprocess.Popen(
                    argv,
                    stdin=slave,
                    stdout=slave,
                    stderr=slave,
                    cwd=cwd,
                    env=env,
                    start_new_session=True,
                    umask=0o077,
                    preexec_fn=child_setup(os.getpid(), controlling_tty=True),  # noqa: PLW1509
                )
            else:
                out_r, out_w = os.pipe()
                err_r, err_w = os.pipe()
                parent_fds += [out_r, err_r]
                child_fds += [out_w, err_w]
                stdin_arg: int = subprocess.DEVNULL
                if want_stdin:
                    in_r, in_w = os.pipe()
                    os.set_blocking(in_w, False)
                    parent_fds.append(in_w)
                    child_fds.append(in_r)
                    stdin_arg = in_r
                popen = subprocess.Popen(
                    argv,
                    stdin=stdin_arg,
                    stdout=out_w,
                    stderr=err_w,
                    cwd=cwd,
                    env=env,
                    start_new_session=True,
                    umask=0o077,
                    preexec_fn=child_setup(os.getpid(), controlling_tty=False),  # noqa: PLW1509
                )
        except OSError as e:
            for fd in parent_fds:
                os.close(fd)
            raise ConnectError(
                Code.INVALID_ARGUMENT, f"error starting process '{' '.join(argv)}': {e}"
            ) from e
        finally:
            for fd in child_fds:
                os.close(fd)

        tag = request.tag if request.has_field("tag") else None
        if use_pty:
            proc = ManagedProcess(popen, config, tag, stdin_fd=None, pty_fd=parent_fds[0])
            # The master stays open for input until _finish closes it.
            proc.readers.append(_FdReader(loop, parent_fds[0], proc.output("pty"), owns_fd=False))
        else:
            stdin_fd = parent_fds[2] if want_stdin else None
            proc = ManagedProcess(popen, config, tag, stdin_fd=stdin_fd, pty_fd=None)
            proc.readers.append(_FdReader(loop, parent_fds[0], proc.output("stdout")))
            proc.readers.append(_FdReader(loop, parent_fds[1], proc.output("stderr")))
        self._processes[proc.pid] = proc
        queue = proc.subscribe()
        exited: asyncio.Future[None] = loop.create_future()
        threading.Thread(
            target=_wait_in_thread, args=(loop, popen, exited), name=f"sandbox-wait-{proc.pid}", daemon=True
        ).start()
        self._finishers.add(task := loop.create_task(self._finish(proc, exited)))
        task.add_done_callback(self._finishers.discard)
        return proc, queue

    async def _finish(self, proc: ManagedProcess, exited: asyncio.Future[None]) -> None:
        await exited
        proc.exited.set()
        # Output still buffered in the pipes is read now; descendants that keep the pipe
        # open (e.g. `cmd &`) do not keep the command alive (envd closes the pipes too).
        # A stream slow to take the output of a process that exited by itself gets longer,
        # up to SLOW_READER_GRACE (not one that was killed, nor when the sandbox ends).
        loop = asyncio.get_running_loop()
        give_up = loop.time() + SLOW_READER_GRACE
        while pending := [reader.done for reader in proc.readers if not reader.done.done()]:
            await asyncio.wait(pending, timeout=DRAIN_GRACE)
            patient = proc.throttled and proc.popen.returncode >= 0 and self.end_reason is None
            if not patient or loop.time() >= give_up:
                break
        for reader in proc.readers:
            reader.close()
        if proc.deadline is not None:
            proc.deadline.cancel()
        async with proc.input_lock:  # a pending write gives up once `exited` is set
            for fd in (proc.stdin_fd, proc.pty_fd):
                if fd is not None:
                    os.close(fd)
            proc.stdin_fd = proc.pty_fd = None
        exit_code, exited_normally, status, error = _exit_details(proc.popen.returncode)
        end = pb.ProcessEvent.EndEvent(exit_code=exit_code, exited=exited_normally, status=status)
        if error is not None:
            end.error = error
        self._processes.pop(proc.pid, None)
        proc.broadcast(_end_event(end))

    def kill_all(self) -> None:
        """SIGKILL every running process with everything it started."""
        kill_trees(proc.pid for proc in list(self._processes.values()) if proc.popen.returncode is None)


def _wait_in_thread(
    loop: asyncio.AbstractEventLoop, popen: subprocess.Popen[bytes], fut: asyncio.Future[None]
) -> None:
    popen.wait()

    def resolve() -> None:
        if not fut.done():
            fut.set_result(None)

    with contextlib.suppress(RuntimeError):  # the loop is already closed
        loop.call_soon_threadsafe(resolve)


async def _stream_events(
    proc: ManagedProcess, queue: asyncio.Queue[pb.ProcessEvent], keepalive: float | None, manager: ProcessManager
) -> AsyncIterator[pb.ProcessEvent]:
    """Events for one attached stream, with keepalives while idle, until the end event.

    A process killed because the sandbox ended has no end event: the stream fails the way
    E2B's does when a sandbox goes away (UNAVAILABLE "... was not found").
    """
    while True:
        try:
            event = await asyncio.wait_for(queue.get(), keepalive)
        except TimeoutError:
            yield _keepalive_event()
            continue
        proc.regulate()
        if isinstance(event.event, Oneof) and event.event.field == "end":
            if manager.end_reason is not None:
                raise ConnectError(Code.UNAVAILABLE, f"The sandbox {SANDBOX_ID} was not found: {manager.end_reason}")
            yield event
            return
        yield event


_SIGNALS = {pb.Signal.SIGKILL: signal.SIGKILL, pb.Signal.SIGTERM: signal.SIGTERM}


class ProcessService(Process):
    """Implements every method of ``process.Process`` (see process_connect.py)."""

    def __init__(self, manager: ProcessManager) -> None:
        self._manager = manager

    async def list(
        self, request: pb.ListRequest, ctx: RequestContext[pb.ListRequest, pb.ListResponse]
    ) -> pb.ListResponse:
        # As envd does: each command's config as started, its `envs` included (so never pass a secret that way).
        return pb.ListResponse(
            processes=[pb.ProcessInfo(config=p.config, pid=p.pid, tag=p.tag) for p in self._manager.processes]
        )

    async def start(
        self, request: pb.StartRequest, ctx: RequestContext[pb.StartRequest, pb.StartResponse]
    ) -> AsyncIterator[pb.StartResponse]:
        proc, queue = self._manager.start(request, user_from_headers(ctx.request_headers, self._manager.user))
        remaining_ms = ctx.timeout_ms
        if remaining_ms is not None:
            loop = asyncio.get_running_loop()
            proc.deadline = loop.call_later(max(remaining_ms, 0.0) / 1000.0, proc.signal, signal.SIGKILL)
        try:
            yield pb.StartResponse(event=proc.start_event())
            async for event in _stream_events(proc, queue, keepalive_interval(ctx), self._manager):
                yield pb.StartResponse(event=event)
        finally:
            proc.unsubscribe(queue)

    async def connect(
        self, request: pb.ConnectRequest, ctx: RequestContext[pb.ConnectRequest, pb.ConnectResponse]
    ) -> AsyncIterator[pb.ConnectResponse]:
        proc = self._manager.find(request.process)
        queue = proc.subscribe()
        try:
            yield pb.ConnectResponse(event=proc.start_event())
            async for event in _stream_events(proc, queue, keepalive_interval(ctx), self._manager):
                yield pb.ConnectResponse(event=event)
        finally:
            proc.unsubscribe(queue)

    async def update(
        self, request: pb.UpdateRequest, ctx: RequestContext[pb.UpdateRequest, pb.UpdateResponse]
    ) -> pb.UpdateResponse:
        proc = self._manager.find(request.process)
        if request.pty is not None:
            proc.resize(request.pty.size)
        return pb.UpdateResponse()

    async def stream_input(
        self,
        request: AsyncIterator[pb.StreamInputRequest],
        ctx: RequestContext[pb.StreamInputRequest, pb.StreamInputResponse],
    ) -> pb.StreamInputResponse:
        proc: ManagedProcess | None = None
        async for message in request:
            event = message.event.value if message.event is not None else None
            if isinstance(event, pb.StreamInputRequest.StartEvent):
                proc = self._manager.find(event.process)
            elif isinstance(event, pb.StreamInputRequest.DataEvent):
                if proc is None:
                    raise ConnectError(
                        Code.FAILED_PRECONDITION, "input stream did not start with a start event"
                    )
                await proc.write_input(event.input)
        return pb.StreamInputResponse()

    async def send_input(
        self, request: pb.SendInputRequest, ctx: RequestContext[pb.SendInputRequest, pb.SendInputResponse]
    ) -> pb.SendInputResponse:
        proc = self._manager.find(request.process)
        await proc.write_input(request.input)
        return pb.SendInputResponse()

    async def send_signal(
        self, request: pb.SendSignalRequest, ctx: RequestContext[pb.SendSignalRequest, pb.SendSignalResponse]
    ) -> pb.SendSignalResponse:
        proc = self._manager.find(request.process)
        sig = _SIGNALS.get(request.signal)
        if sig is None:
            raise ConnectError(Code.INVALID_ARGUMENT, f"invalid signal: {request.signal}")
        proc.signal(sig)
        return pb.SendSignalResponse()

    async def close_stdin(
        self, request: pb.CloseStdinRequest, ctx: RequestContext[pb.CloseStdinRequest, pb.CloseStdinResponse]
    ) -> pb.CloseStdinResponse:
        proc = self._manager.find(request.process)
        await proc.close_stdin()
        return pb.CloseStdinResponse()
