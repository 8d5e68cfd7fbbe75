"""One root exception for Osiris; subclasses keep the offending values as fields.

Every message is one line that names the place and says what to do next.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Location:
    """A place in a user's file: path plus 1-based line and column."""

    path: str
    line: int | None = None
    column: int | None = None

    def __str__(self) -> str:
        if self.line is None:
            return self.path
        if self.column is None:
            return f"{self.path}:{self.line}"
        return f"{self.path}:{self.line}:{self.column}"


class OsirisError(Exception):
    """Root of every error Osiris raises on purpose. `transient` errors may succeed on retry."""

    transient: bool = False
    exit_code: int = 2

    def __init__(self, message: str, *, location: Location | None = None, hint: str | None = None) -> None:
        self.message = " ".join(message.split())  # one line, whatever a database or library said
        self.location = location
        self.hint = hint
        super().__init__(self.render())

    def render(self) -> str:
        parts = []
        if self.location is not None:
            parts.append(f"{self.location}: ")
        parts.append(self.message)
        if self.hint:
            parts.append(f" — {self.hint}")
        return "".join(parts)


class InputError(OsirisError):
    """Bad input from the user: a file, a flag, a value. Exit code 2."""


class YamlError(InputError):
    """A YAML file that cannot be parsed or does not have the expected shape."""


class CompileError(InputError):
    """A pipeline that does not compile."""


class SpecError(InputError):
    """A component spec that is invalid or disagrees with its driver."""


class ConnectionConfigError(InputError):
    """A connection reference or connection file that cannot be resolved."""


class RunError(OsirisError):
    """A run that failed while executing steps. Exit code 1."""

    exit_code = 1


class Interrupted(RunError):
    """The run was stopped by SIGINT or SIGTERM (`osiris_core.interrupts`). Exit code 130, as a shell reports."""

    exit_code = 130


class DriverError(RunError):
    """A driver failed; `step_id` names the step."""

    def __init__(
        self,
        message: str,
        *,
        step_id: str,
        hint: str | None = None,
        transient: bool = False,
    ) -> None:
        self.step_id = step_id
        self.transient = transient
        super().__init__(f"step '{step_id}': {message}", hint=hint)
