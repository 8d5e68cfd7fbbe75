"""The driver protocol: a typed config model and a keyword-only `run` that maps named Arrow inputs to outputs."""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Generic, Literal, TypeAlias, TypeVar

import pyarrow as pa
from pydantic import BaseModel, ConfigDict

from osiris_core.errors import DriverError
from osiris_core.state import IncrementalRead, StateCommit, StateStore

ArrowData: TypeAlias = pa.Table | pa.RecordBatchReader
"""What flows between steps: a whole table, or a stream of record batches read once."""

StepInputs: TypeAlias = Mapping[str, ArrowData]
StepOutputs: TypeAlias = Mapping[str, ArrowData]

MAIN_OUTPUT = "df"
"""The output name downstream steps read."""

SINGLE_INPUT_SQL_NAME = "input_df"
"""The name a step with exactly one input sees it under, besides the producing step's own name."""

SOURCE_OPENED = "source_opened"
"""Event every extractor emits when its source is open: `target` (URI) and `columns`."""

OUTPUT_WRITTEN = "output_written"
"""Event every writer emits after its write committed: `target` (URI) and `rows`."""

ROWS_WRITTEN = "rows_written"
"""The metric a writer reports with the rows it actually wrote; it becomes the step's `rows_out`."""


class DriverConfig(BaseModel):
    """Base for every driver's typed config: unknown keys are rejected, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


ConfigT = TypeVar("ConfigT", bound=DriverConfig)


@dataclass(frozen=True)
class StepContext:
    """What the engine lends a step: where to put artifacts, and how to report metrics and events."""

    session_id: str
    artifacts_dir: Path
    logger: logging.Logger
    emit_metric: Callable[[str, float | int, str | None], None]
    emit_event: Callable[[str, Mapping[str, Any]], None]
    emit_progress: Callable[[str, int | None], None] | None = None
    """Where `progress` reports go (None: nowhere, e.g. a driver run outside the engine)."""
    incremental: IncrementalRead | None = None
    """An incremental extractor's read: where to start; it records the max cursor of what it yields."""
    state_commits: tuple[StateCommit, ...] = ()
    """A writer's incremental upstreams: the state it commits in its write's transaction."""
    full_refresh: bool = False
    """`osiris run --full-refresh` for a writer with an incremental upstream: replace the target."""

    def metric(self, name: str, value: float | int, unit: str | None = None) -> None:
        self.emit_metric(name, value, unit)

    def event(self, name: str, **fields: Any) -> None:
        """Emit a component event; its name must be declared in the component's `spec.yaml` `events`."""
        self.emit_event(name, fields)

    def progress(self, phase: str, rows: int | None = None) -> None:
        """Say what the step is doing now and, if it counts them, how many rows it has handled in this phase.

        `phase` is a short lowercase word: `extract`, `stage`, `load`, `swap`, `commit` where they apply (without
        a phase the step's is its mode: read, transform or write). Call it per batch or per phase, never per row:
        the engine turns it into a `step_progress` event at once for a new phase, else about once a second.
        Rows the step reads from a streamed input are counted by the engine without it.
        """
        if self.emit_progress is not None:
            self.emit_progress(phase, rows)

    def source_opened(self, target: str, *, columns: list[str]) -> None:
        """An extractor opened its source (`target`: a credential-free URI, see `osiris_core.targets`)."""
        self.emit_event(SOURCE_OPENED, {"target": target, "columns": list(columns)})

    def output_written(self, target: str, *, rows: int) -> None:
        """A writer committed `rows` rows to `target` (a credential-free URI, see `osiris_core.targets`)."""
        self.emit_event(OUTPUT_WRITTEN, {"target": target, "rows": rows})


WriteAction: TypeAlias = Literal["create", "replace", "append", "upsert", "scd2"]
"""What a write does to its target: creates it (it is missing), replaces its rows, appends, upserts by key, or adds
scd2 versions by key."""


@dataclass(frozen=True)
class StepPlan:
    """What a step would read and write, found without changing anything (`osiris run --dry-run`)."""

    source: str | None = None
    """What the step reads: a credential-free URI (`osiris_core.targets`); None for steps that read inputs."""
    target: str | None = None
    """What the step writes: a credential-free URI; None for steps that write nothing."""
    columns: tuple[str, ...] | None = None
    """The step's output columns when they are known without reading a row (a source's header or description)."""
    write_mode: str | None = None
    action: WriteAction | None = None
    target_exists: bool | None = None
    detail: str = ""
    """One line: why this action (the table is missing, replace rebuilds it, …)."""


class Driver(ABC, Generic[ConfigT]):
    """A component's runtime implementation.

    `config_model` declares every key the driver accepts; the compiler checks it against the spec.
    """

    config_model: ClassVar[type[DriverConfig]]

    @abstractmethod
    def run(self, *, step_id: str, config: ConfigT, inputs: StepInputs, ctx: StepContext) -> StepOutputs:
        """Execute one step; return named outputs (downstream steps read `MAIN_OUTPUT`)."""

    def plan(self, *, step_id: str, config: ConfigT, input_columns: tuple[str, ...] | None) -> StepPlan | None:
        """The dry-run hook (`osiris run --dry-run`): what `run` would read and write, found with read-only
        look-ups and without reading a row. `input_columns`: the single input's columns when known.

        None (the default) leaves the plan to the component's connection family, if it has one."""
        return None

    def incremental(self, config: ConfigT) -> tuple[str, ...] | None:
        """An extractor's cursor columns when `config` reads incrementally (the engine then loads its state from
        the downstream writers' targets and hands it `StepContext.incremental`); None (the default): it does not."""
        return None

    def state_store(self, *, step_id: str, config: ConfigT) -> StateStore | None:
        """A writer's incremental state table in its target (see `osiris_core.state`); None (the default): the
        writer keeps no state, so it cannot be downstream of an incremental extractor."""
        return None


def single_input(step_id: str, inputs: StepInputs) -> ArrowData:
    """The one input of a writer; anything else is a clear error."""
    if len(inputs) != 1:
        raise DriverError(f"needs exactly one input, got {len(inputs)}", step_id=step_id,
                          hint="list the one step to write under `needs`")
    return next(iter(inputs.values()))


def driver_path(driver_class: type[Driver[Any]]) -> str:
    """`module:QualName` of a driver class, the form spec files use."""
    return f"{driver_class.__module__}:{driver_class.__qualname__}"


def count_rows(data: ArrowData) -> int | None:
    """Rows of a table; `None` for a stream whose length is unknown until read."""
    return data.num_rows if isinstance(data, pa.Table) else None
