"""The `filesystem` family: a local file, its settings (`path`), the doctor's check and one-line error messages.

No client library: Python and pyarrow read and write the files.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import ClassVar

from pydantic import Field

from osiris_core.targets import file_uri
from osiris_drivers.connection import ConnectionSettings, Problem, Role, one_line

PATH_HINT = "check `path` (relative paths start at the working directory)"


class FileSettings(ConnectionSettings):
    """A local file; the CSV components' configs extend it."""

    family: ClassVar[str] = "filesystem"

    path: str = Field(min_length=1)

    @property
    def where(self) -> str:
        return f"in {self.path}"

    @property
    def target(self) -> str:
        """`file:///absolute/path`."""
        return file_uri(self.path)

    def check(self) -> str:
        path = Path(self.path)
        if path.is_file():
            if not os.access(path, os.R_OK):
                raise PermissionError(13, "not readable", self.path)
            return f"ok: {path} is a readable file ({path.stat().st_size} bytes)"
        if path.exists():
            raise IsADirectoryError(21, "not a file", self.path)
        folder = path.parent
        if folder.is_dir() and os.access(folder, os.W_OK):
            return f"ok: {path} does not exist yet and can be created"
        raise FileNotFoundError(2, "neither the file nor a writable folder for it exists", self.path)

    def problem(self, exc: BaseException, role: Role) -> Problem:
        if isinstance(exc, FileNotFoundError):
            return Problem(f"{exc.filename or self.path}: {exc.strerror or one_line(exc)}", PATH_HINT)
        if isinstance(exc, PermissionError):
            return Problem(f"{exc.filename or self.path}: {exc.strerror or one_line(exc)}",
                           "check the file's and its folder's permissions")
        if isinstance(exc, IsADirectoryError | NotADirectoryError):
            return Problem(f"{exc.filename or self.path}: {exc.strerror or one_line(exc)}", "`path` must name a file")
        if isinstance(exc, OSError):
            return Problem(f"{self.path}: {exc.strerror or one_line(exc)}", PATH_HINT)
        return Problem(f"{type(exc).__name__}: {one_line(exc)}", "")
