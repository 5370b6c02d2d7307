"""Webhook deliveries: an outbox of job notifications, queued when a job settles, leased while sent."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping
from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session

from service.store.models import Job, JobStatus, WebhookDelivery, utcnow
from service.store.repositories.shared import claim_leased, update_rows

WEBHOOK_EVENTS: Mapping[JobStatus, str] = {JobStatus.SUCCEEDED: "job.succeeded", JobStatus.FAILED: "job.failed"}


def enqueue_job_webhook(
    session: Session, job_id: uuid.UUID, *, now: dt.datetime | None = None
) -> WebhookDelivery | None:
    """In the transaction that settles a job: queue its notification if it has a webhook URL.

    Call it after the job's final transition. The payload holds ids, status and an error code only,
    never extracted values or document text; it is signed when sent, not here.
    """
    job = session.get(Job, job_id)
    if job is None or job.webhook_url is None or job.status not in WEBHOOK_EVENTS:
        return None
    now = now or utcnow()
    event = WEBHOOK_EVENTS[job.status]
    event_id = uuid.uuid4()
    payload: dict[str, Any] = {
        "id": str(event_id),
        "type": event,
        "created_at": now.isoformat(),
        "job": {
            "id": str(job.id),
            "status": job.status.value,
            "document_id": str(job.document_id),
            "schema": job.schema_ref,
            "model": job.model,
            "attempts": job.attempts,
            "error_code": job.error_code,
        },
    }
    row = WebhookDelivery(
        event_id=event_id,
        job_id=job.id,
        tenant_id=job.tenant_id,
        url=job.webhook_url,
        event=event,
        payload=payload,
        attempts=0,
        next_attempt_at=now,
    )
    session.add(row)
    session.flush()
    return row


def claim_webhook_deliveries(
    session: Session,
    *,
    limit: int = 20,
    lease: dt.timedelta = dt.timedelta(seconds=60),
    now: dt.datetime | None = None,
) -> list[WebhookDelivery]:
    """Lease up to `limit` due, pending deliveries that no live lease holds (SKIP LOCKED on Postgres).

    Commit the claim, POST, then `record_webhook_attempt`; a deliverer that dies lets its lease lapse.
    """
    now = now or utcnow()
    return claim_leased(
        session,
        WebhookDelivery,
        due=[
            WebhookDelivery.delivered_at.is_(None),
            WebhookDelivery.gave_up_at.is_(None),
            WebhookDelivery.next_attempt_at <= now,
        ],
        order_by=[WebhookDelivery.next_attempt_at, WebhookDelivery.id],
        limit=limit,
        lease=lease,
        now=now,
    )


def record_webhook_attempt(
    session: Session,
    delivery_id: int,
    *,
    delivered: bool,
    status_code: int | None = None,
    error: str | None = None,
    retry_at: dt.datetime | None = None,
    now: dt.datetime | None = None,
) -> bool:
    """Settle one attempt: delivered, retried at `retry_at`, or given up (neither). False if already settled."""
    now = now or utcnow()
    values: dict[str, Any] = {
        "claimed_until": None,
        "last_status_code": status_code,
        "last_error": None if error is None else error[:200],
    }
    if delivered:
        values["delivered_at"] = now
    elif retry_at is None:
        values["gave_up_at"] = now
    else:
        values["next_attempt_at"] = retry_at
    statement = (
        update(WebhookDelivery)
        .where(
            WebhookDelivery.id == delivery_id,
            WebhookDelivery.delivered_at.is_(None),
            WebhookDelivery.gave_up_at.is_(None),
        )
        .values(values)
    )
    return update_rows(session, statement, WebhookDelivery, [delivery_id]) == 1
