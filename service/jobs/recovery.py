"""Repairs made from what the store knows, when a queue or a process lost what it held.

Redis keeps nothing on disk and a worker can be killed mid-job, so the reconciler (`service.jobs.relay`)
repairs from Postgres:
- a job `running` past its deadline (started + hard time limit + margin) lost its worker: requeued, or
  failed as `worker_lost` once `MAX_ATTEMPTS` runs have started (`settle_lost_runs`);
- a job `queued` whose last message went out before a cutoff (or before Redis restarted) gets a new
  outbox row (`republish_queued`).
A batch run in embedded mode is its store's only worker, so at its start it requeues what an interrupted
run left running (`recover_interrupted`); so does `abstractor serve` for every job (`recover_serve_restart`),
attempts counted as for any lost run. An operator may put a batch's failed jobs back (`retry_failed`).
Every function works in the caller's transaction and returns how many jobs it moved.
"""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy.orm import Session

from service.jobs.requeue import may_requeue, settle_failed_run
from service.store import audit
from service.store import repositories as repo
from service.store.models import AuditOutcome, JobStatus, utcnow

RECONCILER = "reconciler"
"""The audit actor of the reconciler's moves."""
WORKER_LOST = "worker_lost"
"""The error code of a run whose worker vanished (killed, or past its hard time limit)."""


def settle_lost_runs(session: Session, now: dt.datetime, run_deadline: dt.timedelta, limit: int) -> tuple[int, int]:
    """Requeue or fail up to `limit` jobs running past their deadline; returns (requeued, failed).

    Rows locked by another reconciler are skipped (SKIP LOCKED), so several relays never settle one twice.
    """
    requeued = failed = 0
    for job in repo.lock_overdue_runs(session, now, run_deadline=run_deadline, limit=limit):
        job_id, tenant_id, attempts = job.id, job.tenant_id, job.attempts
        again = may_requeue(attempts)
        if again:
            message = "the job's worker was lost; the job was queued again"
        else:
            message = f"the job's worker was lost (killed, or past its hard time limit) in all {attempts} runs"
        settled = settle_failed_run(
            session,
            job_id,
            tenant_id,
            attempts,
            requeue=again,
            error_code=WORKER_LOST,
            error_message=message,
            actor=RECONCILER,
        )
        if settled is JobStatus.QUEUED:
            requeued += 1
        elif settled is JobStatus.FAILED:
            failed += 1
    return requeued, failed


SERVE_RESTART_HORIZON = dt.timedelta(days=365 * 100)
"""Taken as every running job's deadline having passed: at serve's start, none of them has a live worker."""


def recover_serve_restart(session: Session, limit: int = 500) -> tuple[int, int]:
    """Settle up to `limit` jobs that a stopped or crashed `abstractor serve` left running: requeued (their
    attempt counted, as for any lost worker) or failed once `MAX_ATTEMPTS` runs have started; returns
    (requeued, failed). Call again while the sum is `limit`.

    Safe only where the caller is the store's one worker: `serve` holds its data folder's lock first.
    """
    now = utcnow()
    return settle_lost_runs(session, now + SERVE_RESTART_HORIZON, SERVE_RESTART_HORIZON, limit)


def republish_queued(session: Session, published_before: dt.datetime, limit: int) -> int:
    """A new outbox row for up to `limit` queued jobs with no message pending and none published since the
    cutoff (SKIP LOCKED); returns how many. Call again while it returns `limit`."""
    job_ids = repo.lock_queued_without_message(session, published_before, limit=limit)
    for job_id in job_ids:
        repo.add_outbox(session, job_id)
    return len(job_ids)


def recover_interrupted(session: Session, batch_id: uuid.UUID) -> int:
    """Requeue the batch's jobs an interrupted run left running, and give every queued job without a pending
    outbox row a new one; returns how many jobs were put back in line.

    Safe only where this process is the store's one worker (the embedded batch over SQLite).
    """
    put_back = 0
    for job_id in repo.batch_job_ids(session, batch_id, [JobStatus.RUNNING]):
        if repo.transition(
            session,
            job_id,
            [JobStatus.RUNNING],
            JobStatus.QUEUED,
            error_code="interrupted",
            error_message="the batch run was interrupted; requeued at restart",
        ):
            put_back += 1
    queued = repo.batch_job_ids(session, batch_id, [JobStatus.QUEUED])
    waiting = repo.jobs_with_unsent_outbox(session, queued)
    for job_id in queued:
        if job_id not in waiting:
            repo.add_outbox(session, job_id)
    return put_back


def retry_failed(session: Session, batch_id: uuid.UUID, *, actor: str = "cli") -> int:
    """Put the batch's failed jobs back in the queue (an operator's retry, audited); returns how many."""
    retried = 0
    for job_id in repo.batch_job_ids(session, batch_id, [JobStatus.FAILED]):
        job = repo.load_job(session, job_id)
        if job is None or not repo.transition(session, job_id, [JobStatus.FAILED], JobStatus.QUEUED):
            continue
        repo.add_outbox(session, job_id)
        audit.record_event(
            session,
            actor=actor,
            tenant_id=job.tenant_id,
            action="job.retried",
            target_type="job",
            target_id=job_id,
            request_id=None,
            outcome=AuditOutcome.SUCCESS,
            details={"batch_id": batch_id},
        )
        retried += 1
    return retried
