"""`write_mode: scd2`: the target keeps every version of each key (slowly changing dimension, type 2).

The writer's columns: `_osiris_valid_from` (when the version became current: one timestamp per run, UTC, µs),
`_osiris_valid_to` (when it stopped; NULL = current) and `_osiris_row_hash` (SHA-256 over the non-key columns,
computed from the Arrow input, so the same input hashes alike for every database and however it was read: widths
and units are made one before hashing). One run, in one transaction:

1. the current version of a key whose hash changed (or that the input flags for deletion) is closed;
2. with `delete_missing` (either value), the current version of a key absent from the input is closed;
3. a new current version is inserted for each input key without one (new keys and the keys closed in 1).

Unchanged rows create no version; history is never deleted; a created table's primary key is the key plus
`_osiris_valid_from`, and where the dialect allows, a partial unique index keeps exactly one current row per key.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence

import pyarrow as pa
import pyarrow.compute as pc

from osiris_core.driver import ArrowData
from osiris_drivers.sql.deletes import SOURCE_ALIAS, flagged, in_source, key_match
from osiris_drivers.sql.dialect import Dialect

VALID_FROM = "_osiris_valid_from"
VALID_TO = "_osiris_valid_to"
ROW_HASH = "_osiris_row_hash"
COLUMNS = (VALID_FROM, VALID_TO, ROW_HASH)
CURRENT_INDEX_SUFFIX = "__osiris_current"
_SEPARATOR = "\x1f"
_NULL = "-"
"""A NULL's encoding; a value is `<length>:<text>`, so no value (and no run of values) reads like another."""


def _canonical(values: pa.Array) -> pa.Array:
    """Equal values read as different widths or units as one type, so a source read another way (ms vs µs, `real`
    as float32 vs float64) hashes alike: timestamps and times in µs (ns only where a value holds more), floats as
    float64, dates as date32. A decimal's scale is kept: a changed scale is a changed column type."""
    kind = values.type
    try:
        if pa.types.is_timestamp(kind) and kind.unit != "us":
            return values.cast(pa.timestamp("us", kind.tz))  # safe casts: sub-µs digits raise and stay as they are
        if pa.types.is_time(kind) and kind.unit != "us":
            return values.cast(pa.time64("us"))
        if pa.types.is_floating(kind) and kind != pa.float64():
            return values.cast(pa.float64())
        if pa.types.is_date64(kind):
            return values.cast(pa.date32())
    except pa.ArrowInvalid:
        pass
    return values


def _text(column: pa.ChunkedArray | pa.Array) -> pa.Array:
    """A column as canonical text (Arrow's own cast where it has one, else JSON), each value as `<length>:<text>`
    and NULL as `-`: the encoding is injective, so NULL, '', 'NULL' and values holding any separator all differ."""
    values = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if pa.types.is_dictionary(values.type):
        values = values.dictionary_decode()
    values = _canonical(values)
    if pa.types.is_binary(values.type) or pa.types.is_large_binary(values.type) or \
            pa.types.is_fixed_size_binary(values.type):
        text = pa.array([None if v is None else v.hex() for v in values.to_pylist()], pa.string())
    else:
        try:
            text = values.cast(pa.string())
        except (pa.ArrowNotImplementedError, pa.ArrowInvalid):
            text = pa.array([None if v is None else json.dumps(v, sort_keys=True, default=str)
                             for v in values.to_pylist()], pa.string())
    framed = pc.binary_join_element_wise(pc.cast(pc.utf8_length(text), pa.string()), text, ":")
    filled: pa.Array = pc.fill_null(framed, _NULL)
    return filled


def row_hashes(batch: pa.RecordBatch, columns: Sequence[str]) -> pa.Array:
    """SHA-256 (hex) of each row's `columns` (sorted by name; each value framed as canonical text, NULL distinct)."""
    names = sorted(columns)
    if not names:
        return pa.array([hashlib.sha256(b"").hexdigest()] * batch.num_rows, pa.string())
    parts = [_text(batch.column(name)) for name in names]
    joined = pc.binary_join_element_wise(*parts, "") if len(parts) > 1 else parts[0]
    prefix = hashlib.sha256(_SEPARATOR.join(names).encode("utf-8") + b"\n")
    hashes = []
    for value in joined.cast(pa.binary()).to_pylist():  # bytes as they are: no str made and encoded again
        digest = prefix.copy()
        digest.update(value)
        hashes.append(digest.hexdigest())
    return pa.array(hashes, pa.string())


def with_row_hash(data: ArrowData, columns: Sequence[str]) -> ArrowData:
    """The input with `_osiris_row_hash` appended, computed batch by batch (a stream stays a stream)."""
    schema = data.schema.append(pa.field(ROW_HASH, pa.string()))

    def hashed() -> Iterator[pa.RecordBatch]:
        for batch in data.to_batches() if isinstance(data, pa.Table) else data:
            yield pa.RecordBatch.from_arrays([*batch.columns, row_hashes(batch, columns)], schema=schema)

    if isinstance(data, pa.Table):
        return pa.Table.from_batches(list(hashed()), schema=schema)
    return pa.RecordBatchReader.from_batches(schema, hashed())


def current_index_sql(dialect: Dialect, table: str, index: str, keys: Sequence[str]) -> str:
    """A unique index on the key over current rows only (where `PARTIAL_UNIQUE_INDEX`)."""
    return (f"CREATE UNIQUE INDEX {dialect.quote_ident(index)} ON {table} ({dialect.column_list(keys)}) "
            f"WHERE {dialect.quote_ident(VALID_TO)} IS NULL")


def close_changed_sql(dialect: Dialect, target: str, source: str, keys: Sequence[str], at: str,
                      flag: str | None) -> str:
    """Close the current version of keys whose input row differs (or is flagged for deletion)."""
    # A current row without a hash (loaded by hand, e.g. history migrated into the table) counts as changed:
    # compared with <> alone it never closed, and every later change of its key was silently ignored.
    stored = f"{target}.{dialect.quote_ident(ROW_HASH)}"
    changed = f"({stored} IS NULL OR {SOURCE_ALIAS}.{dialect.quote_ident(ROW_HASH)} <> {stored})"
    if flag:
        changed = f"({changed} OR {flagged(dialect, flag)})"
    current = f"{target}.{dialect.quote_ident(VALID_TO)} IS NULL"
    return (f"UPDATE {target} SET {dialect.quote_ident(VALID_TO)} = {at} "
            f"WHERE {current} AND {in_source(dialect, target, source, keys, changed)}")


def close_missing_sql(dialect: Dialect, target: str, source: str, keys: Sequence[str], at: str) -> str:
    current = f"{target}.{dialect.quote_ident(VALID_TO)} IS NULL"
    return (f"UPDATE {target} SET {dialect.quote_ident(VALID_TO)} = {at} "
            f"WHERE {current} AND NOT {in_source(dialect, target, source, keys)}")


def insert_versions_sql(dialect: Dialect, target: str, source: str, names: Sequence[str], keys: Sequence[str],
                        at: str, flag: str | None) -> str:
    """Insert a current version for every (unflagged) input key that has none now."""
    current = "__osiris_cur"
    selected = ", ".join(f"{SOURCE_ALIAS}.{dialect.quote_ident(n)}" for n in names)
    condition = (f"NOT EXISTS (SELECT 1 FROM {target} AS {current} WHERE "
                 f"{key_match(dialect, keys, current, SOURCE_ALIAS)} AND {current}.{dialect.quote_ident(VALID_TO)} "
                 "IS NULL)")
    if flag:
        condition = f"NOT {flagged(dialect, flag)} AND {condition}"
    return (f"INSERT INTO {target} ({dialect.column_list([*names, VALID_FROM, VALID_TO])}) "
            f"{dialect.INSERT_OVERRIDING}SELECT {selected}, {at}, NULL FROM {source} AS {SOURCE_ALIAS} "
            f"WHERE {condition}")
