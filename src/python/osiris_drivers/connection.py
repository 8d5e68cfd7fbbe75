"""The connector contract every connection family follows.

A family folder (`mysql/`, `postgres/`, `supabase/`, `duckdb/`, `filesystem/`) has a `connection.py` whose settings
class extends `ConnectionSettings`:

- typed fields (each component's config extends the class, so validation and TLS fields come with it);
- the client library imported lazily (`import_client`), so importing a driver costs nothing and a missing library
  is a one-line error naming the PyPI project to install;
- `check()`: one real round trip, which `osiris connections doctor` runs (`osiris_drivers.doctor`);
- `problem()`: any client error → a one-line `Problem` whose hint fits the role (reading, writing or the doctor)
  and which says whether a retry may help (`transient`: connection resets, timeouts, serialization failures,
  deadlocks, too many connections).

Then one subfolder per component (`extractor/`, `writer/`, …) with `spec.yaml` and `driver.py`. Components never
import each other: shared code lives in the family's modules or in `osiris_drivers.sql`.
"""

from __future__ import annotations

import importlib
import sys
from abc import abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any, ClassVar, Literal, Self
from urllib.parse import quote

from pydantic import SecretStr, ValidationError

from osiris_core.driver import DriverConfig
from osiris_core.errors import ConnectionConfigError, DriverError, OsirisError, RunError
from osiris_core.masking import scrub_text

Role = Literal["read", "write", "check"]
"""What the client was doing: reading (extractors), writing (writers) or checking (the doctor)."""

UNCHANGED = "the table was left unchanged"
"""What every failed write promises (and keeps)."""


@dataclass(frozen=True)
class Problem:
    """What went wrong, in one line; what to do about it; whether retrying may help."""

    message: str
    hint: str
    transient: bool = False

    def error(self, step_id: str, *, doing: str | None = None, unchanged: bool = False) -> DriverError:
        """The step's DriverError: `doing failed: message`, and the `UNCHANGED` promise for a failed write."""
        message = f"{doing} failed: {self.message}" if doing else self.message
        hint = f"{UNCHANGED}; {self.hint}" if unchanged and self.hint else (UNCHANGED if unchanged else self.hint)
        return DriverError(message, step_id=step_id, hint=hint or None, transient=self.transient)


class ClientMissing(ImportError):
    """A family's client library is not installed."""

    def __init__(self, module: str, project: str, family: str) -> None:
        self.module = module
        self.project = project
        self.family = family
        super().__init__(f"the {family} connection needs the Python package '{project}' (module '{module}'), "
                         "which is not installed")


def import_client(module: str, *, project: str, family: str) -> ModuleType:
    """`module`, imported now; `ClientMissing` (naming the PyPI `project`) if it is not installed."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name is not None and module.split(".")[0] != exc.name.split(".")[0]:
            raise  # the library is there but one of its own dependencies is not: its own error says which
        raise ClientMissing(module, project, family) from None


class ConnectionFailed(RunError):
    """A connection check that failed; `transient` ones may pass on retry."""

    def __init__(self, problem: Problem) -> None:
        self.transient = problem.transient
        super().__init__(problem.message, hint=problem.hint)


class ConnectionSettings(DriverConfig):
    """Base of every family's settings; components' config models extend a family's subclass."""

    family: ClassVar[str]
    """The connection family's name in osiris_connections.yaml (`@<family>.<alias>`)."""
    secret_fields: ClassVar[tuple[str, ...]] = ()
    """Fields whose values never appear in a message (the spec's `secrets` list them too)."""

    @classmethod
    def from_connection(cls, fields: Mapping[str, Any]) -> Self:
        """The settings of a resolved connection (its `default` marker ignored); bad fields are an InputError."""
        try:
            return cls.model_validate({k: v for k, v in fields.items() if k != "default"})
        except ValidationError as exc:
            first = exc.errors()[0]
            key = ".".join(str(p) for p in first["loc"])
            raise ConnectionConfigError(
                f"{cls.family} connection field '{key}': {first['msg']}",
                hint=f"fields: {', '.join(cls.model_fields)}; check the {cls.family} connection in "
                     "osiris_connections.yaml") from None

    @property
    @abstractmethod
    def where(self) -> str:
        """`at host:port`, `in <file>`: where the data lives, for messages (never a credential)."""

    @abstractmethod
    def check(self) -> str:
        """One real round trip; a short verdict without secrets. Client errors propagate (see `doctor`)."""

    @abstractmethod
    def problem(self, exc: BaseException, role: Role) -> Problem:
        """The family's translation of a client error (never called with `ClientMissing`)."""

    def explain(self, exc: BaseException, role: Role) -> Problem:
        """`exc` as a one-line Problem with a hint for `role`; secrets scrubbed."""
        if isinstance(exc, ClientMissing):
            return Problem(str(exc), f"pip install {exc.project} (sandbox runs: --e2b-install-deps)")
        problem = self.problem(exc, role)
        return Problem(self.scrub(problem.message), self.scrub(problem.hint), problem.transient)

    def failure(self, exc: BaseException, *, step_id: str, role: Role, doing: str | None = None,
                unchanged: bool = False) -> DriverError:
        """`exc` as the step's DriverError (see `Problem.error`)."""
        return self.explain(exc, role).error(step_id, doing=doing, unchanged=unchanged)

    def doctor(self) -> str:
        """`check()`, with any client error turned into `ConnectionFailed` (friendly, masked, one line)."""
        try:
            return self.check()
        except OsirisError:
            raise
        except Exception as exc:
            raise ConnectionFailed(self.explain(exc, "check")) from None

    def scrub(self, text: str) -> str:
        """`text` without this connection's secrets (plain or URL-encoded) or any URL's credentials."""
        for name in self.secret_fields:
            value = getattr(self, name, None)
            secret = value.get_secret_value() if isinstance(value, SecretStr) else value
            if isinstance(secret, str) and secret:
                for form in (secret, quote(secret, safe=""), quote(secret)):
                    text = text.replace(form, "***")
        return scrub_text(text)


def is_instance(exc: BaseException, module: str, name: str) -> bool:
    """Whether `exc` is a `module.name`, without importing `module` (a library that raised is already loaded)."""
    cls = getattr(sys.modules.get(module), name, None)
    return isinstance(cls, type) and isinstance(exc, cls)


def one_line(exc: BaseException) -> str:
    """What a library said, on one line (its class name when it said nothing)."""
    return " ".join(str(exc).split()) or type(exc).__name__
