"""Submission: the job row, its outbox row when new, and its audit event, in the caller's transaction."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service.jobs.identity import ModelRef
from service.jobs.resolve import ResolvedSchema
from service.jobs.submit import SubmittedBy, submit_batch_item, submit_job
from service.store import repositories as repo
from service.store.models import AuditEvent, Document, JobStatus, OutboxMessage, Tenant

NDA = ResolvedSchema("nda", 1)
MODEL = ModelRef("m", "b+none")


def _outbox_rows(session: Session, job_id: object) -> int:
    query = select(func.count()).select_from(OutboxMessage).where(OutboxMessage.job_id == job_id)
    return int(session.scalar(query) or 0)


def _events(session: Session, job_id: object) -> list[tuple[str, str, dict[str, object] | None]]:
    rows = session.execute(
        select(AuditEvent.action, AuditEvent.actor, AuditEvent.details)
        .where(AuditEvent.target_id == str(job_id))
        .order_by(AuditEvent.seq)
    )
    return [(a, b, c) for a, b, c in rows]


def test_a_new_job_is_queued_with_one_message_and_one_event(
    session: Session, tenant: Tenant, document: Document
) -> None:
    by = SubmittedBy("api_key:k1", "req-1")
    job, created = submit_job(session, tenant.id, document.id, NDA, MODEL, by=by)
    assert created and job.status is JobStatus.QUEUED
    assert (job.schema_ref, job.model, job.backend) == ("nda@1", "m", "b+none")
    assert _outbox_rows(session, job.id) == 1
    details = {"created": True, "document_id": str(document.id), "schema_ref": "nda@1"}
    assert _events(session, job.id) == [("extraction.submit", "api_key:k1", details)]


def test_the_same_submission_again_finds_the_job_and_queues_nothing(
    session: Session, tenant: Tenant, document: Document
) -> None:
    first, _ = submit_job(session, tenant.id, document.id, NDA, MODEL, webhook_url="https://a.example/h")
    again, created = submit_job(
        session, tenant.id, document.id, NDA, MODEL, webhook_url="https://b.example/h", by=SubmittedBy("x", None)
    )
    assert not created and again.id == first.id
    assert again.webhook_url == "https://a.example/h"  # the existing job keeps its own
    assert _outbox_rows(session, first.id) == 1
    assert [action for action, _, _ in _events(session, first.id)] == ["extraction.submit"]  # only `by` audits
    other, created_other = submit_job(session, tenant.id, document.id, NDA, ModelRef("another", "b+none"))
    assert created_other and other.id != first.id


def test_a_batch_item_points_at_its_job(session: Session, tenant: Tenant, document: Document) -> None:
    batch = repo.create_batch(
        session, tenant.id, source="src", schema_name="nda", schema_version=1, model="m", backend="b+none"
    )
    job, created = submit_batch_item(session, batch, sha256=document.sha256, name="a.txt", document_id=document.id)
    again, created_again = submit_batch_item(
        session, batch, sha256=document.sha256, name="b.txt", document_id=document.id, copies=2
    )
    assert created and not created_again and again.id == job.id
    assert (job.model, job.backend) == (batch.model, batch.backend)
    [(item, item_job, _)] = repo.batch_rows(session, batch.id)
    assert item_job is not None and item_job.id == job.id and item.copies == 2 and item.name == "a.txt"
    assert _events(session, job.id) == []  # the batch's own event covers its items
