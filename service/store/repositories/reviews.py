"""Review decisions: appended one by one (never updated), read per job, and the jobs a review queue offers."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service.store.models import ApiKey, BatchItem, Job, JobStatus, Result, ReviewAction, ReviewDecision


def add_review_decision(
    session: Session,
    *,
    tenant_id: uuid.UUID,
    job_id: uuid.UUID,
    field: str | None,
    action: ReviewAction,
    reviewer_key_id: uuid.UUID | None,
    reviewer_name: str,
    value: Any = None,
    evidence: dict[str, Any] | None = None,
    flags: Sequence[Any] | None = None,
) -> ReviewDecision:
    """Append one decision (the caller has checked the job is the tenant's and the field the schema's)."""
    row = ReviewDecision(
        job_id=job_id,
        tenant_id=tenant_id,
        field=field,
        action=action,
        value=value,
        evidence=evidence,
        flags=None if flags is None else list(flags),
        reviewer_key_id=reviewer_key_id,
        reviewer_name=reviewer_name,
    )
    session.add(row)
    session.flush()
    return row


def list_review_decisions(session: Session, tenant_id: uuid.UUID, job_id: uuid.UUID) -> list[ReviewDecision]:
    """A job's decisions in the order they were made, scoped to the tenant."""
    return list(
        session.scalars(
            select(ReviewDecision)
            .where(ReviewDecision.job_id == job_id, ReviewDecision.tenant_id == tenant_id)
            .order_by(ReviewDecision.id)
        )
    )


def review_decisions_for_jobs(
    session: Session, job_ids: Collection[uuid.UUID]
) -> dict[uuid.UUID, list[ReviewDecision]]:
    """Decisions of several jobs at once (exports), each job's in the order they were made."""
    out: dict[uuid.UUID, list[ReviewDecision]] = {job_id: [] for job_id in job_ids}
    if not job_ids:
        return out
    rows = session.scalars(
        select(ReviewDecision).where(ReviewDecision.job_id.in_(list(job_ids))).order_by(ReviewDecision.id)
    )
    for row in rows:
        out[row.job_id].append(row)
    return out


def reviewable_jobs(
    session: Session,
    tenant_id: uuid.UUID,
    *,
    schema_name: str | None = None,
    batch_id: uuid.UUID | None = None,
    limit: int = 5000,
) -> list[tuple[Job, Result, ReviewAction | None]]:
    """The tenant's succeeded jobs with their record and latest decision, newest first, at most `limit`."""
    latest = (
        select(ReviewDecision.job_id, func.max(ReviewDecision.id).label("last_id"))
        .where(ReviewDecision.tenant_id == tenant_id)
        .group_by(ReviewDecision.job_id)
        .subquery()
    )
    statement = (
        select(Job, Result, ReviewDecision.action)
        .join(Result, Result.job_id == Job.id)
        .outerjoin(latest, latest.c.job_id == Job.id)
        .outerjoin(ReviewDecision, ReviewDecision.id == latest.c.last_id)
        .where(Job.tenant_id == tenant_id, Job.status == JobStatus.SUCCEEDED)
    )
    if schema_name is not None:
        statement = statement.where(Job.schema_name == schema_name)
    if batch_id is not None:
        in_batch = select(BatchItem.job_id).where(BatchItem.batch_id == batch_id, BatchItem.job_id.is_not(None))
        statement = statement.where(Job.id.in_(in_batch))
    rows = session.execute(statement.order_by(Job.created_at.desc()).limit(limit)).all()
    return [(job, result, action) for job, result, action in rows]


def get_api_key(session: Session, tenant_id: uuid.UUID, key_id: uuid.UUID) -> ApiKey | None:
    """A key of this tenant by id (reviewers are named by their key)."""
    return session.scalars(select(ApiKey).where(ApiKey.id == key_id, ApiKey.tenant_id == tenant_id)).one_or_none()
