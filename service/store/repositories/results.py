"""Results: one record per job, stored once, read through the tenant that owns the job."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.store.models import Job, Result
from service.store.repositories.shared import insert_or_get


def save_result(
    session: Session,
    job_id: uuid.UUID,
    *,
    data: Mapping[str, Any],
    evidence: Mapping[str, Any] | None = None,
    flags: Mapping[str, Any] | None = None,
) -> tuple[Result, bool]:
    """Store a job's result once; a second save for the same job returns the first, unchanged."""

    def existing() -> Result | None:
        return session.scalars(select(Result).where(Result.job_id == job_id)).one_or_none()

    found = existing()
    if found is not None:
        return found, False
    row = Result(
        id=uuid.uuid4(),
        job_id=job_id,
        data=dict(data),
        evidence=None if evidence is None else dict(evidence),
        flags=None if flags is None else dict(flags),
    )
    return insert_or_get(session, row, existing)


def get_result(session: Session, tenant_id: uuid.UUID, job_id: uuid.UUID) -> Result | None:
    """A job's result, scoped to the tenant that owns the job."""
    return session.scalars(
        select(Result).join(Job, Job.id == Result.job_id).where(Result.job_id == job_id, Job.tenant_id == tenant_id)
    ).one_or_none()
