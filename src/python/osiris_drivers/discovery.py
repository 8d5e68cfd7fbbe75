"""`osiris discover`: what a connection holds, listed by its family's catalog (`osiris_drivers.catalog`, found
through `registry.family_catalogs`), every failure in the family's words and masked, as the doctor's verdicts."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from osiris_core.errors import InputError, OsirisError
from osiris_core.masking import Masker, masked_logging
from osiris_drivers.catalog import Catalog
from osiris_drivers.connection import ConnectionFailed, Problem
from osiris_drivers.registry import family_catalogs


def discover_connection(reference: str, family: str, fields: Mapping[str, Any], schema: str | None) -> Catalog:
    """The relations of `schema` behind the resolved connection `fields` (read-only).

    Bad fields, schemas or references are `InputError`s (exit 2); a server that cannot be reached or refuses is
    a `ConnectionFailed` (exit 1). Messages start with `reference` and hold no secret of the connection."""
    catalogs = family_catalogs()
    catalog = catalogs.get(family)
    if catalog is None:
        raise InputError(f"{reference}: no discovery for connection family '{family}'",
                         hint=f"families with discovery: {', '.join(sorted(catalogs))}")
    settings_class = catalog.settings
    masker = Masker(secret_keys=settings_class.secret_fields)
    masker.add_connection_fields(fields, settings_class.secret_fields)

    def bad_input(exc: InputError) -> InputError:
        return InputError(masker.mask(f"{reference}: {exc.message}"), location=exc.location,
                          hint=masker.mask(exc.hint) if exc.hint else None)

    def failed(problem: Problem) -> ConnectionFailed:
        return ConnectionFailed(Problem(masker.mask(f"{reference}: {problem.message}"), masker.mask(problem.hint),
                                        problem.transient))

    with masked_logging(masker):
        try:
            settings = settings_class.from_connection(fields)
        except InputError as exc:
            raise bad_input(exc) from None
        try:
            return catalog.discover(settings, schema)
        except InputError as exc:
            raise bad_input(exc) from None
        except OsirisError as exc:
            raise failed(Problem(exc.message, exc.hint or "", exc.transient)) from None
        except Exception as exc:
            raise failed(settings.explain(exc, "check")) from None
