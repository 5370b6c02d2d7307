"""A batch's progress: its items per job status, with `total` and `done` (succeeded + failed)."""

from __future__ import annotations

import uuid

from sqlalchemy.orm import Session

from service.store import repositories as repo
from service.store.models import JobStatus

STATES = ("pending", *(s.value for s in JobStatus))
"""`pending`: an item not yet given a job; then every job status."""


def batch_counts(session: Session, batch_id: uuid.UUID) -> dict[str, int]:
    """Items per state (every state present, zero or not), plus `total` and `done`."""
    by_status = repo.batch_status_counts(session, batch_id)
    counts = {state: by_status.get(state, 0) for state in STATES}
    counts["total"] = sum(by_status.values())
    counts["done"] = counts[JobStatus.SUCCEEDED.value] + counts[JobStatus.FAILED.value]
    return counts
