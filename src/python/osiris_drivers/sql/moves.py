"""The statements that move staged rows into the target for upsert and scd2, with the deletions the write's
policies ask for: one list, run in order in the write's transaction (the last one writes the rows)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from osiris_drivers.sql import deletes, scd2
from osiris_drivers.sql.dialect import Dialect

ROWS_DELETED = "rows_deleted"
"""Target rows deleted (hard) or stamped `_osiris_deleted_at` (soft) by `delete_missing` / `hard_delete_column`."""
ROWS_UNDELETED = "rows_undeleted"
"""Soft-deleted target rows whose key came back (their stamp cleared)."""
ROWS_CLOSED = "rows_closed"
"""scd2: current versions closed (changed, flagged for deletion, or missing from a full extract)."""


@dataclass(frozen=True)
class Move:
    sql: str
    metric: str | None
    """The metric its row count adds to; None: the rows written (the last move)."""


@dataclass(frozen=True)
class MoveSpec:
    """What the moves depend on."""

    mode: Literal["upsert", "scd2"]
    names: Sequence[str]
    """The columns written to the target."""
    keys: Sequence[str]
    delete_missing: Literal["hard", "soft"] | None
    flag: str | None
    at: str
    """The run's timestamp as a SQL literal."""


def moves(dialect: Dialect, spec: MoveSpec, target: str, source: str) -> list[Move]:
    keys, flag = spec.keys, spec.flag
    if spec.mode == "scd2":
        found = [Move(scd2.close_changed_sql(dialect, target, source, keys, spec.at, flag), ROWS_CLOSED)]
        if spec.delete_missing:
            found.append(Move(scd2.close_missing_sql(dialect, target, source, keys, spec.at), ROWS_CLOSED))
        found.append(Move(scd2.insert_versions_sql(dialect, target, source, spec.names, keys, spec.at, flag), None))
        return found
    found = []
    if flag:
        found.append(Move(deletes.delete_flagged_sql(dialect, target, source, keys, flag), ROWS_DELETED))
    if spec.delete_missing == "hard":
        found.append(Move(deletes.delete_missing_sql(dialect, target, source, keys), ROWS_DELETED))
    elif spec.delete_missing == "soft":
        found.append(Move(deletes.soft_delete_sql(dialect, target, source, keys, spec.at), ROWS_DELETED))
        found.append(Move(deletes.undelete_sql(dialect, target, source, keys, flag), ROWS_UNDELETED))
    merge = dialect.merge_sql(target, deletes.live_source(dialect, source, flag), spec.names, keys)
    return [*found, Move(merge, None)]
