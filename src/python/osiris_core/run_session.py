"""What every run does around its steps, local or in a sandbox: a session with its event log, and the card."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from osiris_core.canonical import canonical_json
from osiris_core.events import EventListener, EventLog
from osiris_core.masking import Masker
from osiris_core.registry import ComponentRegistry
from osiris_core.run_card import RunCard
from osiris_core.session import Session, new_session

RUN_CARD_FILE = "run_card.json"
STATUS_FILE = "status.json"


def registry_masker(registry: ComponentRegistry) -> Masker:
    """A masker that knows every secret field the installed components declare."""
    return Masker(secret_keys={key for component in registry for key in component.spec.secrets})


@contextmanager
def run_session(logs_dir: Path, masker: Masker, listeners: tuple[EventListener, ...]) -> Iterator[
        tuple[Session, EventLog]]:
    """A new `run_<ts>` session and its event log (listeners subscribed), closed on exit."""
    session = new_session(logs_dir, "run")
    log = EventLog(session.path, session.id, masker)
    for listener in listeners:
        log.subscribe(listener)
    try:
        yield session, log
    finally:
        log.close()


def write_card(session: Session, card: RunCard, masker: Masker) -> None:
    """`run_card.json` and `status.json`, masked."""
    card_json = masker.mask(card.model_dump(mode="json"))
    (session.path / RUN_CARD_FILE).write_text(canonical_json(card_json), encoding="utf-8")
    status = {"session_id": session.id, "status": card.status, "exit_code": card.exit_code,
              "error": card_json["error"]}
    (session.path / STATUS_FILE).write_text(canonical_json(status), encoding="utf-8")


def read_card(session_dir: Path) -> dict[str, Any]:
    return dict(json.loads((session_dir / RUN_CARD_FILE).read_text(encoding="utf-8")))
