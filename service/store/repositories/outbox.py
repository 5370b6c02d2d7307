"""The outbox: one row per message the relay (or the embedded worker) must publish, leased while it does."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Collection, Sequence

from sqlalchemy import ColumnElement, Subquery, and_, case, exists, func, or_, select, update
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
    max_in_flight: int | None = None,
    broker: bool = True,
) -> list[OutboxMessage]:
    """Lease up to `limit` unsent messages that no live lease holds, round-robin across tenants.

    A message's turn is its place in its tenant's line plus the tenant's jobs already running; the lowest
    turn goes first (oldest first among equals). So every tenant's oldest waiting message comes before
    anyone's second, and one tenant's backlog delays another tenant's job by the jobs already running,
    never by the whole backlog. The claimed rows come back in that order: the relay
    publishes them so, and the embedded worker runs the first.

    With `max_in_flight`, a tenant with that many jobs in flight (`_in_flight`) gets nothing
    more until one of them finishes: only the first `max_in_flight - in flight` messages of its line may
    be claimed. The rest stay unsent and unleased, claimed by a later pass. `broker` says whether a sent
    message went to a broker's queue (the relay) rather than through a worker that is done with it (the
    embedded worker marks a row sent once its job has run).

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
    running = _jobs_by_tenant(Job.status == JobStatus.RUNNING)
    place = func.row_number().over(partition_by=Job.tenant_id, order_by=OutboxMessage.id)
    query = (
        select(OutboxMessage.id.label("id"), (place + func.coalesce(running.c.jobs, 0)).label("turn"))
        .join(Job, Job.id == OutboxMessage.job_id)
        .outerjoin(running, running.c.tenant_id == Job.tenant_id)
        .where(*waiting)
    )
    if max_in_flight is not None:
        busy = _jobs_by_tenant(_in_flight(now, broker=broker))
        query = query.add_columns((place + func.coalesce(busy.c.jobs, 0)).label("slot"))
        query = query.outerjoin(busy, busy.c.tenant_id == Job.tenant_id)
    ranked = query.subquery()
    pick = select(ranked.c.id).order_by(ranked.c.turn, ranked.c.id)
    if max_in_flight is not None:
        pick = pick.where(ranked.c.slot <= max_in_flight)
    # Twice the limit: rows another relay locks meanwhile are skipped, and the rest still fill the claim.
    chosen = list(session.scalars(pick.limit(2 * limit)))
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


def _jobs_by_tenant(*where: ColumnElement[bool]) -> Subquery:
    """How many jobs of each tenant match `where` (`tenant_id`, `jobs`; tenants with none are absent)."""
    return (
        select(Job.tenant_id.label("tenant_id"), func.count().label("jobs"))
        .where(*where)
        .group_by(Job.tenant_id)
        .subquery()
    )


def _in_flight(now: dt.datetime, *, broker: bool = True) -> ColumnElement[bool]:
    """Whether a job is in flight: it runs, or it is queued and its newest message is under a live claim (a
    relay publishing it, the embedded worker starting it) or, with `broker`, sent: the broker holds it and
    no reordering takes it back.

    Judged by the job's newest message only, so a job is not in flight while it waits for a claim: a
    requeued job in its backoff (a new row whose `not_before` has not come: leased by nobody, no attempt
    counted), or one the reconciler published again (a new unsent row). A queued job whose message the
    broker lost counts until the reconciler gives it that new row.
    """
    newest = aliased(OutboxMessage)
    last_id = select(func.max(OutboxMessage.id)).where(OutboxMessage.job_id == Job.id).correlate(Job).scalar_subquery()
    on_its_way = [and_(newest.claimed_until >= now, newest.attempts > 0)]
    if broker:
        on_its_way.append(newest.sent_at.is_not(None))
    queued_on_its_way = exists().where(newest.id == last_id, or_(*on_its_way))
    return and_(
        Job.status.in_([JobStatus.QUEUED, JobStatus.RUNNING]),  # ix_jobs_status: finished jobs are never read
        or_(Job.status == JobStatus.RUNNING, queued_on_its_way),
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
