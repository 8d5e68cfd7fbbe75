"""`delete_missing` and `hard_delete_column`: deletions a write applies by key, in the write's transaction.

Every statement reads the staged input (`source`, quoted) and changes the target (`target`, quoted), matching rows
on the primary key. `hard_delete_column` names a boolean input column: rows where it is true are deleted from the
target (or, under scd2, their current version is closed) and are never written. `delete_missing` (for full extracts)
deletes target rows whose key is not in the input (`hard`) or stamps `_osiris_deleted_at` on them (`soft`; a key
that reappears gets it cleared).
"""

from __future__ import annotations

from collections.abc import Sequence

from osiris_drivers.sql.dialect import Dialect

DELETED_AT = "_osiris_deleted_at"
"""The soft-delete stamp: when a key went missing from a full extract; NULL while it is present."""
SOURCE_ALIAS = "__osiris_src"
LIVE_ALIAS = "__osiris_live"


def key_match(dialect: Dialect, keys: Sequence[str], left: str, right: str) -> str:
    """`left.k = right.k AND …` (`left`, `right`: quoted table names or aliases)."""
    return " AND ".join(f"{left}.{dialect.quote_ident(k)} = {right}.{dialect.quote_ident(k)}" for k in keys)


def flagged(dialect: Dialect, flag: str, alias: str = SOURCE_ALIAS) -> str:
    """The staged row asks for its key's deletion."""
    return f"COALESCE({alias}.{dialect.quote_ident(flag)}, FALSE)"


def in_source(dialect: Dialect, target: str, source: str, keys: Sequence[str], condition: str = "") -> str:
    """`EXISTS (a staged row with the target row's key [and condition])`."""
    extra = f" AND {condition}" if condition else ""
    return (f"EXISTS (SELECT 1 FROM {source} AS {SOURCE_ALIAS} WHERE "
            f"{key_match(dialect, keys, SOURCE_ALIAS, target)}{extra})")


def live_source(dialect: Dialect, source: str, flag: str | None) -> str:
    """The staged rows that are written (all but those flagged for deletion), as a FROM item."""
    if flag is None:
        return source
    return f"(SELECT * FROM {source} AS {SOURCE_ALIAS} WHERE NOT {flagged(dialect, flag)}) AS {LIVE_ALIAS}"


def delete_flagged_sql(dialect: Dialect, target: str, source: str, keys: Sequence[str], flag: str) -> str:
    return f"DELETE FROM {target} WHERE {in_source(dialect, target, source, keys, flagged(dialect, flag))}"


def delete_missing_sql(dialect: Dialect, target: str, source: str, keys: Sequence[str]) -> str:
    return f"DELETE FROM {target} WHERE NOT {in_source(dialect, target, source, keys)}"


def soft_delete_sql(dialect: Dialect, target: str, source: str, keys: Sequence[str], at: str) -> str:
    column = f"{target}.{dialect.quote_ident(DELETED_AT)}"
    return (f"UPDATE {target} SET {dialect.quote_ident(DELETED_AT)} = {at} WHERE {column} IS NULL "
            f"AND NOT {in_source(dialect, target, source, keys)}")


def undelete_sql(dialect: Dialect, target: str, source: str, keys: Sequence[str], flag: str | None) -> str:
    """Clear the stamp of keys the input has again."""
    column = f"{target}.{dialect.quote_ident(DELETED_AT)}"
    written = f"NOT {flagged(dialect, flag)}" if flag else ""
    return (f"UPDATE {target} SET {dialect.quote_ident(DELETED_AT)} = NULL WHERE {column} IS NOT NULL "
            f"AND {in_source(dialect, target, source, keys, written)}")


def empty_input_refused(table: str, where: str, *, scd2: bool, delete_missing: str) -> tuple[str, str]:
    """The message and hint refusing `delete_missing` with an input without rows (it would remove every key)."""
    what = ("close the current version of every key" if scd2 else
            "delete every row" if delete_missing == "hard" else f"set {DELETED_AT} on every row")
    return (f"the input has no rows: delete_missing {delete_missing} would {what} of table {table} {where}; "
            "the write was refused and the table left unchanged",
            "an empty full extract is usually a failed one: check the source step; if the source really is empty, "
            "run without delete_missing and remove the rows yourself")


def describe_deletions(*, scd2: bool, delete_missing: str | None, flag: str | None) -> str:
    """What the deletion policies do, as `; …` parts of a dry run's detail ("" when none is set)."""
    parts = []
    if delete_missing:
        what = ("closes their current version" if scd2 else
                "deletes them" if delete_missing == "hard" else f"sets their {DELETED_AT}")
        parts.append(f"keys missing from the input: delete_missing {delete_missing} {what} (an input without rows "
                     "is refused)")
    if flag:
        parts.append(f"input rows with {flag} true: their keys " + ("closed" if scd2 else "deleted"))
    return "".join(f"; {p}" for p in parts)
