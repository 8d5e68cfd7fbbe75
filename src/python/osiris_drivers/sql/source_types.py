"""A column's type as its source database declared it, carried in the Arrow field's metadata.

SQL extractors record what the database says about each column (`SourceType`), so a writer can recreate it:
exactly in the same family, through a documented table in another (`osiris_drivers.sql.type_map`). `KEYS` is
the only place the metadata keys are spelled; `with_source` writes them and `source_of` reads them back. An
Arrow field without them (CSV, DuckDB SQL results) is typed by its Arrow type alone. docs/types.md lists them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Literal

import pyarrow as pa

Family = Literal["postgresql", "mysql"]
FAMILIES: tuple[Family, ...] = ("postgresql", "mysql")
PREFIX = "osiris."
FAMILY, TYPE, NULLABLE, LENGTH = "osiris.family", "osiris.type", "osiris.nullable", "osiris.length"
PRECISION, SCALE, UNSIGNED, VALUES, ARRAY = "osiris.precision", "osiris.scale", "osiris.unsigned", "osiris.values", \
    "osiris.array"
KEYS = {
    FAMILY: "`postgresql` or `mysql`: whose type names `osiris.type` uses",
    TYPE: "the base type, lower case, as the family names it (`character varying`, `int`, `enum`, `json`)",
    NULLABLE: "`true` / `false` (NOT NULL); the Arrow field's `nullable` says the same",
    LENGTH: "characters (bytes for binary types) of a sized type; `1` marks MySQL's TINYINT(1)",
    PRECISION: "decimal digits; for time types the fractional-second digits",
    SCALE: "decimal scale",
    UNSIGNED: "`true` for MySQL's UNSIGNED integers and decimals",
    VALUES: "the labels of an enum or set, as a JSON list",
    ARRAY: "PostgreSQL array dimensions (`osiris.type` is then the element's)",
}
"""Every metadata key and what its value means."""


@dataclass(frozen=True)
class SourceType:
    """One column's declared type in its source database."""

    family: Family
    type: str
    """The base type, lower case: `integer`, `character varying`, `timestamp without time zone`, `enum`."""
    nullable: bool = True
    length: int | None = None
    precision: int | None = None
    """Decimal digits; for time types the fractional-second digits."""
    scale: int | None = None
    unsigned: bool = False
    values: tuple[str, ...] = ()
    """Enum / set labels."""
    array: int = 0
    """PostgreSQL array dimensions (`type` is the element's)."""

    def metadata(self) -> dict[str, str]:
        """The Arrow field metadata that carries this type."""
        meta = {FAMILY: self.family, TYPE: self.type, NULLABLE: _flag(self.nullable)}
        for key, value in ((LENGTH, self.length), (PRECISION, self.precision), (SCALE, self.scale)):
            if value is not None:
                meta[key] = str(value)
        if self.unsigned:
            meta[UNSIGNED] = "true"
        if self.values:
            meta[VALUES] = json.dumps(list(self.values), ensure_ascii=False)
        if self.array:
            meta[ARRAY] = str(self.array)
        return meta

    def relaxed(self) -> SourceType:
        """The same type without NOT NULL."""
        return replace(self, nullable=True)


def _flag(value: bool) -> str:
    return "true" if value else "false"


def with_source(field: pa.Field, source: SourceType | None) -> pa.Field:
    """`field` carrying `source` in its metadata (and nullable as the source says); `None` leaves it as is."""
    if source is None:
        return field
    kept = {k: v for k, v in (field.metadata or {}).items() if not k.startswith(PREFIX.encode())}
    return field.with_metadata({**kept, **source.metadata()}).with_nullable(source.nullable)


def source_of(field: pa.Field) -> SourceType | None:
    """The source type `field` carries, or None (no metadata, or metadata this version cannot read)."""
    raw = field.metadata or {}
    meta = {k.decode("utf-8", "replace"): v.decode("utf-8", "replace") for k, v in raw.items()}
    family, base = meta.get(FAMILY), meta.get(TYPE)
    if family not in FAMILIES or not base:
        return None
    try:
        values = tuple(str(v) for v in json.loads(meta[VALUES])) if VALUES in meta else ()
        return SourceType(
            family=family, type=base, nullable=meta.get(NULLABLE, "true") != "false" and field.nullable,
            length=_number(meta.get(LENGTH)), precision=_number(meta.get(PRECISION)), scale=_number(meta.get(SCALE)),
            unsigned=meta.get(UNSIGNED) == "true", values=values, array=_number(meta.get(ARRAY)) or 0)
    except (ValueError, TypeError):
        return None


def _number(text: str | None) -> int | None:
    return None if text is None else int(text)

