"""The outbox: one row per message the relay (or the embedded worker) must publish, leased while it does."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Collection, Sequence

from sqlalchemy import case, func, or_, select, update
from sqlalchemy.orm import Session, aliased

from service.store.models import Job, JobStatus, OutboxMessage, utcnow
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
    """Lease up to `limit` unsent messages that no live lease holds, round-robin across tenants.

    A message's turn is its place in its tenant's line plus the tenant's jobs already running; the lowest
    turn goes first (oldest first among equals). So every tenant's oldest waiting message comes before
    anyone's second, and one tenant's backlog delays another tenant's job by the jobs already running,
    never by the whole backlog. The claimed rows come back in that order: the relay
    publishes them so, and the embedded worker runs the first.
    Postgres skips rows another relay has locked (SKIP LOCKED); SQLite has one writer anyway.
    Commit the claim, publish, then `mark_outbox_sent`; a relay that dies lets its lease lapse.
    """
    now = now or utcnow()
    waiting = [
        OutboxMessage.sent_at.is_(None),
        or_(OutboxMessage.claimed_until.is_(None), OutboxMessage.claimed_until < now),
    ]
    # A tenant's turn counts its jobs already running: a tenant with two running waits behind one with none.
    # Window functions cannot sit under FOR UPDATE: rank first, then lock the chosen rows (claim_leased).
    other = aliased(Job)
    running = (
        select(func.count())
        .where(other.tenant_id == Job.tenant_id, other.status == JobStatus.RUNNING)
        .correlate(Job)
        .scalar_subquery()
    )
    turn = func.row_number().over(partition_by=Job.tenant_id, order_by=OutboxMessage.id) + running
    ranked = (
        select(OutboxMessage.id.label("id"), turn.label("turn"))
        .join(Job, Job.id == OutboxMessage.job_id)
        .where(*waiting)
        .subquery()
    )
    # Twice the limit: rows another relay locks meanwhile are skipped, and the rest still fill the claim.
    chosen = list(session.scalars(select(ranked.c.id).order_by(ranked.c.turn, ranked.c.id).limit(2 * limit)))
    if not chosen:
        return []
    return claim_leased(
        session,
        OutboxMessage,
        due=[OutboxMessage.sent_at.is_(None), OutboxMessage.id.in_(chosen)],
        order_by=[case({message_id: i for i, message_id in enumerate(chosen)}, value=OutboxMessage.id)],
        limit=limit,
        lease=lease,
        now=now,
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
