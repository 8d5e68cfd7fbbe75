"""What a connection holds, and what a step would do to it: the family contract behind `osiris discover` and
`osiris run --dry-run`.

Each family's `discover.py` has one `FamilyCatalog` (listed in `osiris_drivers.registry.BUILTIN_CATALOGS`):

- `discover(settings, schema)`: the tables and views (or files) of one schema, with row estimates and their
  columns (type as the database names it, nullability, primary key), by read-only catalog queries;
- `extractor(reference, settings, relation)`: the step that reads one of them (`discover --emit-pipeline`);
- `plan(step_id, config, input_columns, ctx)`: a step of one of the family's components, planned with
  read-only look-ups (SQL writers through `osiris_drivers.sql.writer.TableWriter.dry_run`), or None.

Client errors propagate; `osiris_drivers.discovery` and `osiris_drivers.dry_run` explain them in the family's
words (`ConnectionSettings.explain`), masked.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, Literal, TypeVar

from osiris_core.driver import DriverConfig, StepContext, StepPlan
from osiris_core.errors import InputError
from osiris_drivers.connection import ConnectionSettings

RelationKind = Literal["table", "view", "file"]
SettingsT = TypeVar("SettingsT", bound=ConnectionSettings)


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    """The type as the database names it (`varchar(50)`, `integer`, `TIMESTAMP WITH TIME ZONE`; Arrow's for
    CSV files)."""
    nullable: bool | None
    """For CSV files: whether the sample held an empty value."""
    primary_key: bool = False


@dataclass(frozen=True)
class Relation:
    """A table, a view or a file."""

    name: str
    kind: RelationKind
    columns: tuple[Column, ...]
    target: str
    """Its credential-free URI (`osiris_core.targets`), as steps report it."""
    schema: str | None = None
    """The schema (MySQL: the database) it lives in; None for files."""
    rows: int | None = None
    """An estimate (the database's statistics; CSV files: extrapolated from the sample); None if unknown."""
    note: str | None = None
    """Why the columns are missing or partial (a file that could not be parsed)."""
    path: str | None = None
    """Files: the path as discovered."""

    def as_json(self) -> dict[str, Any]:
        return {"schema": self.schema, "name": self.name, "kind": self.kind, "rows": self.rows,
                "target": self.target, "note": self.note,
                "columns": [{"name": c.name, "type": c.type, "nullable": c.nullable, "primary_key": c.primary_key}
                            for c in self.columns]}


@dataclass(frozen=True)
class Catalog:
    """What `discover` found behind one connection."""

    location: str
    """The database or folder, as a credential-free URI."""
    schema: str | None
    """The schema listed (None: files, which have none)."""
    schemas: tuple[str, ...]
    """Every schema the connection can see (so another can be asked for with --schema)."""
    relations: tuple[Relation, ...]


class FamilyCatalog(ABC, Generic[SettingsT]):
    """A family's discovery and dry-run plans."""

    settings: ClassVar[type[ConnectionSettings]]
    """The family's settings class (its `family` names it in `@family.alias`)."""

    @abstractmethod
    def discover(self, settings: SettingsT, schema: str | None) -> Catalog:
        """The relations of `schema` (None: the schema the family's steps use by default), read-only."""

    @abstractmethod
    def extractor(self, reference: str, settings: SettingsT, relation: Relation) -> tuple[str, dict[str, Any]]:
        """The component and step config that read all of `relation` (one it listed) through `reference`."""

    def plan(self, step_id: str, config: DriverConfig, input_columns: tuple[str, ...] | None,
             ctx: StepContext) -> StepPlan | None:
        """A step of one of the family's components, planned read-only; None: nothing to say about it."""
        return None


def choose_schema(schema: str | None, default: str, known: Sequence[str], where: str) -> str:
    """`schema` (or `default`) if the connection can see it; an InputError naming the schemas it can see."""
    chosen = default if schema is None else schema
    if chosen not in known:
        raise InputError(f"schema '{chosen}' does not exist {where}, or the connection cannot see it",
                         hint=f"schemas: {', '.join(known) or 'none'}; pass one with --schema")
    return chosen
