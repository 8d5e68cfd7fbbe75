"""`osiris connections doctor`: one real round trip per connection, with a masked, actionable verdict.

The check is the family's own (`ConnectionSettings.check`, found through `registry.connection_families`); every
failure is translated by the family (`ConnectionSettings.explain`), so no verdict shows a raw library error.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from osiris_core.errors import OsirisError
from osiris_core.masking import Masker, masked_logging
from osiris_drivers.registry import connection_families


@dataclass(frozen=True)
class Verdict:
    reference: str
    ok: bool
    message: str


def check_connection(reference: str, family: str, fields: Mapping[str, Any]) -> Verdict:
    """Run the family's check; its verdict, and anything a library logs meanwhile, masked with the connection's
    secrets (secret-named fields whole, credentials inside any URL-valued field)."""
    families = connection_families()
    settings_class = families.get(family)
    if settings_class is None:
        return Verdict(reference, False, f"no check for family '{family}' (known: {sorted(families)})")
    masker = Masker(secret_keys=settings_class.secret_fields)
    masker.add_connection_fields(fields, settings_class.secret_fields)
    with masked_logging(masker):
        try:
            settings = settings_class.from_connection(fields)
            return Verdict(reference, True, masker.mask(settings.doctor()))
        except OsirisError as exc:
            return Verdict(reference, False, masker.mask(exc.render()))
        except Exception as exc:  # a family's check must explain its errors; never show a traceback regardless
            return Verdict(reference, False, masker.mask(" ".join(f"{type(exc).__name__}: {exc}".split())))
