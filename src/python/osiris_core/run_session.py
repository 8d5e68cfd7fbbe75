"""A run session's files besides the event log: `run_card.json` and `status.json`, and the masker of a run."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from osiris_core.canonical import canonical_json
from osiris_core.masking import Masker
from osiris_core.session import Session

if TYPE_CHECKING:
    from osiris_core.registry import Component
    from osiris_core.run_card import RunCard

RUN_CARD_FILE = "run_card.json"
STATUS_FILE = "status.json"


def registry_masker(components: Iterable[Component]) -> Masker:
    """A masker that knows every secret field `components` declare (a registry: every installed component's)."""
    return Masker(secret_keys={key for component in components for key in component.spec.secrets})


def write_card(session: Session, card: RunCard, masker: Masker) -> None:
    """`run_card.json` and `status.json`, masked."""
    card_json = masker.mask(card.model_dump(mode="json"))
    (session.path / RUN_CARD_FILE).write_text(canonical_json(card_json), encoding="utf-8")
    status = {"session_id": session.id, "status": card.status, "exit_code": card.exit_code,
              "error": card_json["error"]}
    (session.path / STATUS_FILE).write_text(canonical_json(status), encoding="utf-8")


def read_card(session_dir: Path) -> dict[str, Any]:
    return dict(json.loads((session_dir / RUN_CARD_FILE).read_text(encoding="utf-8")))
