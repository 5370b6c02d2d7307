"""Batch manifests: one item per distinct content, each pointing at the job that extracts it."""

from __future__ import annotations

import uuid
from collections.abc import Collection

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service.store.models import Batch, BatchItem, Job, JobStatus, Result, utcnow
from service.store.repositories.shared import insert_or_get


def create_batch(
    session: Session,
    tenant_id: uuid.UUID,
    *,
    source: str,
    schema_name: str,
    schema_version: int,
    model: str,
    backend: str,
    webhook_url: str | None = None,
) -> Batch:
    """A new, empty batch manifest."""
    batch = Batch(
        id=uuid.uuid4(),
        tenant_id=tenant_id,
        source=source[:1000],
        schema_name=schema_name,
        schema_version=schema_version,
        model=model,
        backend=backend,
        webhook_url=webhook_url,
    )
    session.add(batch)
    session.flush()
    return batch


def find_batch(
    session: Session, tenant_id: uuid.UUID, *, source: str, schema_name: str, schema_version: int, model: str
) -> Batch | None:
    """The newest batch over the same source, schema and model: what a restarted batch resumes."""
    return session.scalars(
        select(Batch)
        .where(
            Batch.tenant_id == tenant_id,
            Batch.source == source[:1000],
            Batch.schema_name == schema_name,
            Batch.schema_version == schema_version,
            Batch.model == model,
        )
        .order_by(Batch.created_at.desc(), Batch.id)
        .limit(1)
    ).first()


def get_batch(session: Session, tenant_id: uuid.UUID, batch_id: uuid.UUID) -> Batch | None:
    """A batch of this tenant; another tenant's id gives None."""
    return session.scalars(select(Batch).where(Batch.id == batch_id, Batch.tenant_id == tenant_id)).one_or_none()


def add_batch_item(
    session: Session, batch: Batch, *, sha256: str, name: str, document_id: uuid.UUID, copies: int = 1
) -> tuple[BatchItem, bool]:
    """The batch's item for this content: the existing one (copies raised if more were seen), or a new one."""

    def existing() -> BatchItem | None:
        return session.scalars(
            select(BatchItem).where(BatchItem.batch_id == batch.id, BatchItem.sha256 == sha256)
        ).one_or_none()

    found = existing()
    if found is None:
        row = BatchItem(batch_id=batch.id, sha256=sha256, name=name[:1000], document_id=document_id, copies=copies)
        item, created = insert_or_get(session, row, existing)
        if created:
            return item, True
        found = item
    if copies > found.copies:
        found.copies = copies
        session.flush()
    return found, False


def set_batch_item_job(session: Session, item: BatchItem, job_id: uuid.UUID) -> None:
    """Point an item at the job that extracts its document."""
    if item.job_id != job_id:
        item.job_id = job_id
        session.flush()


def touch_batch(session: Session, batch: Batch) -> None:
    """Note activity on a batch (a resume, new items)."""
    batch.updated_at = utcnow()
    session.flush()


def batch_status_counts(session: Session, batch_id: uuid.UUID) -> dict[str, int]:
    """Items per job status (`pending` for items not yet given a job)."""
    rows = session.execute(
        select(Job.status, func.count(BatchItem.id))
        .select_from(BatchItem)
        .outerjoin(Job, Job.id == BatchItem.job_id)
        .where(BatchItem.batch_id == batch_id)
        .group_by(Job.status)
    ).all()
    return {("pending" if status is None else JobStatus(status).value): int(n) for status, n in rows}


def batch_rows(
    session: Session, batch_id: uuid.UUID, *, after_id: int = 0, limit: int = 500
) -> list[tuple[BatchItem, Job | None, Result | None]]:
    """Items with their job and result, in manifest order, one page at a time (for exports)."""
    rows = session.execute(
        select(BatchItem, Job, Result)
        .outerjoin(Job, Job.id == BatchItem.job_id)
        .outerjoin(Result, Result.job_id == BatchItem.job_id)
        .where(BatchItem.batch_id == batch_id, BatchItem.id > after_id)
        .order_by(BatchItem.id)
        .limit(limit)
    ).all()
    return [(item, job, result) for item, job, result in rows]


def batch_job_ids(session: Session, batch_id: uuid.UUID, statuses: Collection[JobStatus]) -> list[uuid.UUID]:
    """Ids of the batch's jobs in one of `statuses`."""
    return list(
        session.scalars(
            select(Job.id)
            .join(BatchItem, BatchItem.job_id == Job.id)
            .where(BatchItem.batch_id == batch_id, Job.status.in_(list(statuses)))
            .order_by(BatchItem.id)
        )
    )
