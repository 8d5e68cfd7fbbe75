"""Virtual sandbox paths <-> host paths under the sandbox root directory.

Every path the SDK sends is a *sandbox* path. It is resolved the way envd resolves it
(``~`` and relative paths are taken from the requesting user's home directory, ``.`` and
``..`` are normalized) into an absolute virtual path such as ``/home/user/data.csv``,
which is then stored at ``<root>/home/user/data.csv`` on the host.

Safety rules:

* a ``..`` that would climb above the virtual ``/`` is rejected (never clamped);
* NUL bytes are rejected;
* after symlinks are resolved on the host the result must still lie inside ``<root>``,
  so a symlink (for example one created by a command) cannot be used to read or write
  host files through the file API.

The root is private to the server's user (mode 0700), and so are the homes created in it.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

DEFAULT_USER = "user"
"""The user envd acts as when the request names none, on E2B's base template (a layout may have another)."""

_USERNAME_RE = re.compile(r"\A[a-z_][a-z0-9_-]{0,31}\Z")


class SandboxPathError(ValueError):
    """A sandbox path or user name that cannot be resolved safely."""


def make_private_dirs(path: Path, *, exist_ok: bool = True) -> None:
    """``mkdir -p`` where every directory created (not only the last) is 0700."""
    missing: list[Path] = []
    probe = path
    while not probe.exists() and probe != probe.parent:
        missing.append(probe)
        probe = probe.parent
    if not missing and not exist_ok:
        raise FileExistsError(f"already exists: {path}")
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=0o700)
        except FileExistsError:
            if directory == path and not exist_ok:
                raise
            continue
        os.chmod(directory, 0o700)  # mkdir's mode went through the umask


def validate_username(username: str) -> str:
    """Return ``username`` if it is a plain POSIX user name, else raise SandboxPathError."""
    if not _USERNAME_RE.match(username):
        raise SandboxPathError(f"invalid username: {username!r}")
    return username


@dataclass(frozen=True)
class SandboxLayout:
    """The mapping between the sandbox's virtual filesystem and ``root`` on the host.

    ``user`` is the sandbox's default user, whom requests naming no user act as (a custom E2B template may have
    another than ``user``; ``root``'s home is ``/root``).
    """

    root: Path
    user: str = DEFAULT_USER

    @classmethod
    def create(cls, root: Path, user: str = DEFAULT_USER) -> SandboxLayout:
        """The layout of ``root``, created if needed; the root is made private (0700)."""
        make_private_dirs(root)
        layout = cls(Path(os.path.realpath(root)), validate_username(user))
        os.chmod(layout.root, 0o700)
        layout.ensure_home(layout.user)
        return layout

    # -- users -------------------------------------------------------------------------------
    @staticmethod
    def home_of(username: str) -> str:
        """Virtual home directory of ``username``: ``/root`` for root, else ``/home/<name>``."""
        validate_username(username)
        return "/root" if username == "root" else f"/home/{username}"

    def ensure_home(self, username: str) -> Path:
        """Create (if needed) and return the host directory backing the user's home."""
        host = self.to_host(self.home_of(username))
        make_private_dirs(host)
        return host

    # -- resolution --------------------------------------------------------------------------
    def resolve(self, path: str, username: str) -> str:
        """Resolve a path as envd does into a normalized absolute virtual path."""
        if "\x00" in path:
            raise SandboxPathError("path contains a NUL byte")
        home = self.home_of(username)
        if path.startswith("~"):
            if len(path) > 1 and path[1] != "/":
                raise SandboxPathError(f"cannot expand user-specific home dir in {path!r}")
            path = home + path[1:]
        if not path.startswith("/"):
            path = f"{home}/{path}" if path else home
        parts: list[str] = []
        for part in path.split("/"):
            if part in ("", "."):
                continue
            if part == "..":
                if not parts:
                    raise SandboxPathError(f"path {path!r} escapes the sandbox root")
                parts.pop()
                continue
            parts.append(part)
        return "/" + "/".join(parts)

    def to_host(self, vpath: str, *, follow: bool = True) -> Path:
        """Host path for a normalized virtual path, checked to stay inside the root.

        With ``follow=False`` the final component is not resolved (for operations on a
        symlink itself, such as lstat or unlink); its parent directory still is.
        """
        if not vpath.startswith("/"):
            raise SandboxPathError(f"not an absolute sandbox path: {vpath!r}")
        host = self.root / vpath.lstrip("/") if vpath != "/" else self.root
        if host == self.root:
            return host
        probe = host if follow else host.parent
        real = os.path.realpath(probe)
        if not self._inside(real):
            raise SandboxPathError(f"path {vpath!r} resolves outside the sandbox root")
        return host

    def to_virtual(self, host: Path | str) -> str | None:
        """Virtual path of a host path inside the root, or None if it lies outside."""
        real = os.path.normpath(os.fspath(host))
        if not self._inside(real):
            return None
        rel = os.path.relpath(real, self.root)
        return "/" if rel == "." else "/" + rel.replace(os.sep, "/")

    def _inside(self, real: str) -> bool:
        root = os.fspath(self.root)
        return real == root or real.startswith(root.rstrip(os.sep) + os.sep)
