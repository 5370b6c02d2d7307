"""Who is calling: a tenant's API key, or the admin token; failed tries are throttled per client address.

A failed try (unknown key, wrong admin token) is counted in `service.api.throttle`, not audited on
its own: each address's failures are audited as one `auth.failures` row per window, when it closes.
Past `ABSTRACTOR_AUTH_FAILURE_LIMIT` failures in a window the address gets 429 until the window ends,
for every request that presents credentials (one without any is a plain 401: there is nothing to guess).
"""

from __future__ import annotations

import hmac
import logging

from sqlalchemy.exc import SQLAlchemyError

from service.api.context import Actor, ApiContext
from service.api.errors import ForbiddenError, TooManyRequestsError, UnauthorizedError
from service.api.throttle import Window
from service.api.usecases.common import ADMIN, ANONYMOUS
from service.store import audit
from service.store import repositories as repo
from service.store.errors import StoreError
from service.store.models import AuditOutcome

log = logging.getLogger(__name__)


def _refuse_if_throttled(ctx: ApiContext, client: str) -> None:
    flush_auth_failures(ctx)
    retry_after = ctx.auth_throttle.retry_after(client)
    if retry_after is not None:
        raise TooManyRequestsError(
            "too many failed authentications from this address",
            code="too_many_auth_failures",
            details={"retry_after_s": retry_after},
            headers={"Retry-After": str(retry_after)},
        )


def authenticate(ctx: ApiContext, presented: str | None, request_id: str, client: str = "unknown") -> Actor:
    """The tenant behind an API key; a missing or unknown key is a 401, a throttled address a 429."""
    if not presented:  # nothing to guess with: no lookup, not counted
        raise UnauthorizedError(
            "send an API key as 'Authorization: Bearer <key>' or 'X-API-Key: <key>'", code="missing_api_key"
        )
    _refuse_if_throttled(ctx, client)
    with ctx.session_factory.begin() as session:
        key = repo.find_api_key(session, presented)
        if key is not None:
            return Actor(f"api_key:{key.id}", key.tenant_id)
    ctx.auth_throttle.failed(client, "api_key")
    raise UnauthorizedError("unknown or revoked API key", code="invalid_api_key")


def authenticate_admin(ctx: ApiContext, presented: str | None, request_id: str, client: str = "unknown") -> Actor:
    """The admin, if the configured admin token was presented (compared in constant time)."""
    token = ctx.settings.admin_token
    if token is None:
        raise ForbiddenError("admin endpoints are disabled: no admin token is configured", code="admin_disabled")
    if not presented:
        raise UnauthorizedError("send the admin token as 'Authorization: Bearer <token>'", code="missing_admin_token")
    _refuse_if_throttled(ctx, client)
    if not hmac.compare_digest(presented.encode("utf-8"), token.get_secret_value().encode("utf-8")):
        ctx.auth_throttle.failed(client, "admin")
        raise UnauthorizedError("wrong admin token", code="invalid_admin_token")
    return ADMIN


def _record_window(ctx: ApiContext, window: Window) -> None:
    with ctx.session_factory.begin() as session:
        audit.record_event(
            session,
            actor=ANONYMOUS.name,
            tenant_id=None,
            action="auth.failures",
            target_type="client",
            target_id=window.client,
            request_id=None,
            outcome=AuditOutcome.DENIED,
            details={
                "api_key_failures": window.failures.get("api_key", 0),
                "admin_failures": window.failures.get("admin", 0),
                "throttled": window.throttled,
                "window_s": round(ctx.auth_throttle.window_s),
                "window_started_at": window.started_at.isoformat(timespec="seconds"),
            },
        )


def flush_auth_failures(ctx: ApiContext, *, everything: bool = False) -> int:
    """Audit every closed window (all of them at shutdown, with `everything`); returns how many rows."""
    windows = ctx.auth_throttle.closed(everything=everything)
    for i, window in enumerate(windows):
        try:
            _record_window(ctx, window)
        except (StoreError, SQLAlchemyError) as e:
            ctx.auth_throttle.restore(windows[i:])  # the store is down: keep the counts for the next flush
            log.warning(
                "auth failures not audited yet", extra={"windows": len(windows) - i, "exc_type": type(e).__name__}
            )
            return i
        if window.total:
            log.warning(
                "failed authentications",
                extra={"client": window.client, "failures": window.total, "throttled": window.throttled},
            )
    return len(windows)
