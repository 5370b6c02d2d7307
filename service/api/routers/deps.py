"""Request-scoped dependencies: the app context, the request id, and who is calling."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from service.api.context import Actor, ApiContext
from service.api.models import ErrorResponse
from service.api.observability import request_id_var
from service.api.usecases import auth

api_key_bearer = HTTPBearer(
    auto_error=False, scheme_name="ApiKeyBearer", description="A tenant API key: `Authorization: Bearer <key>`."
)
api_key_header = APIKeyHeader(
    name="X-API-Key", auto_error=False, scheme_name="ApiKeyHeader", description="A tenant API key."
)
admin_bearer = HTTPBearer(
    auto_error=False, scheme_name="AdminToken", description="The admin token from `ABSTRACTOR_ADMIN_TOKEN`."
)


def _error(description: str) -> dict[str, Any]:
    return {"model": ErrorResponse, "description": description}


# Declared on every route, so the OpenAPI document (and schemathesis) knows each failure's shape.
COMMON_ERRORS: dict[int | str, dict[str, Any]] = {
    400: _error("The body cannot be decoded (not UTF-8 JSON, broken framing)."),
    401: _error("Missing or unknown credentials."),
    408: _error("The request body did not arrive in time."),
    413: _error("The request body is larger than the limit (refused before it is parsed)."),
    422: _error("The request does not match the API schema, or cannot be acted on."),
    429: _error("Too many failed authentications from this address; retry after `Retry-After` seconds."),
    500: _error("Internal error (never carries request content)."),
    503: _error("The store is busy or unreachable; retry."),
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: _error("Unknown id, or another tenant's id (indistinguishable).")}


def get_ctx(request: Request) -> ApiContext:
    """The app's shared context."""
    ctx: ApiContext = request.app.state.ctx
    return ctx


def get_request_id() -> str:
    """This request's id (set by the middleware from X-Request-ID or freshly made)."""
    return request_id_var.get() or uuid.uuid4().hex


Ctx = Annotated[ApiContext, Depends(get_ctx)]
RequestId = Annotated[str, Depends(get_request_id)]


def client_address(request: Request) -> str:
    """The peer's address (a proxy's X-Forwarded-For only when ABSTRACTOR_FORWARDED_ALLOW_IPS trusts it)."""
    return request.client.host if request.client is not None else "unknown"


ClientAddress = Annotated[str, Depends(client_address)]


def tenant_caller(
    ctx: Ctx,
    request_id: RequestId,
    client: ClientAddress,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(api_key_bearer)],
    header: Annotated[str | None, Security(api_key_header)],
) -> Actor:
    """The tenant whose key came with the request (X-API-Key wins over Authorization)."""
    presented = header or (bearer.credentials if bearer is not None else None)
    return auth.authenticate(ctx, presented, request_id, client)


def admin_caller(
    ctx: Ctx,
    request_id: RequestId,
    client: ClientAddress,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(admin_bearer)],
) -> Actor:
    """The admin, when the admin token came with the request."""
    return auth.authenticate_admin(ctx, bearer.credentials if bearer is not None else None, request_id, client)


Tenant = Annotated[Actor, Depends(tenant_caller)]
Admin = Annotated[Actor, Depends(admin_caller)]
