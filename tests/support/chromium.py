"""Open a page in a real headless Chromium (Debian's `chromium`) and report what a person would see.

A tiny client for the DevTools protocol over `--remote-debugging-pipe` (JSON messages separated by NUL bytes
on file descriptors 3 and 4): it loads the page in a fresh profile, records console messages, uncaught
exceptions, log entries (CSP violations, failed loads) and every network request, evaluates an expression in
the loaded page, and can take a screenshot. Every wait is bounded.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import select
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

TIMEOUT_S = 60.0


def find_chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@dataclass
class PageVisit:
    """What happened while a page loaded."""

    console: list[dict[str, Any]] = field(default_factory=list)
    """`{"level", "text"}` of console calls, uncaught exceptions and browser log entries."""
    requests: list[str] = field(default_factory=list)
    """The URL of every request the page made (the page itself included)."""
    value: Any = None
    """The result of the evaluated expression (JSON-decoded when it returned a JSON string)."""
    screenshot: bytes | None = None

    def problems(self) -> list[dict[str, Any]]:
        """Console output at warning level or above."""
        return [m for m in self.console if m["level"] in ("error", "warning", "assert")]


class Chromium:
    """`with Chromium(tmp_path) as browser: visit = browser.visit(path, expression)`."""

    def __init__(self, workdir: Path, executable: str | None = None) -> None:
        found = executable or find_chromium()
        if found is None:
            raise FileNotFoundError("chromium")
        self.executable = found
        self.workdir = workdir
        self._next_id = 0
        self._buffer = b""
        self._events: list[dict[str, Any]] = []

    def __enter__(self) -> Chromium:
        to_browser_r, to_browser_w = os.pipe()
        from_browser_r, from_browser_w = os.pipe()
        # Park the child's ends above 10, so that moving them to 3 and 4 cannot clobber each other.
        child_in = fcntl.fcntl(to_browser_r, fcntl.F_DUPFD, 10)
        child_out = fcntl.fcntl(from_browser_w, fcntl.F_DUPFD, 10)
        os.close(to_browser_r)
        os.close(from_browser_w)

        def remap() -> None:
            os.dup2(child_in, 3)
            os.dup2(child_out, 4)

        profile = self.workdir / "chromium-profile"
        profile.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "HOME": str(self.workdir)}
        self.process = subprocess.Popen(
            [self.executable, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
             "--remote-debugging-pipe", f"--user-data-dir={profile}", "--no-first-run", "--no-default-browser-check",
             "--disable-extensions", "--disable-background-networking", "--disable-component-update",
             "--disable-sync", "--hide-scrollbars", "--window-size=1280,1600", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=(self.workdir / "chromium.log").open("wb"),
            pass_fds=(3, 4), preexec_fn=remap, env=env)  # noqa: PLW1509 (single-threaded test helper)
        os.close(child_in)
        os.close(child_out)
        self._write_fd, self._read_fd = to_browser_w, from_browser_r
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        with contextlib.suppress(OSError):
            self._send("Browser.close")
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        os.close(self._write_fd)
        os.close(self._read_fd)

    # -------------------------------------------------------------------------------------------- protocol

    def _send(self, method: str, params: dict[str, Any] | None = None, session: str | None = None) -> int:
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session is not None:
            message["sessionId"] = session
        os.write(self._write_fd, json.dumps(message).encode() + b"\0")
        return self._next_id

    def _receive(self, deadline: float) -> dict[str, Any] | None:
        """The next message, or None when `deadline` passes first."""
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            ready, _, _ = select.select([self._read_fd], [], [], left)
            if not ready:
                return None
            chunk = os.read(self._read_fd, 1 << 20)
            if not chunk:
                raise RuntimeError(f"chromium closed the pipe; see {self.workdir / 'chromium.log'}")
            self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        message: dict[str, Any] = json.loads(raw)
        return message

    def call(self, method: str, params: dict[str, Any] | None = None, session: str | None = None) -> dict[str, Any]:
        """Send a command and wait for its answer; events that arrive meanwhile are kept."""
        wanted = self._send(method, params, session)
        deadline = time.monotonic() + TIMEOUT_S
        while True:
            message = self._receive(deadline)
            if message is None:
                raise TimeoutError(f"chromium did not answer {method} in {TIMEOUT_S:.0f} s")
            if message.get("id") == wanted:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                result: dict[str, Any] = message.get("result", {})
                return result
            if "method" in message:
                self._events.append(message)

    def _wait_for(self, method: str, session: str) -> None:
        deadline = time.monotonic() + TIMEOUT_S
        while True:
            for index, event in enumerate(self._events):
                if event["method"] == method and event.get("sessionId") == session:
                    del self._events[index]
                    return
            message = self._receive(deadline)
            if message is None:
                raise TimeoutError(f"chromium sent no {method} in {TIMEOUT_S:.0f} s")
            if "method" in message:
                self._events.append(message)

    def _drain(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while (message := self._receive(deadline)) is not None:
            if "method" in message:
                self._events.append(message)

    # -------------------------------------------------------------------------------------------- pages

    def visit(self, page: Path, expression: str, *, screenshot: bool = False) -> PageVisit:
        """Load `page` (a file), let it settle, evaluate `expression` in it; record what the browser said."""
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Runtime", "Log", "Page", "Network"):
            self.call(f"{domain}.enable", session=session)
        self._events.clear()
        self.call("Page.navigate", {"url": page.resolve().as_uri()}, session=session)
        self._wait_for("Page.loadEventFired", session)
        self._drain(0.5)
        evaluated = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True},
                              session=session)
        if "exceptionDetails" in evaluated:
            raise RuntimeError(f"the test's expression failed: {evaluated['exceptionDetails']}")
        visit = PageVisit()
        value = evaluated["result"].get("value")
        visit.value = json.loads(value) if isinstance(value, str) else value
        if screenshot:
            shot = self.call("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True},
                             session=session)
            visit.screenshot = base64.b64decode(shot["data"])
        self._drain(0.2)
        for event in self._events:
            if event.get("sessionId") != session:
                continue
            params = event.get("params", {})
            if event["method"] == "Runtime.consoleAPICalled":
                text = " ".join(str(a.get("value", a.get("description", ""))) for a in params.get("args", []))
                visit.console.append({"level": params.get("type"), "text": text})
            elif event["method"] == "Runtime.exceptionThrown":
                visit.console.append({"level": "error", "text": str(params.get("exceptionDetails"))})
            elif event["method"] == "Log.entryAdded":
                entry = params.get("entry", {})
                visit.console.append({"level": entry.get("level"), "text": entry.get("text")})
            elif event["method"] == "Network.requestWillBeSent":
                visit.requests.append(params.get("request", {}).get("url", ""))
        self._events.clear()
        self.call("Target.closeTarget", {"targetId": target})
        return visit
