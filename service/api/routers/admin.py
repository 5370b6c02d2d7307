"""`/v1/admin`: tenants and their API keys, behind the admin token."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Response

from service.api.models import ApiKeyCreated, ApiKeyIn, TenantIn, TenantOut
from service.api.routers.deps import COMMON_ERRORS, NOT_FOUND, Admin, Ctx, RequestId, _error
from service.api.usecases import admin as usecases

router = APIRouter(
    prefix="/v1/admin",
    tags=["admin"],
    responses={**COMMON_ERRORS, 403: _error("Admin endpoints are disabled (no admin token configured).")},
)


@router.post(
    "/tenants",
    status_code=201,
    response_model=TenantOut,
    summary="Create a tenant",
    responses={409: _error("The name is taken.")},
)
def create_tenant(body: TenantIn, ctx: Ctx, actor: Admin, request_id: RequestId) -> TenantOut:
    """A new, empty tenant."""
    return usecases.create_tenant(ctx, actor, request_id, body.name)


@router.post(
    "/tenants/{tenant_id}/keys",
    status_code=201,
    response_model=ApiKeyCreated,
    summary="Create an API key for a tenant",
    responses=NOT_FOUND,
)
def create_key(tenant_id: uuid.UUID, body: ApiKeyIn, ctx: Ctx, actor: Admin, request_id: RequestId) -> ApiKeyCreated:
    """The key is in this response only: it is stored as a prefix and a hash."""
    return usecases.create_api_key(ctx, actor, request_id, tenant_id, body.name)


@router.delete(
    "/tenants/{tenant_id}/keys/{key_id}",
    status_code=204,
    response_class=Response,
    summary="Revoke an API key",
    responses=NOT_FOUND,
)
def revoke_key(tenant_id: uuid.UUID, key_id: uuid.UUID, ctx: Ctx, actor: Admin, request_id: RequestId) -> Response:
    """Takes effect on the next request made with it."""
    usecases.revoke_api_key(ctx, actor, request_id, tenant_id, key_id)
    return Response(status_code=204)
