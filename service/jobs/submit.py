"""Submitting a job: the job row, an outbox row when it is new, and its audit event, in one transaction.

The caller owns the transaction (the API's use case, a batch's item loop): nothing here commits, so the
job, the message the relay will publish and the audit event commit together or not at all, and the API
never talks to Redis. A job is deduplicated on (tenant, document, schema, model): submitting the same
again returns the existing job, finished or not, and queues nothing (that is how a batch resumes).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy.orm import Session

from service.jobs.identity import ModelRef
from service.jobs.resolve import ResolvedSchema
from service.store import audit
from service.store import repositories as repo
from service.store.models import AuditOutcome, Batch, Job
from service.store.models import UserSchema as UserSchemaRow


@dataclass(frozen=True)
class SubmittedBy:
    """Who submits, for the audit event written with the job: an API key's actor and the request's id."""

    actor: str
    request_id: str | None
    action: str = "extraction.submit"


def submit_job(
    session: Session,
    tenant_id: uuid.UUID,
    document_id: uuid.UUID,
    schema: ResolvedSchema,
    model: ModelRef,
    *,
    webhook_url: str | None = None,
    by: SubmittedBy | None = None,
) -> tuple[Job, bool]:
    """The job for this document, schema and model: (job, created). A new one gets its outbox row.

    With `by`, the submission is audited (whether or not the job was new); a batch's items go without,
    the batch's own event covering them. `webhook_url` (checked by the caller) applies to a new job only.
    """
    job, created = repo.create_job(
        session,
        tenant_id,
        document_id,
        schema_name=schema.name,
        schema_version=schema.version,
        model=model.model,
        backend=model.backend,
        user_schema=schema.user,
        webhook_url=webhook_url,
    )
    if created:
        repo.add_outbox(session, job.id)
    if by is not None:
        # Last: the audit event holds the chain lock until the caller commits.
        audit.record_event(
            session,
            actor=by.actor,
            tenant_id=tenant_id,
            action=by.action,
            target_type="job",
            target_id=job.id,
            request_id=by.request_id,
            outcome=AuditOutcome.SUCCESS,
            details={"created": created, "document_id": document_id, "schema_ref": schema.ref},
        )
    return job, created


def submit_batch_item(
    session: Session,
    batch: Batch,
    *,
    sha256: str,
    name: str,
    document_id: uuid.UUID,
    copies: int = 1,
    user_schema: UserSchemaRow | None = None,
) -> tuple[Job, bool]:
    """Add (or find) the batch's item for this content and submit its job with the batch's schema and model.

    Returns (job, created): an existing job, finished or not, is reused as it is (job dedupe).
    """
    item, _ = repo.add_batch_item(session, batch, sha256=sha256, name=name, document_id=document_id, copies=copies)
    job, created = submit_job(
        session,
        batch.tenant_id,
        document_id,
        ResolvedSchema(batch.schema_name, batch.schema_version, user_schema),
        ModelRef(batch.model, batch.backend),
        webhook_url=batch.webhook_url,
    )
    repo.set_batch_item_job(session, item, job.id)
    return job, created
