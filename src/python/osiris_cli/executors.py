"""Executors by name: what `osiris run` and `osiris parity` run a pipeline with.

`local` runs the steps in this process (`osiris_core.runner.LocalExecutor`); `sandbox` runs them in a sandbox of
the backend `--sandbox`/`--e2b` name (`osiris_remote.proxy.SandboxExecutor`; backends in
`osiris_remote.backends.BACKENDS`). Both write the same session, events and run card. Adding an executor: an
`osiris_core.execution.Executor` subclass, and one entry in `EXECUTORS` with the flag that selects it in
`executor_name`.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Final

from osiris_cli.remote_commands import check_execution_flags, sandbox_options
from osiris_core.execution import ExecutionSettings, Executor
from osiris_core.runner import LocalExecutor

ExecutorFactory = Callable[[ExecutionSettings, argparse.Namespace], Executor]
"""Makes an executor from the common settings and the command's flags (validated there)."""


def _local(settings: ExecutionSettings, args: argparse.Namespace) -> Executor:
    return LocalExecutor(settings)


def _sandbox(settings: ExecutionSettings, args: argparse.Namespace) -> Executor:
    from osiris_remote.proxy import SandboxExecutor  # the bundle and sandbox machinery only for sandbox runs

    return SandboxExecutor(settings, sandbox_options(args))


EXECUTORS: Final[dict[str, ExecutorFactory]] = {
    "local": _local,
    "sandbox": _sandbox,
}


def executor_name(args: argparse.Namespace) -> str:
    """`sandbox` when the flags name a sandbox backend (`--sandbox NAME`, `--e2b`), else `local`.

    Every execution flag is checked here, before anything is compiled or run.
    """
    return "sandbox" if check_execution_flags(args) else "local"
