"""Jobs: one per (tenant, document, schema, model), moved between states by guarded updates only."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Collection, Mapping
from typing import Any

from sqlalchemy import and_, exists, func, or_, select, update
from sqlalchemy.orm import Session

from service.store.errors import BadInputStoreError, InvalidTransitionError
from service.store.models import Job, JobStatus, OutboxMessage, UserSchema, utcnow
from service.store.repositories.documents import get_document
from service.store.repositories.shared import insert_or_get, update_rows
from service.store.repositories.user_schemas import mark_user_schema_used

MAX_ERROR_MESSAGE = 2000


ALLOWED_TRANSITIONS: Mapping[JobStatus, frozenset[JobStatus]] = {
    JobStatus.QUEUED: frozenset({JobStatus.RUNNING, JobStatus.FAILED}),  # failed: deadline passed in queue
    JobStatus.RUNNING: frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.QUEUED}),  # queued: retry
    JobStatus.FAILED: frozenset({JobStatus.QUEUED}),  # an operator's retry
    JobStatus.SUCCEEDED: frozenset(),
}


def _find_job(
    session: Session,
    tenant_id: uuid.UUID,
    document_id: uuid.UUID,
    schema_name: str,
    schema_version: int,
    model: str,
) -> Job | None:
    return session.scalars(
        select(Job).where(
            Job.tenant_id == tenant_id,
            Job.document_id == document_id,
            Job.schema_name == schema_name,
            Job.schema_version == schema_version,
            Job.model == model,
        )
    ).one_or_none()


def create_job(
    session: Session,
    tenant_id: uuid.UUID,
    document_id: uuid.UUID,
    *,
    schema_name: str,
    schema_version: int,
    model: str,
    backend: str,
    deadline: dt.datetime | None = None,
    user_schema: UserSchema | None = None,
    webhook_url: str | None = None,
) -> tuple[Job, bool]:
    """The job for (tenant, document, schema, model): the existing one, or a new queued one.

    Returns (job, created); add the outbox message only when `created`. A user schema is frozen by
    its first job. `webhook_url` (checked by the caller) is set on a new job only: the existing one
    keeps its own.
    """
    if get_document(session, tenant_id, document_id) is None:
        raise BadInputStoreError(f"unknown document {document_id}", code="unknown_document")
    if user_schema is not None and (
        user_schema.tenant_id != tenant_id or (user_schema.name, user_schema.version) != (schema_name, schema_version)
    ):
        raise BadInputStoreError("user schema does not match the job's tenant, name and version")
    key = (tenant_id, document_id, schema_name, schema_version, model)
    existing = _find_job(session, *key)
    if existing is not None:
        return existing, False
    job = Job(
        id=uuid.uuid4(),
        tenant_id=tenant_id,
        document_id=document_id,
        user_schema_id=None if user_schema is None else user_schema.id,
        schema_name=schema_name,
        schema_version=schema_version,
        model=model,
        backend=backend,
        status=JobStatus.QUEUED,
        attempts=0,
        deadline=deadline,
        webhook_url=webhook_url,
    )
    job, created = insert_or_get(session, job, lambda: _find_job(session, *key))
    if created and user_schema is not None:
        mark_user_schema_used(session, user_schema)
    return job, created


def get_job(session: Session, tenant_id: uuid.UUID, job_id: uuid.UUID) -> Job | None:
    """A job of this tenant; another tenant's id gives None."""
    return session.scalars(select(Job).where(Job.id == job_id, Job.tenant_id == tenant_id)).one_or_none()


def load_job(session: Session, job_id: uuid.UUID) -> Job | None:
    """A job by id alone, for workers: the queue message carries nothing else."""
    return session.get(Job, job_id)


def transition(
    session: Session,
    job: Job | uuid.UUID,
    from_states: Collection[JobStatus],
    to_state: JobStatus,
    *,
    error_code: str | None = None,
    error_message: str | None = None,
    timings: Mapping[str, Any] | None = None,
) -> bool:
    """Move a job to `to_state` only if it is in one of `from_states`; False when it was not.

    One `UPDATE ... WHERE status IN (...)`, so a redelivered message or a second worker changes
    nothing. Entering `running` counts an attempt. Error messages must not quote the document.
    """
    if not from_states:
        raise InvalidTransitionError("from_states is empty")
    for state in from_states:
        if to_state not in ALLOWED_TRANSITIONS[state]:
            raise InvalidTransitionError(f"a job never goes from {state.value} to {to_state.value}")
    job_id = job.id if isinstance(job, Job) else job
    values: dict[str, Any] = {"status": to_state, "updated_at": utcnow()}
    if to_state is JobStatus.RUNNING:
        values["attempts"] = Job.attempts + 1
    if to_state is JobStatus.SUCCEEDED:
        values["error_code"] = None
        values["error_message"] = None
    elif error_code is not None or error_message is not None:
        values["error_code"] = error_code
        values["error_message"] = None if error_message is None else error_message[:MAX_ERROR_MESSAGE]
    if timings is not None:
        values["timings"] = dict(timings)
    statement = update(Job).where(Job.id == job_id, Job.status.in_(list(from_states))).values(values)
    return update_rows(session, statement, Job, [job_id]) == 1


def lock_overdue_runs(session: Session, now: dt.datetime, *, run_deadline: dt.timedelta, limit: int) -> list[Job]:
    """Up to `limit` jobs running past their deadline, locked (SKIP LOCKED) for the caller to settle.

    A running job's deadline is set when it starts; rows from before deadlines existed use
    `updated_at + run_deadline`.
    """
    overdue = or_(
        Job.deadline < now,
        and_(Job.deadline.is_(None), Job.updated_at < now - run_deadline),
    )
    return list(
        session.scalars(
            select(Job)
            .where(Job.status == JobStatus.RUNNING, overdue)
            .order_by(Job.deadline)
            .limit(limit)
            .with_for_update(skip_locked=True)
        ).all()
    )


def lock_queued_without_message(session: Session, published_before: dt.datetime, *, limit: int) -> list[uuid.UUID]:
    """Up to `limit` queued jobs, oldest first and locked (SKIP LOCKED), unchanged since `published_before`
    with no outbox message pending and none published since then: their message was lost."""
    recent = exists().where(
        OutboxMessage.job_id == Job.id,
        or_(OutboxMessage.sent_at.is_(None), OutboxMessage.sent_at >= published_before),
    )
    return list(
        session.scalars(
            select(Job.id)
            .where(Job.status == JobStatus.QUEUED, Job.updated_at < published_before, ~recent)
            .order_by(Job.created_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        ).all()
    )


def count_jobs_by_status(session: Session) -> dict[JobStatus, int]:
    """Jobs per status across tenants (the metrics gauge)."""
    rows = session.execute(select(Job.status, func.count()).group_by(Job.status)).all()
    return {status: int(n) for status, n in rows}
