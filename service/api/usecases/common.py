"""What every use case shares: the audit helpers, the one 404, the webhook URL check."""

from __future__ import annotations

import uuid

from sqlalchemy.orm import Session

from service import webhooks
from service.api.context import Actor, ApiContext
from service.api.errors import NOT_FOUND_MESSAGE, NotFoundError, UnprocessableError, classify
from service.store import audit
from service.store.models import AuditOutcome

ANONYMOUS = Actor("anonymous")
ADMIN = Actor("admin")


def record(
    session: Session,
    actor: Actor,
    request_id: str,
    action: str,
    target_type: str,
    target_id: object,
    outcome: AuditOutcome,
    details: dict[str, object] | None = None,
    *,
    tenant_id: uuid.UUID | None = None,
) -> None:
    """An audit event by `actor`, in the use case's transaction (the actor's tenant unless another is named)."""
    audit.record_event(
        session,
        actor=actor.name,
        tenant_id=tenant_id if tenant_id is not None else actor.tenant_id,
        action=action,
        target_type=target_type,
        target_id=None if target_id is None else str(target_id),
        request_id=request_id,
        outcome=outcome,
        details=details,
    )


def record_refusal(
    ctx: ApiContext,
    actor: Actor,
    request_id: str,
    action: str,
    target_type: str,
    target_id: object,
    error: BaseException,
    *,
    tenant_id: uuid.UUID | None = None,
) -> None:
    """Record a refused action in its own transaction (the action's own one has nothing to commit)."""
    status, code, _, _ = classify(error)
    outcome = AuditOutcome.DENIED if status in (401, 403, 404) else AuditOutcome.FAILURE
    with ctx.session_factory.begin() as session:
        record(
            session,
            actor,
            request_id,
            action,
            target_type,
            target_id,
            outcome,
            {"error_code": code, "status": status},
            tenant_id=tenant_id,
        )


def not_found(kind: str) -> NotFoundError:
    """The 404 for `kind`: one message for unknown and foreign ids, so the response cannot tell them apart."""
    return NotFoundError(NOT_FOUND_MESSAGE, details={"resource": kind})


def check_webhook(ctx: ApiContext, url: object | None) -> str | None:
    """The URL to store, or a 422: webhooks need a signing secret, and the URL must pass the SSRF guard.

    The guard runs again before every delivery attempt (DNS may answer differently by then).
    """
    if url is None:
        return None
    text_url = str(url)
    try:
        webhooks.check_webhook_url(text_url, ctx.settings.webhook_allow_hosts)
    except webhooks.WebhookUrlRefused as e:
        raise UnprocessableError(e.message, code=e.code, details={"reason": e.reason}) from e
    if ctx.settings.webhook_secret is None:
        raise UnprocessableError(
            "webhooks are off: the operator has set no ABSTRACTOR_WEBHOOK_SECRET; poll instead",
            code="webhooks_disabled",
        )
    return text_url
