"""The local sandbox server, driven by the real ``e2b`` SDK in debug mode (no mocks).

The SDK objects carry the server's access token (``LocalSandboxServer.sandbox()``); the attacks
on the server without it are in test_sandbox_server_security.py."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from e2b import AuthenticationException, CommandExitException, InvalidArgumentException, Sandbox, TimeoutException
from e2b.exceptions import NotFoundException
from e2b.sandbox.filesystem.filesystem import FileType, WriteEntry

from osiris_remote.sandbox_server import LocalSandboxServer, connect_async_sandbox, connect_sandbox


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalSandboxServer]:
    with LocalSandboxServer(tmp_path_factory.mktemp("sandbox")) as srv:
        yield srv


@pytest.fixture(scope="module")
def sandbox(server: LocalSandboxServer) -> Sandbox:
    return server.sandbox()


@pytest.fixture()
def home(server: LocalSandboxServer) -> Path:
    return server.app.layout.root / "home" / "user"


def test_server_binds_a_free_port_not_the_envd_default(server: LocalSandboxServer) -> None:
    assert server.port not in (0, 49983)
    assert server.url == f"http://127.0.0.1:{server.port}"
    assert httpx.get(f"{server.url}/health").status_code == 204


def test_server_connections_send_without_waiting_for_acks(server: LocalSandboxServer) -> None:
    """TCP_NODELAY on every accepted connection: a response written as headers then body must not wait for the
    client's delayed ACK (that cost ~40 ms per SDK request, most of a local sandbox run's upload)."""
    with socket.create_connection(("127.0.0.1", server.port)) as client:
        client.sendall(f"GET /health HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n\r\n".encode())
        assert client.recv(4096).startswith(b"HTTP/1.1 204")
        connections = list(server._server.server_state.connections)
        assert connections
        for connection in connections:
            sock = connection.transport.get_extra_info("socket")
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0


def test_sandbox_is_created_in_debug_mode(sandbox: Sandbox, server: LocalSandboxServer) -> None:
    assert sandbox.sandbox_id == "debug_sandbox_id"
    assert sandbox.envd_api_url == server.url
    assert sandbox.is_running()


def test_write_then_read_text(sandbox: Sandbox, home: Path) -> None:
    info = sandbox.files.write("/home/user/notes/hello.txt", "héllo wörld\n")
    assert info.path == "/home/user/notes/hello.txt"
    assert info.name == "hello.txt"
    assert info.type == FileType.FILE
    assert sandbox.files.read("/home/user/notes/hello.txt") == "héllo wörld\n"
    assert (home / "notes" / "hello.txt").read_text(encoding="utf-8") == "héllo wörld\n"


def test_write_then_read_bytes(sandbox: Sandbox) -> None:
    data = bytes(range(256)) * 4
    sandbox.files.write("/home/user/blob.bin", data)
    assert sandbox.files.read("/home/user/blob.bin", format="bytes") == bytearray(data)


def test_large_file_round_trip(sandbox: Sandbox, home: Path) -> None:
    data = os.urandom(5 * 1024 * 1024 + 123)
    sandbox.files.write("big/data.bin", data)  # relative to /home/user
    assert (home / "big" / "data.bin").read_bytes() == data
    assert bytes(sandbox.files.read("/home/user/big/data.bin", format="bytes")) == data
    streamed = b"".join(sandbox.files.read("/home/user/big/data.bin", format="stream"))
    assert streamed == data


def test_octet_stream_and_gzip_transfers(sandbox: Sandbox) -> None:
    payload = b"0123456789" * 50_000
    sandbox.files.write("/home/user/gz.bin", payload, gzip=True)
    assert bytes(sandbox.files.read("/home/user/gz.bin", format="bytes", gzip=True)) == payload
    sandbox.files.write("/home/user/raw.bin", payload, use_octet_stream=True)
    assert bytes(sandbox.files.read("/home/user/raw.bin", format="bytes")) == payload


def test_write_files_multipart_with_several_entries(sandbox: Sandbox) -> None:
    infos = sandbox.files.write_files(
        [
            WriteEntry(path="/home/user/multi/a.txt", data="A"),
            WriteEntry(path="/home/user/multi/b.txt", data=b"B"),
        ]
    )
    assert [i.path for i in infos] == ["/home/user/multi/a.txt", "/home/user/multi/b.txt"]
    assert sandbox.files.read("/home/user/multi/a.txt") == "A"
    assert sandbox.files.read("/home/user/multi/b.txt") == "B"


def test_list_exists_make_dir_rename_remove(sandbox: Sandbox) -> None:
    assert sandbox.files.make_dir("/home/user/listing/sub") is True
    assert sandbox.files.make_dir("/home/user/listing/sub") is False
    sandbox.files.write("/home/user/listing/one.txt", "1")
    sandbox.files.write("/home/user/listing/sub/two.txt", "22")

    top = sandbox.files.list("/home/user/listing")
    assert {(e.name, e.type) for e in top} == {("one.txt", FileType.FILE), ("sub", FileType.DIR)}
    deep = sandbox.files.list("/home/user/listing", depth=2)
    assert "/home/user/listing/sub/two.txt" in {e.path for e in deep}
    two = next(e for e in deep if e.name == "two.txt")
    assert two.size == 2

    assert sandbox.files.exists("/home/user/listing/one.txt")
    assert not sandbox.files.exists("/home/user/listing/missing.txt")
    info = sandbox.files.get_info("/home/user/listing/sub")
    assert info.type == FileType.DIR

    moved = sandbox.files.rename("/home/user/listing/one.txt", "/home/user/listing/uno.txt")
    assert moved.path == "/home/user/listing/uno.txt"
    assert not sandbox.files.exists("/home/user/listing/one.txt")

    sandbox.files.remove("/home/user/listing/uno.txt")
    assert not sandbox.files.exists("/home/user/listing/uno.txt")
    sandbox.files.remove("/home/user/listing")
    assert not sandbox.files.exists("/home/user/listing/sub/two.txt")
    assert not sandbox.files.exists("/home/user/listing")


def test_missing_files_raise_not_found(sandbox: Sandbox) -> None:
    with pytest.raises(NotFoundException):
        sandbox.files.read("/home/user/does-not-exist.txt")
    with pytest.raises(NotFoundException):
        sandbox.files.list("/home/user/no-such-dir")


def test_paths_cannot_escape_the_sandbox_root(sandbox: Sandbox, server: LocalSandboxServer) -> None:
    with pytest.raises(InvalidArgumentException):
        sandbox.files.read("/../../etc/hostname")
    with pytest.raises(InvalidArgumentException):
        sandbox.files.write("../../../escaped.txt", "x")
    with pytest.raises(InvalidArgumentException):
        sandbox.files.list("/home/../..")
    assert not (server.app.layout.root.parent / "escaped.txt").exists()
    # A symlink pointing outside the root (made by a command) cannot be followed.
    sandbox.commands.run("ln -sfn /etc escape")
    with pytest.raises(InvalidArgumentException):
        sandbox.files.read("/home/user/escape/hostname")
    with pytest.raises(InvalidArgumentException):
        sandbox.files.write("/home/user/escape/evil.conf", "x")
    # ... but the link itself can be inspected and removed.
    assert sandbox.files.get_info("/home/user/escape").type == FileType.SYMLINK
    sandbox.files.remove("/home/user/escape")
    assert not sandbox.files.exists("/home/user/escape")


def test_echo(sandbox: Sandbox) -> None:
    result = sandbox.commands.run("echo hi")
    assert result.stdout == "hi\n"
    assert result.stderr == ""
    assert result.exit_code == 0


def test_stdout_and_stderr_callbacks_stream_while_running(sandbox: Sandbox) -> None:
    seen: list[tuple[float, str]] = []
    errors: list[str] = []
    start = time.monotonic()
    result = sandbox.commands.run(
        "for i in 1 2 3; do echo line$i; sleep 0.5; done; echo oops >&2",
        on_stdout=lambda chunk: seen.append((time.monotonic() - start, chunk)),
        on_stderr=errors.append,
    )
    assert "".join(chunk for _, chunk in seen) == "line1\nline2\nline3\n"
    assert result.stdout == "line1\nline2\nline3\n"
    assert len(seen) >= 2
    # Chunks arrive as they are printed (line3 is printed ~1 s after line1), not at the end.
    assert seen[-1][0] - seen[0][0] >= 0.5
    assert "".join(errors) == "oops\n"


def test_non_zero_exit_raises_with_exit_code(sandbox: Sandbox) -> None:
    with pytest.raises(CommandExitException) as info:
        sandbox.commands.run("echo partial; echo bad >&2; exit 7")
    assert info.value.exit_code == 7
    assert info.value.stdout == "partial\n"
    assert info.value.stderr == "bad\n"
    assert info.value.error == "exit status 7"


def test_per_command_envs_visible_and_host_env_hidden(
    sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OSIRIS_HOST_ONLY_SECRET", "must-not-leak")
    result = sandbox.commands.run(
        'echo "a=$MY_VAR"; echo "b=${OSIRIS_HOST_ONLY_SECRET:-unset}"; env',
        envs={"MY_VAR": "from-command"},
    )
    lines = result.stdout.splitlines()
    assert lines[0] == "a=from-command"
    assert lines[1] == "b=unset"
    names = {line.split("=", 1)[0] for line in lines[2:] if "=" in line}
    assert "OSIRIS_HOST_ONLY_SECRET" not in names
    assert names <= {"MY_VAR", "PATH", "HOME", "USER", "LOGNAME", "LANG", "PWD", "SHLVL", "_", "OLDPWD"}


def test_command_cwd_is_the_sandbox_home(sandbox: Sandbox, home: Path) -> None:
    sandbox.files.write("/home/user/cwd-marker.txt", "marker")
    result = sandbox.commands.run('pwd; echo "$HOME"; cat cwd-marker.txt')
    assert result.stdout.splitlines() == [str(home), str(home), "marker"]
    sandbox.files.make_dir("/home/user/work")
    assert sandbox.commands.run("pwd", cwd="/home/user/work").stdout == f"{home}/work\n"
    with pytest.raises(InvalidArgumentException):
        sandbox.commands.run("pwd", cwd="/home/user/no-such-dir")


def test_files_written_by_commands_are_readable(sandbox: Sandbox) -> None:
    sandbox.commands.run("mkdir -p out && printf 'x,y\\n1,2\\n' > out/result.csv")
    assert sandbox.files.read("/home/user/out/result.csv") == "x,y\n1,2\n"


def test_background_command_can_be_killed(sandbox: Sandbox) -> None:
    handle = sandbox.commands.run("sleep 60", background=True)
    assert handle.pid in {p.pid for p in sandbox.commands.list()}
    assert handle.kill() is True
    with pytest.raises(CommandExitException) as info:
        handle.wait()
    assert info.value.exit_code == -1
    assert info.value.error == "signal: killed"
    assert handle.pid not in {p.pid for p in sandbox.commands.list()}
    assert sandbox.commands.kill(handle.pid) is False


def test_kill_stops_the_whole_process_group(sandbox: Sandbox) -> None:
    handle = sandbox.commands.run("sleep 61 & sleep 62; wait", background=True)
    time.sleep(0.3)
    handle.kill()
    with pytest.raises(CommandExitException):
        handle.wait()
    leftover = sandbox.commands.run("pgrep -f 'sleep 6[12]' || true").stdout
    assert leftover.strip() == ""


def test_stdin_and_reconnect(sandbox: Sandbox) -> None:
    handle = sandbox.commands.run("cat", background=True, stdin=True)
    handle.send_stdin("hello ")
    first = next(stdout for stdout, _, _ in handle if stdout)  # cat echoed it
    assert first == "hello "
    handle.disconnect()
    again = sandbox.commands.connect(handle.pid)
    sandbox.commands.send_stdin(handle.pid, "stdin\n")
    sandbox.commands.close_stdin(handle.pid)
    result = again.wait()
    assert result.exit_code == 0
    assert result.stdout == "stdin\n"  # output produced before the reconnect is not replayed


def test_stream_input(sandbox: Sandbox) -> None:
    handle = sandbox.commands.run("cat", background=True, stdin=True)
    sandbox.commands.stream_input(handle.pid, ["a", b"b", "c\n"])
    sandbox.commands.close_stdin(handle.pid)
    assert handle.wait().stdout == "abc\n"


def test_command_timeout_kills_the_process(sandbox: Sandbox) -> None:
    with pytest.raises(TimeoutException):
        sandbox.commands.run("sleep 30", timeout=1)
    deadline = time.monotonic() + 5
    while any("sleep 30" in " ".join(p.args) for p in sandbox.commands.list()):
        assert time.monotonic() < deadline, "timed-out command still running"
        time.sleep(0.1)


def test_command_as_root_user_uses_root_home(sandbox: Sandbox, server: LocalSandboxServer) -> None:
    result = sandbox.commands.run("pwd; echo $USER", user="root")
    assert result.stdout.splitlines() == [str(server.app.layout.root / "root"), "root"]
    sandbox.files.write("~/root-file.txt", "r", user="root")
    assert (server.app.layout.root / "root" / "root-file.txt").read_text() == "r"


def test_pty_session(sandbox: Sandbox) -> None:
    from e2b.sandbox.commands.command_handle import PtySize

    output: list[bytes] = []
    handle = sandbox.pty.create(PtySize(rows=24, cols=80), timeout=20)
    sandbox.pty.resize(handle.pid, PtySize(rows=30, cols=100))
    sandbox.pty.send_stdin(handle.pid, b"stty size; exit 0\n")
    handle.wait(on_pty=output.append)
    assert b"30 100" in b"".join(output)


def test_watch_dir_reports_changes(sandbox: Sandbox) -> None:
    sandbox.files.make_dir("/home/user/watched")
    watcher = sandbox.files.watch_dir("/home/user/watched")
    sandbox.files.write("/home/user/watched/new.txt", "n")
    events = watcher.get_new_events()
    assert [(e.name, e.type.value) for e in events] == [("new.txt", "create")]
    sandbox.files.remove("/home/user/watched/new.txt")
    assert [(e.name, e.type.value) for e in watcher.get_new_events()] == [("new.txt", "remove")]
    watcher.stop()


def test_server_wide_envs(tmp_path: Path) -> None:
    with LocalSandboxServer(tmp_path, envs={"GLOBAL_VAR": "g", "OVERRIDE": "server"}) as srv:
        box = srv.sandbox()
        out = box.commands.run('echo "$GLOBAL_VAR $OVERRIDE"', envs={"OVERRIDE": "command"}).stdout
        assert out == "g command\n"
        handle = box.commands.run("sleep 60", background=True)
    # Stopping the server kills what is still running.
    deadline = time.monotonic() + 5
    while True:
        try:
            os.kill(handle.pid, 0)
        except ProcessLookupError:
            break
        assert time.monotonic() < deadline, "sandbox process survived server shutdown"
        time.sleep(0.05)


def test_the_environment_configured_sdk_has_no_token_and_is_refused(
    server: LocalSandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("E2B_DEBUG", "true")
    monkeypatch.setenv("E2B_SANDBOX_URL", server.url)
    monkeypatch.delenv("E2B_API_KEY", raising=False)
    box = Sandbox.create()
    with pytest.raises(AuthenticationException):
        box.commands.run("echo via-env")
    with pytest.raises(AuthenticationException):
        Sandbox.connect("any-id").files.exists("/home/user")
    assert connect_sandbox(server.url, server.token).commands.run("echo with-token").stdout == "with-token\n"


def test_async_sdk(server: LocalSandboxServer) -> None:
    async def scenario() -> tuple[str, str]:
        box = connect_async_sandbox(server.url, server.token)
        await box.files.write("/home/user/async.txt", "async data")
        result = await box.commands.run("cat async.txt")
        return result.stdout, await box.files.read("/home/user/async.txt")

    assert asyncio.run(scenario()) == ("async data", "async data")


def test_serve_in_the_foreground(tmp_path: Path) -> None:
    code = (
        "import sys; from pathlib import Path; from osiris_remote.sandbox_server import serve; "
        "serve(Path(sys.argv[1]), '127.0.0.1', 0, log_level='warning')"
    )
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(tmp_path)], stderr=subprocess.PIPE, text=True, env=env
    )
    try:
        assert proc.stderr is not None
        banner = proc.stderr.readline()
        match = re.search(r"envd at (http://\S+) .*access token in (\S+);", banner)
        assert match, banner
        token_file = Path(match.group(2))
        token = token_file.read_text().strip()
        assert token not in banner and token_file.stat().st_mode & 0o777 == 0o600
        box = connect_sandbox(match.group(1), token)
        box.files.write("/home/user/fg.txt", "foreground")
        assert box.commands.run("cat fg.txt").stdout == "foreground"
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=15) == 0
    assert (tmp_path / "home" / "user" / "fg.txt").read_text() == "foreground"
    assert not token_file.exists()  # the default token file goes with the server


def test_listing_processes_shows_their_environment_to_token_holders_as_envd_does(
        sandbox: Sandbox, server: LocalSandboxServer) -> None:
    """envd's List returns each command's config as started, `envs` included: never pass a secret that way."""
    handle = sandbox.commands.run("sleep 30", background=True, envs={"SOME_SETTING": "visible-value"},
                                  cwd="/home/user")
    try:
        listed = [p for p in server.sandbox().commands.list() if p.pid == handle.pid]
        assert listed and listed[0].cmd == "/bin/bash" and listed[0].args == ["-l", "-c", "sleep 30"]
        assert listed[0].envs == {"SOME_SETTING": "visible-value"} and listed[0].cwd == "/home/user"
        refused = httpx.post(f"{server.url}/process.Process/List", content=b"{}",
                             headers={"Content-Type": "application/json"})
        assert refused.status_code == 401 and "visible-value" not in refused.text
    finally:
        handle.kill()
