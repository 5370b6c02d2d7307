"""The admin's actions: tenants and their API keys (the plaintext key is shown once, at creation)."""

from __future__ import annotations

import uuid

from service.api.context import Actor, ApiContext
from service.api.models import ApiKeyCreated, TenantOut
from service.api.usecases.common import not_found, record, record_refusal
from service.store import repositories as repo
from service.store.models import AuditOutcome


def create_tenant(ctx: ApiContext, actor: Actor, request_id: str, name: str) -> TenantOut:
    """A new tenant (names are unique: a taken one is a 409)."""
    with ctx.session_factory.begin() as session:
        tenant = repo.create_tenant(session, name)
        record(
            session, actor, request_id, "tenant.create", "tenant", tenant.id, AuditOutcome.SUCCESS, tenant_id=tenant.id
        )
        return TenantOut(id=tenant.id, name=tenant.name, created_at=tenant.created_at)


def create_api_key(ctx: ApiContext, actor: Actor, request_id: str, tenant_id: uuid.UUID, name: str) -> ApiKeyCreated:
    """A new key for a tenant; the plaintext is in this response only."""
    with ctx.session_factory.begin() as session:
        tenant = repo.get_tenant(session, tenant_id)
        if tenant is not None:
            key, plaintext = repo.create_api_key(session, tenant_id, name)
            record(
                session,
                actor,
                request_id,
                "api_key.create",
                "api_key",
                key.id,
                AuditOutcome.SUCCESS,
                {"prefix": key.prefix},
                tenant_id=tenant_id,
            )
            return ApiKeyCreated(
                id=key.id,
                tenant_id=tenant_id,
                name=key.name,
                prefix=key.prefix,
                key=plaintext,
                created_at=key.created_at,
            )
    error = not_found("tenant")
    record_refusal(ctx, actor, request_id, "api_key.create", "tenant", tenant_id, error)
    raise error


def revoke_api_key(ctx: ApiContext, actor: Actor, request_id: str, tenant_id: uuid.UUID, key_id: uuid.UUID) -> None:
    """Revoke a tenant's key at once; an unknown, foreign or already revoked key is a 404."""
    with ctx.session_factory.begin() as session:
        revoked = repo.revoke_api_key(session, tenant_id, key_id)
        outcome = AuditOutcome.SUCCESS if revoked else AuditOutcome.DENIED
        details = None if revoked else {"error_code": "not_found", "status": 404}
        record(session, actor, request_id, "api_key.revoke", "api_key", key_id, outcome, details, tenant_id=tenant_id)
    if not revoked:
        raise not_found("api_key")
