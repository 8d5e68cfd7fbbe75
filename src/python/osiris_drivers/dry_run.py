"""`osiris run --dry-run`: what one step would read and write, found with read-only look-ups.

A component says it itself through the driver's `plan` hook (`osiris_core.driver.Driver.plan`); otherwise its
connection family does (`osiris_drivers.catalog.FamilyCatalog.plan`): the SQL writers' own plan on a read-only
look-up of the target (`TableWriter.dry_run`), the extractors' `LIMIT 0` probe, the CSV files' existence and
header. Failures are the step's `DriverError`s, in the family's words, as the run would raise them.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from osiris_core.driver import DriverConfig, StepContext, StepPlan
from osiris_core.errors import DriverError, OsirisError
from osiris_core.registry import Component
from osiris_drivers.connection import ConnectionSettings, one_line
from osiris_drivers.registry import family_catalogs

logger = logging.getLogger("osiris.dry_run")


def _ignore(*args: Any) -> None:
    """A dry run reports no metric and no event."""


def plan_context(step_id: str, *, full_refresh: bool = False) -> StepContext:
    """The context a planning step gets: no session, no artifacts folder, nothing recorded."""
    return StepContext(session_id="dry-run", artifacts_dir=Path(os.devnull), logger=logger.getChild(step_id),
                       emit_metric=_ignore, emit_event=_ignore, full_refresh=full_refresh)


def plan_step(step_id: str, component: Component, config: DriverConfig,
              input_columns: tuple[str, ...] | None, *, full_refresh: bool = False) -> StepPlan | None:
    """The step's plan (None: neither the component nor its family says); `input_columns` are its single input's
    columns when the step before said them; `full_refresh`: a writer under an incremental read in a
    `--full-refresh` run (it plans the write the run would do then)."""
    try:
        own = component.driver().plan(step_id=step_id, config=config, input_columns=input_columns)
    except OsirisError:
        raise
    except Exception as exc:  # a component's hook must explain its errors; never show a traceback regardless
        raise DriverError(f"planning failed: {type(exc).__name__}: {one_line(exc)}", step_id=step_id) from None
    if own is not None or not isinstance(config, ConnectionSettings):
        return own
    catalog = family_catalogs().get(config.family)
    if catalog is None:
        return None
    try:
        return catalog.plan(step_id, config, input_columns, plan_context(step_id, full_refresh=full_refresh))
    except OsirisError:
        raise
    except Exception as exc:
        raise config.failure(exc, step_id=step_id, role="check") from None
