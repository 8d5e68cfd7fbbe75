"""Load markers: whether a load's transaction committed, known for sure after its answer was lost.

A finalize over HTTP SQL can time out at the gateway or in pg-meta while PostgreSQL goes on and commits; a
psycopg2 connection can drop during COMMIT. Each load therefore inserts a row keyed by its load id into
`<schema>._osiris_loads` as the *first* statement of its transaction (and records its row count in the last).
After an ambiguous failure the writer fences: it inserts the same id marked not committed, `ON CONFLICT DO
NOTHING`, and reads the row back. PostgreSQL makes that insert wait while the load's transaction is still
running, so the answer is final: the load's own row (committed, with its rows) or the fence's (the load did not
commit, and never can: its marker insert would now conflict).

The table is created once (row-level security on, no policy, revoked from `anon`/`authenticated`: the Data API
cannot read it); each load deletes the rows older than `KEEP_DAYS`. A user who may not create or write it loads
without a marker (`ensure` says so), and a lost answer then stays unknown.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from osiris_drivers.postgres.dialect import POSTGRES, quote_literal
from osiris_drivers.sql.dialect import TableName

MARKER_TABLE = "_osiris_loads"
KEEP_DAYS = 30
FENCE_ATTEMPTS = 4
FENCE_DELAY_S = 2.0

RunSql = Callable[[str], list[dict[str, Any]]]
"""Runs `;`-separated statements in one transaction; the rows of the last."""


@dataclass(frozen=True)
class Outcome:
    """What became of a load: `committed` None when even the fence could not run."""

    committed: bool | None
    rows: int = 0


@dataclass(frozen=True)
class LoadMarker:
    """The marker of one load into `target`."""

    schema: str
    target: str
    load_id: str = field(default_factory=lambda: uuid.uuid4().hex)

    @property
    def table(self) -> str:
        return POSTGRES.qualified(TableName(self.schema, MARKER_TABLE))

    def _where(self) -> str:
        return f"load_id = {quote_literal(self.load_id)}"

    def exists_sql(self) -> str:
        """One row: `present` (the marker table exists) and `usable` (this user may write and read it)."""
        table = f"to_regclass({quote_literal(self.table)})"
        return (f"SELECT {table} IS NOT NULL AS present, CASE WHEN {table} IS NULL THEN false ELSE "
                f"has_table_privilege({table}, 'SELECT, INSERT, UPDATE, DELETE') END AS usable")

    def create_sql(self, private: list[str]) -> list[str]:
        """Create the table (and its schema, which the load creates anyway when it is missing) in one transaction,
        `private` being the statements that keep it from the Data API."""
        return [f"CREATE SCHEMA IF NOT EXISTS {POSTGRES.quote_ident(self.schema)}",
                f"CREATE TABLE IF NOT EXISTS {self.table} (load_id TEXT PRIMARY KEY, target TEXT NOT NULL, "
                "committed BOOLEAN NOT NULL, rows BIGINT, at TIMESTAMPTZ NOT NULL DEFAULT now())",
                f"ALTER TABLE {self.table} ENABLE ROW LEVEL SECURITY", *private]

    def begin_sql(self) -> list[str]:
        """The load transaction's first statements: its marker, and old markers pruned."""
        return [f"INSERT INTO {self.table} (load_id, target, committed) "
                f"VALUES ({quote_literal(self.load_id)}, {quote_literal(self.target)}, true)",
                f"DELETE FROM {self.table} WHERE at < now() - interval '{KEEP_DAYS} days'"]

    def rows_sql(self, rows: int) -> str:
        return f"UPDATE {self.table} SET rows = {int(rows)} WHERE {self._where()}"

    def counted_sql(self, insert: str, extra: str = "") -> str:
        """`insert`, its row count recorded on the marker and returned as `rows` (the load's last statement), with
        the `extra` select items."""
        return (f"WITH written AS ({insert} RETURNING 1), counted AS (SELECT count(*) AS rows FROM written), "
                f"marked AS (UPDATE {self.table} SET rows = counted.rows FROM counted WHERE {self._where()} "
                f"RETURNING 1) SELECT rows{extra} FROM counted")

    def fence_sql(self) -> str:
        """Settle the outcome (waits for a load transaction still running) and read it: `committed`, `rows`."""
        return (f"INSERT INTO {self.table} (load_id, target, committed) VALUES ({quote_literal(self.load_id)}, "
                f"{quote_literal(self.target)}, false) ON CONFLICT (load_id) DO NOTHING;\n"
                f"SELECT committed, rows FROM {self.table} WHERE {self._where()}")

    def ensure(self, run: RunSql, private: list[str]) -> bool:
        """Create the marker table if missing (once, in a transaction of its own); whether this user can use it.
        Failing to create it raises."""
        state = run(self.exists_sql())
        if not _flag(state, "present"):
            try:
                run(";\n".join(self.create_sql(private)))
            except Exception:
                state = run(self.exists_sql())
                if not _flag(state, "present"):  # not created concurrently by another load either
                    raise
            else:
                state = run(self.exists_sql())
        return _flag(state, "usable")

    def resolve(self, run: RunSql, *, attempts: int = FENCE_ATTEMPTS, delay_s: float = FENCE_DELAY_S,
                sleep: Callable[[float], None] = time.sleep) -> Outcome:
        """Fence and read the outcome; `Outcome(None)` when the fence itself keeps failing."""
        for attempt in range(attempts):
            try:
                rows = run(self.fence_sql())
            except Exception:
                if attempt + 1 < attempts:
                    sleep(delay_s)
                continue
            if rows:
                return Outcome(bool(rows[-1]["committed"]), int(rows[-1]["rows"] or 0))
        return Outcome(None)


def _flag(rows: list[dict[str, Any]], name: str) -> bool:
    return bool(rows and rows[-1].get(name))
