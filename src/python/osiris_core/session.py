"""Session directories under `logs/`: `compile_<ts>/` and `run_<ts>/`, and the last-compile pointer."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from osiris_core.errors import InputError
from osiris_core.input_files import MAX_POINTER_BYTES, read_regular_text

LAST_COMPILE_FILE = "last_compile"


@dataclass(frozen=True)
class Session:
    id: str
    path: Path


def new_session(logs_dir: Path, kind: str) -> Session:
    """Create `logs_dir/<kind>_<UTC timestamp>` (with a numeric suffix if that name is taken)."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S_%fZ")
    logs_dir.mkdir(parents=True, exist_ok=True)
    name = f"{kind}_{stamp}"
    for attempt in range(1000):
        candidate = logs_dir / (name if attempt == 0 else f"{name}_{attempt}")
        try:
            candidate.mkdir()
        except FileExistsError:
            continue
        return Session(id=candidate.name, path=candidate)
    raise InputError(f"cannot create a session directory under {logs_dir}", hint="clean up old sessions")


def record_last_compile(logs_dir: Path, manifest_path: Path) -> None:
    pointer = logs_dir / LAST_COMPILE_FILE
    tmp = pointer.with_suffix(".tmp")
    tmp.write_text(str(manifest_path.resolve()) + "\n", encoding="utf-8")
    os.replace(tmp, pointer)


def last_compile(logs_dir: Path) -> Path:
    pointer = logs_dir / LAST_COMPILE_FILE
    if not pointer.exists():
        raise InputError(f"no compile recorded in {logs_dir}", hint="run `osiris compile PIPELINE.yaml` first")
    manifest = Path(read_regular_text(pointer, limit=MAX_POINTER_BYTES, what="last-compile pointer").strip())
    if not manifest.is_file():
        raise InputError(f"the last compile ({manifest}) no longer exists", hint="run `osiris compile` again")
    return manifest


def list_sessions(logs_dir: Path) -> list[Path]:
    """Session directories, newest first."""
    if not logs_dir.is_dir():
        return []
    sessions = [p for p in logs_dir.iterdir() if p.is_dir() and p.name.split("_", 1)[0] in {"compile", "run"}]
    return sorted(sessions, key=lambda p: p.name.split("_", 1)[1], reverse=True)
