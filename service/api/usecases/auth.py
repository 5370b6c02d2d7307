"""Who is calling: a tenant's API key, or the admin token; unknown credentials are audited and refused."""

from __future__ import annotations

import hmac

from service.api.context import Actor, ApiContext
from service.api.errors import ForbiddenError, UnauthorizedError
from service.api.usecases.common import ADMIN, ANONYMOUS, record_refusal
from service.store import repositories as repo


def authenticate(ctx: ApiContext, presented: str | None, request_id: str) -> Actor:
    """The tenant behind an API key; a missing or unknown key is a 401 (unknown ones are audited)."""
    if not presented:
        raise UnauthorizedError(
            "send an API key as 'Authorization: Bearer <key>' or 'X-API-Key: <key>'", code="missing_api_key"
        )
    with ctx.session_factory.begin() as session:
        key = repo.find_api_key(session, presented)
        if key is not None:
            return Actor(f"api_key:{key.id}", key.tenant_id)
    error = UnauthorizedError("unknown or revoked API key", code="invalid_api_key")
    record_refusal(ctx, ANONYMOUS, request_id, "auth.api_key", "api_key", None, error)
    raise error


def authenticate_admin(ctx: ApiContext, presented: str | None, request_id: str) -> Actor:
    """The admin, if the configured admin token was presented (compared in constant time)."""
    token = ctx.settings.admin_token
    if token is None:
        raise ForbiddenError("admin endpoints are disabled: no admin token is configured", code="admin_disabled")
    if not presented:
        raise UnauthorizedError("send the admin token as 'Authorization: Bearer <token>'", code="missing_admin_token")
    if not hmac.compare_digest(presented.encode("utf-8"), token.get_secret_value().encode("utf-8")):
        error = UnauthorizedError("wrong admin token", code="invalid_admin_token")
        record_refusal(ctx, ANONYMOUS, request_id, "auth.admin", "admin", None, error)
        raise error
    return ADMIN
