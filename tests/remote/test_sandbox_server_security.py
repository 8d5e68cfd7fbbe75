"""Attacks on the local sandbox server (``osiris sandbox serve`` and each ``--sandbox local`` run).

Attacks are raw HTTP (httpx) the way another local user or a web page in a local browser would
send them; the legitimate client is the real ``e2b`` SDK holding the server's token. Each test
checks what must not happen (a file written, a process started or left running) on the
filesystem and in /proc, not only the status code.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from e2b import CommandExitException, SandboxException, TimeoutException
from e2b.exceptions import InvalidArgumentException, SandboxNotRunningException
from e2b.sandbox.commands.command_handle import PtySize
from e2b.sandbox.filesystem.filesystem import FileType

from osiris_cli.main import main
from osiris_remote.backends import SandboxLost, SandboxOptions, open_sandbox
from osiris_remote.sandbox_server import AccessPolicy, LocalSandboxServer, SandboxLimits, connect_sandbox

MiB = 1024 * 1024
LIMITS = SandboxLimits(upload_bytes=2 * MiB, upload_decoded_bytes=2 * MiB, list_depth=4, list_entries=50,
                       watchers=2, processes=8)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalSandboxServer]:
    with LocalSandboxServer(tmp_path_factory.mktemp("secure") / "root", limits=LIMITS) as srv:
        yield srv


@pytest.fixture()
def home(server: LocalSandboxServer) -> Path:
    return server.app.layout.root / "home" / "user"


# -- helpers -----------------------------------------------------------------------------------
def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie nobody reaped yet counts as dead)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in (b"Z", b"X")


def _pids_with(marker: str) -> list[int]:
    """Live processes whose command line contains ``marker``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if marker.encode() in cmdline and _alive(int(entry.name)):
            found.append(int(entry.name))
    return found


def _wait_until_gone(marker: str, seconds: float) -> list[int]:
    deadline = time.monotonic() + seconds
    while (left := _pids_with(marker)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


def _envelope(payload: dict[str, object]) -> bytes:
    data = json.dumps(payload).encode()
    return struct.pack(">BI", 0, len(data)) + data


def _start_body(command: str) -> bytes:
    return _envelope({"process": {"cmd": "/bin/bash", "args": ["-c", command]}})


def _multipart(path: str, data: bytes) -> tuple[bytes, str]:
    boundary = "browserboundary"
    body = (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{path}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def _attacks(server: LocalSandboxServer) -> dict[str, dict[str, str]]:
    """Header sets that must be refused: no token, a wrong one, and the right one sent by a web page or to a
    name that is not this server (DNS rebinding)."""
    port = server.port
    return {
        "no token": {},
        "wrong token": {"X-Access-Token": "not-the-token"},
        "empty token": {"X-Access-Token": ""},
        "foreign origin": {"X-Access-Token": server.token, "Origin": "http://evil.example"},
        "null origin": {"X-Access-Token": server.token, "Origin": "null"},
        "cross-site fetch": {"X-Access-Token": server.token, "Sec-Fetch-Site": "cross-site"},
        "rebound host": {"X-Access-Token": server.token, "Host": f"evil.example:{port}"},
        "lan host": {"X-Access-Token": server.token, "Host": f"192.168.1.20:{port}"},
        "other port": {"X-Access-Token": server.token, "Host": "127.0.0.1:1"},
    }


# -- access ------------------------------------------------------------------------------------
def test_every_attack_is_refused_before_anything_runs_or_is_written(server: LocalSandboxServer, home: Path) -> None:
    (home / "existing.txt").write_text("private data")
    for name, headers in _attacks(server).items():
        marker = home / f"ran-{uuid.uuid4().hex}"
        started = httpx.post(f"{server.url}/process.Process/Start", content=_start_body(f"touch {marker}"),
                             headers={"Content-Type": "application/connect+json", **headers})
        profile = f"/home/user/.bash_profile-{marker.name}"
        body, content_type = _multipart(profile, f"touch {marker}\n".encode())
        uploaded = httpx.post(f"{server.url}/files", content=body, headers={"Content-Type": content_type, **headers})
        raw = httpx.post(f"{server.url}/files?path={profile}", content=b"x",
                         headers={"Content-Type": "application/octet-stream", **headers})
        read = httpx.get(f"{server.url}/files?path=/home/user/existing.txt", headers=headers)
        listed = httpx.post(f"{server.url}/process.Process/List", content=b"{}",
                            headers={"Content-Type": "application/json", **headers})
        listing = httpx.post(f"{server.url}/filesystem.Filesystem/ListDir", content=b'{"path": "/home/user"}',
                             headers={"Content-Type": "application/json", **headers})
        expected = 401 if "token" in name else 403
        for answer in (started, uploaded, raw, read, listed, listing):
            assert answer.status_code == expected, (name, answer.request.url, answer.status_code, answer.text)
            assert "private data" not in answer.text and server.token not in answer.text
        time.sleep(0.3)
        assert not marker.exists(), name
        assert not list(home.glob(".bash_profile-*")) and not list(home.glob(".*osiris-upload")), name
    # The same requests with the token, from a plain local client, do what they say (the attacks were well-formed).
    marker = home / "ran-with-token"
    ok = httpx.post(f"{server.url}/process.Process/Start", content=_start_body(f"touch {marker}"),
                    headers={"Content-Type": "application/connect+json", "X-Access-Token": server.token})
    assert ok.status_code == 200
    assert httpx.get(f"{server.url}/files?path=/home/user/existing.txt",
                     headers={"X-Access-Token": server.token}).text == "private data"
    deadline = time.monotonic() + 5
    while not marker.exists():
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_health_needs_no_token_but_still_checks_host_and_origin(server: LocalSandboxServer) -> None:
    assert httpx.get(f"{server.url}/health").status_code == 204
    assert httpx.get(f"{server.url}/health", headers={"Origin": "http://evil.example"}).status_code == 403
    assert httpx.get(f"{server.url}/health", headers={"Host": f"evil.example:{server.port}"}).status_code == 403


def test_a_refused_oversized_body_is_not_read_to_the_end(server: LocalSandboxServer, home: Path) -> None:
    def endless() -> Iterator[bytes]:
        for _ in range(64):  # 64 MiB offered, unauthenticated
            yield b"\0" * MiB

    try:
        answer = httpx.post(f"{server.url}/files?path=/home/user/flood.bin", content=endless(),
                            headers={"Content-Type": "application/octet-stream"})
        assert answer.status_code == 401
    except httpx.TransportError:
        pass  # the server closed the connection after reading its bounded share
    assert not (home / "flood.bin").exists()


def test_host_header_rules() -> None:
    local = AccessPolicy("t", "127.0.0.1", 4000)
    for host in ("127.0.0.1:4000", "localhost:4000", "LOCALHOST:4000", "127.9.8.7:4000", "[::1]:4000"):
        assert local.check_origin({"host": host}) is None, host
    for host in ("localhost.evil.example:4000", "127.0.0.1.nip.io:4000", "127.0.0.1", "[::1]", "10.0.0.1:4000",
                 "127.0.0.1:4000:1", "[::1:4000", "evil.example", ""):
        assert local.check_origin({"host": host}) is not None, host
    assert local.check_origin({}) is not None
    wildcard = AccessPolicy("t", "0.0.0.0", 4000)
    assert wildcard.check_origin({"host": "192.168.1.20:4000"}) is None  # an IP literal cannot be rebound
    assert wildcard.check_origin({"host": "my-laptop.example:4000"}) is not None


# -- the SDK with the token ------------------------------------------------------------------------
def test_the_sdk_with_the_token_works_end_to_end(server: LocalSandboxServer, home: Path) -> None:
    sandbox = server.sandbox()
    sandbox.files.write("/home/user/e2e/in.csv", "a,b\n1,2\n")
    assert sandbox.files.read("/home/user/e2e/in.csv") == "a,b\n1,2\n"
    assert sandbox.commands.run("wc -l < e2e/in.csv").stdout.strip() == "2"
    # Signed URLs (what download_url/upload_url give a secured sandbox) carry a signature made from the token.
    url = sandbox.download_url("/home/user/e2e/in.csv")
    assert "signature=v1_" in url and server.token not in url
    assert httpx.get(url).text == "a,b\n1,2\n"
    tampered = re.sub(r"signature=v1_[^&]+", "signature=v1_AAAA", url)
    assert httpx.get(tampered).status_code == 401
    assert httpx.get(url.replace("in.csv", "other.csv")).status_code == 401  # the signature names one path
    expired = sandbox.download_url("/home/user/e2e/in.csv", use_signature_expiration=-10)
    assert httpx.get(expired).status_code == 401
    upload = sandbox.upload_url("/home/user/e2e/up.txt")
    body, content_type = _multipart("/home/user/e2e/up.txt", b"uploaded")
    assert httpx.post(upload, content=body, headers={"Content-Type": content_type}).status_code == 200
    assert (home / "e2e/up.txt").read_bytes() == b"uploaded"
    assert httpx.post(url, content=body, headers={"Content-Type": content_type}).status_code == 401  # a read URL
    assert server.token not in repr(server)


def test_planted_shell_profiles_never_run(server: LocalSandboxServer, home: Path) -> None:
    sandbox = server.sandbox()
    markers = {}
    for name in (".bash_profile", ".bash_login", ".profile", ".bashrc"):
        markers[name] = home / f"profile-ran-{name.strip('.')}"
        sandbox.files.write(f"/home/user/{name}", f"touch {markers[name]}\n")
    assert sandbox.commands.run("echo plain").stdout == "plain\n"
    assert sandbox.commands.run("echo as-root", user="root").stdout == "as-root\n"
    output: list[bytes] = []
    terminal = sandbox.pty.create(PtySize(rows=24, cols=80), timeout=20)
    sandbox.pty.send_stdin(terminal.pid, b"echo interactive; exit 0\n")
    terminal.wait(on_pty=output.append)
    assert b"interactive" in b"".join(output)
    assert [name for name, marker in markers.items() if marker.exists()] == []


# -- lifetime and deadlines --------------------------------------------------------------------
def test_the_lifetime_kills_every_process_and_ends_the_sandbox(tmp_path: Path) -> None:
    marker = f"30{uuid.uuid4().int % 10**6:06d}"
    with LocalSandboxServer(tmp_path / "root", lifetime=3) as server:
        sandbox = server.sandbox()
        handle = sandbox.commands.run(f"sleep {marker}1 & setsid sleep {marker}2 & sleep {marker}3; wait",
                                      background=True, timeout=0)
        time.sleep(0.5)
        assert len(_pids_with(marker)) >= 3
        started = time.monotonic()
        with pytest.raises(SandboxNotRunningException, match="lifetime of 3 s is over"):
            handle.wait()
        assert time.monotonic() - started < 4
        assert _wait_until_gone(marker, 3) == []
        with pytest.raises(SandboxNotRunningException):
            sandbox.commands.run("echo too late")
        with pytest.raises(SandboxNotRunningException):
            sandbox.files.write("/home/user/late.txt", "x")
        assert not (server.app.layout.root / "home/user/late.txt").exists()


def test_open_sandbox_passes_the_e2b_timeout_as_the_local_lifetime(tmp_path: Path) -> None:
    marker = f"31{uuid.uuid4().int % 10**6:06d}"
    started = time.monotonic()
    with open_sandbox(SandboxOptions(backend="local", lifetime_s=2, local_root=tmp_path / "root")) as sandbox:
        with pytest.raises(SandboxLost, match="SandboxNotRunningException"):
            sandbox.run(f"sleep {marker}", cwd="", env={}, on_stdout=print, on_stderr=print)
        assert time.monotonic() - started < 10
    assert _wait_until_gone(marker, 3) == []


def test_a_local_run_past_its_e2b_timeout_fails_in_time_and_leaves_no_process(project: Path) -> None:
    (project / "slow.yaml").write_text(yaml.safe_dump({"oml_version": "0.1.0", "name": "slow", "steps": [
        {"id": "spin", "component": "duckdb.processor", "mode": "transform",
         "config": {"query": "select sum(hash(i)) as h from range(20000000000) t(i)"}},  # minutes of work
        {"id": "out", "component": "filesystem.csv_writer", "mode": "write", "needs": ["spin"],
         "config": {"path": "o.csv"}}]}))
    root = project / "sandbox-root"
    started = time.monotonic()
    code = main(["run", "slow.yaml", "--sandbox", "local", "--e2b-timeout", "8", "--sandbox-root", str(root)])
    assert code == 1
    assert time.monotonic() - started < 30
    card = json.loads(next((project / "logs").glob("run_*/run_card.json")).read_text())
    assert "lifetime of 8 s is over" in card["error"] and "--e2b-timeout" in card["error"]
    deadline = time.monotonic() + 3
    while True:
        left = []
        for entry in Path("/proc").iterdir():
            try:
                if entry.name.isdigit() and Path(os.readlink(entry / "cwd")).is_relative_to(root.resolve()):
                    left.append(int(entry.name))
            except OSError:
                continue
        if not [pid for pid in left if _alive(pid)] or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert [pid for pid in left if _alive(pid)] == []


def test_a_command_timeout_kills_everything_the_command_started(server: LocalSandboxServer) -> None:
    marker = f"32{uuid.uuid4().int % 10**6:06d}"
    sandbox = server.sandbox()
    with pytest.raises(TimeoutException):
        sandbox.commands.run(f"sleep {marker}1 & setsid sleep {marker}2 & (sleep {marker}3 &); sleep {marker}4",
                             timeout=2)
    assert _wait_until_gone(marker, 3) == []


def test_processes_die_when_the_server_process_is_killed(tmp_path: Path) -> None:
    code = (
        "import sys; from pathlib import Path; from osiris_remote.sandbox_server import serve; "
        "serve(Path(sys.argv[1]), '127.0.0.1', 0, log_level='warning')"
    )
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "root")], stderr=subprocess.PIPE, text=True,
                            env=env)
    marker = f"33{uuid.uuid4().int % 10**6:06d}"
    try:
        assert proc.stderr is not None
        match = re.search(r"envd at (http://\S+) .*access token in (\S+);", proc.stderr.readline())
        assert match
        sandbox = connect_sandbox(match.group(1), Path(match.group(2)).read_text().strip())
        handle = sandbox.commands.run(f"sleep {marker}", background=True, timeout=0)
        time.sleep(0.3)
        assert _alive(handle.pid)
    finally:
        proc.kill()  # no chance to clean up
        proc.wait(timeout=10)
    assert _wait_until_gone(marker, 3) == []


# -- bounds ------------------------------------------------------------------------------------
def test_an_oversized_upload_is_refused_and_leaves_nothing(server: LocalSandboxServer, home: Path) -> None:
    sandbox = server.sandbox()
    with pytest.raises(SandboxException, match="larger than"):
        sandbox.files.write("/home/user/too-big.bin", b"x" * (3 * MiB))
    answer = httpx.post(f"{server.url}/files?path=/home/user/too-big.bin", content=b"x" * (3 * MiB),
                        headers={"Content-Type": "application/octet-stream", "X-Access-Token": server.token})
    assert answer.status_code == 413
    assert not (home / "too-big.bin").exists() and not list(home.glob(".*osiris-upload"))
    sandbox.files.write("/home/user/fits.bin", b"x" * MiB)  # under the bound: fine


def test_a_gzip_bomb_is_refused_with_bounded_memory(server: LocalSandboxServer, home: Path) -> None:
    bomb = gzip.compress(b"\0" * (256 * MiB), compresslevel=9)  # ~250 KiB on the wire
    assert len(bomb) < MiB
    tracemalloc.start()
    try:
        answer = httpx.post(f"{server.url}/files?path=/home/user/bomb.bin", content=bomb,
                            headers={"Content-Type": "application/octet-stream", "Content-Encoding": "gzip",
                                     "X-Access-Token": server.token})
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert answer.status_code == 413, answer.text
    assert peak < 32 * MiB
    assert not (home / "bomb.bin").exists() and not list(home.glob(".*osiris-upload"))


def test_listings_watchers_and_processes_are_bounded(server: LocalSandboxServer) -> None:
    sandbox = server.sandbox()
    sandbox.commands.run("mkdir -p many && cd many && touch $(seq 1 80)")
    with pytest.raises(SandboxException, match="more than 50 entries"):
        sandbox.files.list("/home/user/many")
    with pytest.raises(InvalidArgumentException, match="depth 5"):
        sandbox.files.list("/home/user", depth=5)
    sandbox.files.make_dir("/home/user/w")
    watchers = [sandbox.files.watch_dir("/home/user/w") for _ in range(2)]
    with pytest.raises(SandboxException, match="more than 2 watchers"):
        sandbox.files.watch_dir("/home/user/w")
    for watcher in watchers:
        watcher.stop()
    sandbox.files.watch_dir("/home/user/w").stop()  # a removed watcher frees its place
    handles = [sandbox.commands.run("sleep 60", background=True) for _ in range(8)]
    try:
        with pytest.raises(SandboxException, match="more than 8 processes"):
            sandbox.commands.run("echo one too many")
    finally:
        for handle in handles:
            handle.kill()


def test_output_a_client_does_not_take_is_not_buffered_without_bound(tmp_path: Path) -> None:
    with LocalSandboxServer(tmp_path / "root") as server:
        sandbox = server.sandbox()
        tracemalloc.start()
        try:
            handle = sandbox.commands.run("head -c 300000000 /dev/zero", background=True, timeout=60)
            time.sleep(3)  # the command writes 300 MB at once; this client reads none of it
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        handle.kill()
        assert peak < 32 * MiB
        with pytest.raises(CommandExitException):  # what was held back is still delivered, then the end
            handle.wait()
        assert sandbox.commands.run("echo still-serving").stdout == "still-serving\n"


# -- filesystem ------------------------------------------------------------------------------
def test_symlinks_out_of_the_root_do_not_reveal_their_target(server: LocalSandboxServer) -> None:
    sandbox = server.sandbox()
    secret_dir = tempfile.mkdtemp(prefix="outside-secret-")
    sandbox.commands.run(f"mkdir -p links target && ln -sfn {secret_dir} links/dir && "
                         "ln -sfn /etc/hostname links/file && ln -sfn ../target links/inside")
    outside = [sandbox.files.get_info("/home/user/links/dir"), sandbox.files.get_info("/home/user/links/file"),
               *[e for e in sandbox.files.list("/home/user/links") if e.name != "inside"]]
    assert len(outside) == 4
    for entry in outside:
        assert entry.type == FileType.SYMLINK
        assert entry.symlink_target is None and entry.size == 0
        assert secret_dir not in repr(entry) and "/etc" not in repr(entry)
    inside = sandbox.files.get_info("/home/user/links/inside")
    assert inside.symlink_target == "/home/user/target"  # inside the root: shown as a sandbox path
    os.rmdir(secret_dir)


def test_root_and_written_files_are_private(tmp_path: Path) -> None:
    root = tmp_path / "kept-root"
    with LocalSandboxServer(root) as server:
        sandbox = server.sandbox()
        sandbox.files.write("/home/user/sub/dir/up.txt", "x")
        sandbox.commands.run("touch made-by-command && mkdir made-dir")
        home = root / "home" / "user"
        assert (root.stat().st_mode & 0o777, home.stat().st_mode & 0o777) == (0o700, 0o700)
        assert (home / "sub/dir/up.txt").stat().st_mode & 0o777 == 0o600
        assert (home / "sub").stat().st_mode & 0o777 == 0o700
        assert (home / "made-by-command").stat().st_mode & 0o777 == 0o600
        assert (home / "made-dir").stat().st_mode & 0o777 == 0o700
        (home / "script.sh").write_text("old")
        (home / "script.sh").chmod(0o700)
        sandbox.files.write("/home/user/script.sh", "new")  # a replaced file keeps its mode
        assert (home / "script.sh").stat().st_mode & 0o777 == 0o700
    loose = tmp_path / "loose"
    loose.mkdir(mode=0o755)
    with LocalSandboxServer(loose):
        assert loose.stat().st_mode & 0o777 == 0o700


# -- osiris sandbox serve ----------------------------------------------------------------------
def test_serve_on_a_busy_port_leaves_nothing_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    private_tmp = tmp_path / "tmp"
    private_tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(private_tmp))
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        assert main(["sandbox", "serve", "--port", str(busy.getsockname()[1])]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "cannot listen on 127.0.0.1" in err and "--port" in err
    assert list(private_tmp.iterdir()) == []


def test_serve_refuses_a_non_loopback_address_without_a_token_file(tmp_path: Path) -> None:
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": os.pathsep.join(sys.path), "TMPDIR": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", "from osiris_cli.main import run; run()", "sandbox", "serve",
                           "--host", "0.0.0.0", "--port", "0"], capture_output=True, text=True, env=env, timeout=60,
                          check=False)
    assert done.returncode == 2
    assert "--token-file" in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_serve_writes_the_token_file_private_and_never_prints_the_token(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": os.pathsep.join(sys.path), "TMPDIR": str(tmp_path)}
    proc = subprocess.Popen([sys.executable, "-c", "from osiris_cli.main import run; run()", "sandbox", "serve",
                             "--port", "0", "--token-file", str(token_file), "--lifetime", "60"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    lines: list[str] = []
    try:
        assert proc.stderr is not None
        lines.append(proc.stderr.readline())
        match = re.search(r"envd at (http://\S+) \(root (\S+)\)", lines[0])
        assert match, lines
        token = token_file.read_text().strip()
        assert token_file.stat().st_mode & 0o777 == 0o600 and len(token) >= 40
        assert connect_sandbox(match.group(1), token).commands.run("echo served").stdout == "served\n"
        assert httpx.get(f"{match.group(1)}/files?path=/home/user").status_code == 401
        temp_root = Path(match.group(2))
        assert temp_root.stat().st_mode & 0o777 == 0o700
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=15)
    assert proc.returncode == 0
    assert token not in "".join(lines) + out + err
    assert not temp_root.exists()  # the default root is temporary


def test_stopping_a_server_while_a_client_streams_ends_the_stream(tmp_path: Path) -> None:
    marker = f"34{uuid.uuid4().int % 10**6:06d}"
    server = LocalSandboxServer(tmp_path / "root")
    sandbox = server.sandbox()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            sandbox.commands.run(f"sleep {marker}", timeout=0)
        except BaseException as exc:  # recorded for the assertion
            errors.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    time.sleep(0.5)
    server.stop()
    worker.join(10)
    assert not worker.is_alive()
    assert errors and isinstance(errors[0], SandboxNotRunningException | CommandExitException)
    assert _wait_until_gone(marker, 3) == []
    with pytest.raises(ConnectionRefusedError):  # stop() returns once the server has shut down
        socket.create_connection(("127.0.0.1", server.port), timeout=2).close()
