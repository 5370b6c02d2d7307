"""The outbox: one row per message the relay (or the embedded worker) must publish, leased while it does."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Collection, Sequence

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from service.store.models import OutboxMessage, utcnow
from service.store.repositories.shared import claim_leased, update_rows

EXTRACT_TOPIC = "extract"


def add_outbox(
    session: Session, job_id: uuid.UUID, topic: str = EXTRACT_TOPIC, *, not_before: dt.datetime | None = None
) -> OutboxMessage:
    """Queue a message for the relay in the caller's transaction; the payload is the job id, nothing more.

    With `not_before` the row starts under a lease nobody holds: no one claims it until then (a backoff).
    """
    message = OutboxMessage(job_id=job_id, topic=topic, payload={"job_id": str(job_id)}, attempts=0)
    message.claimed_until = not_before
    session.add(message)
    session.flush()
    return message


def claim_outbox(
    session: Session,
    *,
    limit: int = 100,
    lease: dt.timedelta = dt.timedelta(seconds=60),
    now: dt.datetime | None = None,
) -> list[OutboxMessage]:
    """Lease up to `limit` unsent messages, oldest first, that no live lease holds.

    Postgres skips rows another relay has locked (SKIP LOCKED); SQLite has one writer anyway.
    Commit the claim, publish, then `mark_outbox_sent`; a relay that dies lets its lease lapse.
    """
    return claim_leased(
        session,
        OutboxMessage,
        due=[OutboxMessage.sent_at.is_(None)],
        order_by=[OutboxMessage.id],
        limit=limit,
        lease=lease,
        now=now or utcnow(),
    )


def mark_outbox_sent(session: Session, message_ids: Sequence[int], *, now: dt.datetime | None = None) -> int:
    """Mark published messages sent; returns how many were still unsent (redelivery-safe)."""
    if not message_ids:
        return 0
    statement = (
        update(OutboxMessage)
        .where(OutboxMessage.id.in_(list(message_ids)), OutboxMessage.sent_at.is_(None))
        .values(sent_at=now or utcnow(), claimed_until=None)
    )
    return update_rows(session, statement, OutboxMessage, message_ids)


def release_outbox(session: Session, message_ids: Sequence[int]) -> None:
    """Give back a lease early (publishing failed) so the next claim retries at once."""
    if message_ids:
        statement = (
            update(OutboxMessage)
            .where(OutboxMessage.id.in_(list(message_ids)), OutboxMessage.sent_at.is_(None))
            .values(claimed_until=None)
        )
        update_rows(session, statement, OutboxMessage, message_ids)


def jobs_with_unsent_outbox(session: Session, job_ids: Collection[uuid.UUID]) -> set[uuid.UUID]:
    """Which of these jobs still have a message waiting for the relay (or the embedded worker)."""
    if not job_ids:
        return set()
    return set(
        session.scalars(
            select(OutboxMessage.job_id).where(OutboxMessage.job_id.in_(list(job_ids)), OutboxMessage.sent_at.is_(None))
        )
    )
