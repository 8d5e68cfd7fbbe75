"""Deterministic serialisation and hashing: the same value always gives the same bytes."""

from __future__ import annotations

import hashlib
import json
from typing import Any


def canonical_json(value: Any) -> str:
    """JSON with sorted keys, no insignificant whitespace variance, and a trailing newline."""
    return json.dumps(value, sort_keys=True, indent=2, ensure_ascii=False, default=str) + "\n"


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def sha256_value(value: Any) -> str:
    """Hash of a JSON-serialisable value, independent of key order."""
    return sha256_text(json.dumps(value, sort_keys=True, separators=(",", ":"), default=str))
