"""The run card: the per-step summary of a run, identical in shape for local and remote runs."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

StepStatus = Literal["succeeded", "failed", "skipped"]
RunStatus = Literal["succeeded", "failed", "interrupted"]
"""interrupted: stopped by SIGINT/SIGTERM (`osiris_core.interrupts`); the error names the writes that had committed."""


class IncrementalCard(BaseModel):
    """An incremental extractor's read: the cursor before and after the run, and the rows read."""

    model_config = ConfigDict(extra="forbid")

    cursor_before: str | None = None
    """Where the read started (typed JSON text); null: the whole source."""
    cursor_after: str | None = None
    """The cursor committed with the rows; null: none committed."""
    rows_read: int | None = None
    full_refresh: bool = False


class StepCard(BaseModel):
    model_config = ConfigDict(extra="forbid")

    step_id: str
    component: str
    driver: str
    status: StepStatus
    rows_in: int | None = None
    rows_out: int | None = None
    duration_ms: int | None = None
    error: str | None = None
    error_type: str | None = None
    output_sha256: str | None = None
    """Checksum of the step's output rows (runs with checksums on, e.g. `osiris parity`)."""
    attempts: int | None = None
    """How many times the step ran: 1, or more when its `retries` policy ran it again; null when skipped."""
    incremental: IncrementalCard | None = None
    """Set for an incremental extractor."""


class RunCard(BaseModel):
    model_config = ConfigDict(extra="forbid")

    session_id: str
    pipeline: str
    status: RunStatus
    exit_code: int
    duration_ms: int
    driver_code_sha256: str
    manifest_driver_code_sha256: str
    error: str | None = None
    steps: list[StepCard]
    execution: dict[str, Any] = Field(default_factory=lambda: {"mode": "local"})
    """Where the steps ran; a sandbox run adds backend, bundle sha256 and both sides' fingerprints."""

    def summary(self) -> dict[str, Any]:
        counts: dict[str, int] = {"succeeded": 0, "failed": 0, "skipped": 0}
        for step in self.steps:
            counts[step.status] += 1
        return counts
