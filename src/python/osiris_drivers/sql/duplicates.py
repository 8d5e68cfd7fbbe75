"""Duplicate keys in an upsert's input, settled on the staged rows before anything reaches the target.

By default a key that appears on more than one input row fails the write before the merge, naming one such key
(keys are data, not secrets): a database would otherwise keep an arbitrary row (MySQL: the last one merged, while
counting every row as written) or refuse mid-merge (PostgreSQL: `ON CONFLICT … cannot affect row a second time`).
Where the merge itself refuses a key twice (`Dialect.MERGE_REFUSES_DUPLICATE_KEYS`: every staged row reaches an
`ON CONFLICT DO UPDATE`), the writer runs it in a savepoint and looks for the key only once it failed — one pass
over the stage less on every clean write; the error and the untouched target are the same.
With `dedupe: keep_last` the stage keeps only the last row of each key in input order — the staged rows' order
column says which (MySQL: an AUTO_INCREMENT ordinal filled as rows load; PostgreSQL: `ctid` of a freshly loaded
table; DuckDB: `rowid`) — so memory stays bounded whatever the input size: the database does the work.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal

from osiris_core.errors import DriverError
from osiris_drivers.sql.dialect import Dialect

Dedupe = Literal["keep_last"]
ORDINAL_COLUMN = "_osiris_ord"
"""The staging column that numbers rows in input order where the database has no physical order (MySQL)."""
_SHOWN_CHARS = 80


def first_duplicate_sql(dialect: Dialect, source: str, keys: Sequence[str]) -> str:
    """One key value that more than one row of `source` has (no row: none)."""
    columns = dialect.column_list(keys)
    return f"SELECT {columns} FROM {source} GROUP BY {columns} HAVING count(*) > 1 LIMIT 1"


def keep_last_sql(dialect: Dialect, stage: str, keys: Sequence[str], order: Sequence[str]) -> str:
    """Delete every row of `stage` that a later row with the same key replaces. `order` ranks rows in input order
    (its last item also identifies a row: MySQL's ordinal, `ctid`, `rowid`); one sort, no self-join."""
    identity = order[-1]
    partition = dialect.column_list(keys)
    ranking = ", ".join(f"{o} DESC" for o in order)
    return (f"DELETE FROM {stage} WHERE {identity} IN (SELECT {identity} FROM (SELECT {identity}, ROW_NUMBER() "
            f"OVER (PARTITION BY {partition} ORDER BY {ranking}) AS _osiris_rank FROM {stage}) ranked "
            "WHERE _osiris_rank > 1)")


def describe_key(keys: Sequence[str], values: Sequence[Any]) -> str:
    """`id = 7` / `(a, b) = (1, 'x')`, long values cut."""
    shown = [_shown(v) for v in values]
    if len(keys) == 1:
        return f"{keys[0]} = {shown[0]}"
    return f"({', '.join(keys)}) = ({', '.join(shown)})"


def _shown(value: Any) -> str:
    text = "NULL" if value is None else repr(value.decode("utf-8", "replace") if isinstance(value, bytes) else value)
    return text if len(text) <= _SHOWN_CHARS else text[:_SHOWN_CHARS] + "…"


def settle_duplicates(*, step_id: str, dialect: Dialect, stage: str, keys: Sequence[str], dedupe: Dedupe | None,
                      order: Sequence[str], query_row: Callable[[str], Sequence[Any] | None],
                      execute: Callable[[str], int]) -> int:
    """Refuse duplicate keys in `stage` (a DriverError naming one), or with keep_last delete all but the last row
    of each key; the rows deleted."""
    if dedupe == "keep_last":
        return execute(keep_last_sql(dialect, stage, keys, order))
    row = query_row(first_duplicate_sql(dialect, stage, keys))
    if row is None:
        return 0
    raise DriverError(f"more than one input row has the key {describe_key(keys, row)}: nothing was written",
                      step_id=step_id, hint="remove the duplicates upstream, or set dedupe: keep_last to keep the "
                                            "last row of each key in input order")
