"""Where an incremental extractor's state lives: the targets of the writers downstream of it.

The run engine (`osiris_core.runner`) loads the state before the extractor reads and hands each writer what to
commit; `osiris state show|reset` finds the same stores. Both go through `state_targets`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from osiris_core.driver import DriverConfig
from osiris_core.errors import InputError, OsirisError
from osiris_core.manifest import CompiledPipeline, ManifestStep
from osiris_core.registry import Component
from osiris_core.state import Cursor, CursorError, StateRecord, StateStore, decode_cursor

TypedConfig = Callable[[ManifestStep], DriverConfig]
"""A step's typed config, its connection resolved (as the run builds it)."""


@dataclass(frozen=True)
class StateTarget:
    """One downstream writer of an incremental extractor, with its target's state store."""

    extractor: str
    writer: str
    store: StateStore


def downstream_writers(compiled: CompiledPipeline, step_id: str) -> list[ManifestStep]:
    """The write steps that read `step_id`'s rows, directly or through transforms (in manifest order)."""
    reached = {step_id}
    writers = []
    for step in compiled.manifest.steps:
        if reached.intersection(step.needs):
            reached.add(step.id)
            if step.mode == "write":
                writers.append(step)
    return writers


def incremental_steps(compiled: CompiledPipeline, components: Mapping[str, Component],
                      typed: TypedConfig) -> list[ManifestStep]:
    """The extractor steps whose config reads incrementally."""
    return [step for step in compiled.manifest.steps if step.mode == "read"
            and components[step.id].driver().incremental(typed(step)) is not None]


def state_targets(compiled: CompiledPipeline, components: Mapping[str, Component], typed: TypedConfig,
                  step: ManifestStep) -> list[StateTarget]:
    """The state stores of incremental step `step`: one per downstream writer; an InputError when a writer keeps
    no state or there is none."""
    writers = downstream_writers(compiled, step.id)
    if not writers:
        raise InputError(f"step '{step.id}' reads incrementally, but no writer step is downstream of it",
                         hint="add a writer step that needs it, or drop `incremental`")
    targets = []
    for writer in writers:
        component = components[writer.id]
        store = component.driver().state_store(step_id=writer.id, config=typed(writer))
        if store is None:
            raise InputError(f"step '{writer.id}' ({writer.component}) keeps no incremental state, so it cannot "
                             f"write incremental step '{step.id}'",
                             hint="write to a database (postgres, mysql, supabase or duckdb writer), or drop "
                                  "`incremental`")
        targets.append(StateTarget(step.id, writer.id, store))
    return targets


def check_writers(step_id: str, targets: list[StateTarget], *, full_refresh: bool) -> None:
    """Refuse writers that an incremental read would make wrong (an InputError before anything is read or written):
    a write that does not deduplicate (the boundary rows are read again), and one that is correct only over a full
    extract (`delete_missing` would delete, stamp or close every key the increment lacks). `--full-refresh` reads
    everything, so both are fine then."""
    if full_refresh:
        return
    for target in targets:
        store = target.store
        if not store.deduplicates:
            raise InputError(f"step '{target.writer}' writes with write_mode {store.write_mode}, but its "
                             f"upstream '{step_id}' reads incrementally: the rows at the last cursor are read "
                             "again, and only a deduplicating write lands them once",
                             hint="set write_mode: upsert with primary_key on the writer, or drop `incremental`")
        if store.full_extract_only is not None:
            raise InputError(f"step '{target.writer}' sets {store.full_extract_only}, but its upstream "
                             f"'{step_id}' reads incrementally: every key missing from the increment would be "
                             "deleted (or stamped, or closed)",
                             hint="delete_missing needs a full extract: remove `incremental` (or delete_missing), "
                                  "or run with --full-refresh")


def stored_cursor(pipeline: str, target: StateTarget, records: list[StateRecord]) -> Cursor | None:
    """The cursor `pipeline` stored for the target's extractor (None: none). State of the same step and target
    under another pipeline name is a renamed pipeline: an InputError, never a silent reset."""
    mine = [r for r in records if r.step == target.extractor and r.pipeline == pipeline]
    if mine:
        try:
            return decode_cursor(mine[0].cursor)
        except CursorError as exc:
            raise InputError(f"the state of step '{target.extractor}' in {target.store.target} is unreadable: {exc}",
                             hint="reset it with `osiris state reset PIPELINE --step "
                                  f"{target.extractor}`") from None
    others = sorted({r.pipeline for r in records if r.step == target.extractor})
    if others:
        raise InputError(f"{target.store.target} holds state of step '{target.extractor}' for pipeline "
                         f"'{others[0]}', not for '{pipeline}': was the pipeline renamed?",
                         hint=f"rename it back to '{others[0]}', drop the old state with `osiris state reset "
                              f"PIPELINE --name {others[0]}`, or reload everything with `osiris run --full-refresh`")
    return None


def load_records(target: StateTarget) -> list[StateRecord]:
    """The target's state records, failures as one-line errors."""
    try:
        return target.store.records()
    except OsirisError:
        raise
    except Exception as exc:
        raise InputError(f"reading the incremental state in {target.store.target} failed: "
                         f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}",
                         hint=f"check the connection of step '{target.writer}'") from None
