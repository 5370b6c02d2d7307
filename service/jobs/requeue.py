"""What a run that did not succeed becomes: queued again (a new outbox row, after a backoff) or failed.

One policy for every place a run ends badly: the worker's transient faults (`workers.jobs`) and the
runs the reconciler finds lost (`service.jobs.recovery`). A job runs at most `MAX_ATTEMPTS` times;
attempts are counted when a run starts, so a run killed mid-way still counts, and a document that
kills its worker every time fails instead of looping. A failed job with a webhook URL gets its
notification queued in the same transaction, and every move is audited with its error code.
"""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy.orm import Session

from service.store import audit
from service.store import repositories as repo
from service.store.models import AuditOutcome, JobStatus, utcnow

MAX_ATTEMPTS = 3
"""Transient failures and lost workers requeue a job until it has run this many times."""


def may_requeue(attempts: int) -> bool:
    """Whether a job whose run number `attempts` failed (transiently, or lost) may run again."""
    return attempts < MAX_ATTEMPTS


def backoff_s(base_s: float, attempts: int) -> float:
    """How long the requeued job waits after failed run number `attempts`: doubling from `base_s`."""
    return base_s * 2.0 ** max(0, attempts - 1)


def settle_failed_run(
    session: Session,
    job_id: uuid.UUID,
    tenant_id: uuid.UUID,
    attempts: int,
    *,
    requeue: bool,
    error_code: str,
    error_message: str,
    actor: str,
    request_id: str | None = None,
    delay_s: float = 0.0,
) -> JobStatus | None:
    """Move a running job to queued (`requeue`) or failed, in the caller's transaction, with its audit event.

    A requeued job gets a new outbox row that the relay (or the embedded worker) takes after `delay_s`;
    a failed one gets its webhook notification. None when the job was no longer running (settled elsewhere).
    """
    to_state = JobStatus.QUEUED if requeue else JobStatus.FAILED
    moved = repo.transition(
        session, job_id, [JobStatus.RUNNING], to_state, error_code=error_code, error_message=error_message
    )
    if not moved:
        return None
    if requeue:
        not_before = utcnow() + dt.timedelta(seconds=delay_s) if delay_s > 0 else None
        repo.add_outbox(session, job_id, not_before=not_before)
    else:
        repo.enqueue_job_webhook(session, job_id)
    audit.record_event(
        session,
        actor=actor,
        tenant_id=tenant_id,
        action="job.requeued" if requeue else "job.failed",
        target_type="job",
        target_id=job_id,
        request_id=request_id,
        outcome=AuditOutcome.FAILURE,
        details={"error_code": error_code, "attempt": attempts},
    )
    return to_state
