"""A run that did not succeed: requeued with a delayed message, or failed with its notification; audited."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from service.jobs.identity import ModelRef
from service.jobs.requeue import MAX_ATTEMPTS, backoff_s, may_requeue, settle_failed_run
from service.jobs.resolve import ResolvedSchema
from service.jobs.submit import submit_job
from service.store import repositories as repo
from service.store.models import AuditEvent, Document, Job, JobStatus, OutboxMessage, Tenant, WebhookDelivery, utcnow

NDA = ResolvedSchema("nda", 1)
MODEL = ModelRef("m", "b")


def _running(session: Session, tenant: Tenant, document: Document, *, webhook_url: str | None = None) -> Job:
    job, _ = submit_job(session, tenant.id, document.id, NDA, MODEL, webhook_url=webhook_url)
    # Its message went out and a worker started it, as in production.
    repo.mark_outbox_sent(session, [m.id for m in repo.claim_outbox(session)])
    assert repo.transition(session, job, [JobStatus.QUEUED], JobStatus.RUNNING)
    return job


def test_attempts_and_backoff() -> None:
    assert [may_requeue(n) for n in range(1, MAX_ATTEMPTS + 1)] == [True] * (MAX_ATTEMPTS - 1) + [False]
    assert [backoff_s(0.5, n) for n in (1, 2, 3)] == [0.5, 1.0, 2.0]
    assert backoff_s(0.0, 3) == 0.0


def test_a_requeued_run_gets_a_message_the_relay_takes_after_the_delay(
    session: Session, tenant: Tenant, document: Document
) -> None:
    job = _running(session, tenant, document)
    before = utcnow()
    status = settle_failed_run(
        session, job.id, tenant.id, 1, requeue=True, error_code="transient_error", error_message="peer down",
        actor="worker", delay_s=30.0,
    )  # fmt: skip
    assert status is JobStatus.QUEUED
    [message] = session.scalars(
        select(OutboxMessage).where(OutboxMessage.job_id == job.id, OutboxMessage.sent_at.is_(None))
    )
    assert message.claimed_until is not None and message.claimed_until >= before + dt.timedelta(seconds=30)
    assert repo.claim_outbox(session, now=before) == []  # not before its time
    session.refresh(job)
    assert (job.status, job.error_code) == (JobStatus.QUEUED, "transient_error")
    [event] = session.scalars(select(AuditEvent).where(AuditEvent.target_id == str(job.id)))
    assert (event.action, event.actor, event.outcome) == ("job.requeued", "worker", "failure")
    assert event.details == {"error_code": "transient_error", "attempt": 1}


def test_a_failed_run_queues_its_webhook_and_a_settled_one_is_left_alone(
    session: Session, tenant: Tenant, document: Document
) -> None:
    job = _running(session, tenant, document, webhook_url="https://hooks.example/x")
    settle = dict(requeue=False, error_code="worker_lost", error_message="lost", actor="reconciler")
    assert settle_failed_run(session, job.id, tenant.id, 3, **settle) is JobStatus.FAILED  # type: ignore[arg-type]
    [delivery] = session.scalars(select(WebhookDelivery).where(WebhookDelivery.job_id == job.id))
    assert delivery.event == "job.failed" and delivery.payload["job"]["error_code"] == "worker_lost"
    assert settle_failed_run(session, job.id, tenant.id, 3, **settle) is None  # type: ignore[arg-type]
    assert len(list(session.scalars(select(AuditEvent).where(AuditEvent.target_id == str(job.id))))) == 1


@pytest.mark.parametrize("requeue", [True, False], ids=["requeue", "fail"])
def test_only_a_running_job_is_settled(session: Session, tenant: Tenant, document: Document, requeue: bool) -> None:
    job, _ = submit_job(session, tenant.id, document.id, NDA, MODEL)
    assert (
        settle_failed_run(
            session, job.id, tenant.id, 0, requeue=requeue, error_code="c", error_message="m", actor="worker"
        )
        is None
    )
    session.refresh(job)
    assert job.status is JobStatus.QUEUED
