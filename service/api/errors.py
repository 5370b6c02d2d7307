"""The API's one error model, `{"error": {"code", "message", "details"}}`, and the one place that maps
every exception root (ours, the store's, the workers', the service's, the schemas', the framework's) to a
status. Every root but the schemas' and the framework's derives from `workers.errors.AbstractorError`.

What a response says is decided in `service/api/messages.py`, never by an exception's text: a fixed
message per code (or status), details limited to listed keys with numbers and identifiers, and
validation errors located by the API's own field names. Exception messages stay in the process (the
CLI prints them; the API logs only codes), since they may quote the request: a schema's name, a tenant's
JSON Schema, a grammar backend's report on it (FastAPI's validation errors echo the input; we drop it).
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from schemas.errors import SchemaError
from service.api.messages import NOT_FOUND_MESSAGE as NOT_FOUND_MESSAGE  # re-exported: the one 404 message
from service.api.messages import (
    field_names,
    public_code,
    public_details,
    public_message,
    validation_errors,
)
from service.errors import ServiceError
from service.store.errors import (
    BadInputStoreError,
    ConflictError,
    StoreConfigError,
    StoreError,
    is_transient,
)
from workers.errors import AbstractorError, BadInputError, ConfigError, TransientError, WorkerError

log = logging.getLogger(__name__)


class ApiError(AbstractorError):
    """An error the API answers on purpose; subclasses fix the status and default code."""

    status_code: int = 400
    code = "bad_request"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status_code: int | None = None,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message, code=code, details=details)
        if status_code is not None:
            self.status_code = status_code
        self.headers = headers


class NotFoundError(ApiError):
    """Unknown id, or another tenant's id: the two must be indistinguishable."""

    status_code = 404
    code = "not_found"


class UnauthorizedError(ApiError):
    """No credentials, or credentials we do not know."""

    status_code = 401
    code = "unauthorized"


class ForbiddenError(ApiError):
    """Known caller, action not allowed (e.g. admin endpoints while no admin token is configured)."""

    status_code = 403
    code = "forbidden"


class ConflictApiError(ApiError):
    """The request clashes with existing state (a taken name)."""

    status_code = 409
    code = "conflict"


class PayloadTooLargeError(ApiError):
    """The upload is larger than the configured limit."""

    status_code = 413
    code = "too_large"


class UnsupportedMediaTypeError(ApiError):
    """The uploaded bytes (or the request body) are of a type we do not accept."""

    status_code = 415
    code = "unsupported_media_type"


class UnprocessableError(ApiError):
    """Well-formed request that cannot be acted on (unknown schema, schema the backend cannot compile)."""

    status_code = 422
    code = "unprocessable"


class TooManyRequestsError(ApiError):
    """The caller is throttled (failed authentications from its address); `Retry-After` says for how long."""

    status_code = 429
    code = "too_many_requests"


def error_body(status: int, code: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    """The one error shape, in our words only: the code, its fixed message, the details that are ours."""
    code = public_code(code)
    return {"error": {"code": code, "message": public_message(status, code), "details": public_details(details)}}


def error_response(
    status: int,
    code: str,
    details: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
    body: dict[str, Any] | None = None,
) -> JSONResponse:
    """A JSON error response in the one shape (`body`: one already made by `error_body`)."""
    return JSONResponse(body or error_body(status, code, details), status_code=status, headers=headers)


_DOCUMENT_STATUS = {"unsupported_media_type": 415, "too_large": 413}


def classify(exc: BaseException) -> tuple[int, str, str, dict[str, Any]]:
    """(status, code, message, details) for any exception; unknown ones are a 500 without their text."""
    if isinstance(exc, ApiError):
        return exc.status_code, exc.code, exc.message, exc.details
    if isinstance(exc, StoreError):
        if isinstance(exc, ConflictError):
            return 409, exc.code, exc.message, exc.details
        if isinstance(exc, BadInputStoreError):
            return 422, exc.code, exc.message, exc.details
        if is_transient(exc):
            return 503, exc.code, "the store is busy; retry", {}
        if isinstance(exc, StoreConfigError):
            return 500, exc.code, "the service is misconfigured", {}
        return 500, exc.code, "the store failed", {}
    if isinstance(exc, WorkerError):
        if isinstance(exc, BadInputError):
            return _DOCUMENT_STATUS.get(exc.code, 422), exc.code, exc.message, exc.details
        if isinstance(exc, TransientError):
            return 503, exc.code, exc.message, {}
        if isinstance(exc, ConfigError):
            return 500, exc.code, "the service is misconfigured", {}
        return 500, exc.code, "the worker failed", {}
    if isinstance(exc, ServiceError):  # batches and webhooks: bad input, every one
        return 422, exc.code, exc.message, exc.details
    if isinstance(exc, SchemaError):
        return 422, exc.code, str(exc), {}
    if isinstance(exc, AbstractorError):
        return 500, exc.code, "internal error", {}
    if is_transient(exc):
        return 503, "store_transient_error", "the store is busy; retry", {}
    return 500, "internal_error", "internal error", {}


def _our_field_names(request: Request) -> frozenset[str]:
    app = request.app
    names: frozenset[str] | None = getattr(app.state, "field_names", None)
    if names is None:
        names = field_names(app.openapi())
        app.state.field_names = names
    return names


async def _api_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return error_response(exc.status_code, exc.code, exc.details, exc.headers)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    # Location (our field names only), our message and the type: `input` and `ctx` would echo the caller's data.
    body = error_body(422, "validation_error")
    body["error"]["details"] = {"errors": validation_errors(exc.errors(), _our_field_names(request))}
    return error_response(422, "validation_error", body=body)


async def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    try:
        phrase = HTTPStatus(exc.status_code).phrase
    except ValueError:
        phrase = "error"
    code = _HTTP_CODES.get(exc.status_code) or phrase.lower().replace(" ", "_").replace("-", "_")
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        # Starlette names only the first matching route's methods; a path served by several routes
        # (GET and POST /v1/schemas) must list them all.
        headers["Allow"] = ", ".join(_allowed_methods(_request))
    return error_response(exc.status_code, code, {}, headers)


_HTTP_CODES = {400: "invalid_body", 404: "not_found", 405: "method_not_allowed", 408: "request_timeout"}


def _allowed_methods(request: Request) -> list[str]:
    methods: set[str] = set()
    for route in request.app.router.routes:
        match, _ = route.matches(request.scope)
        if match is not Match.NONE:
            methods.update(getattr(route, "methods", None) or ())
    methods.discard("HEAD")  # implied by GET; the OpenAPI document does not list it
    return sorted(methods)


async def _domain_error(_request: Request, exc: Exception) -> JSONResponse:
    status, code, _message, details = classify(exc)
    if status >= 500:
        log.error("request failed", extra={"error_code": code, "exc_type": type(exc).__name__})
    return error_response(status, code, details)


def install_error_handlers(app: FastAPI) -> None:
    """Route every known exception root to the error model (the catch-all lives in the middleware)."""
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    for root in (AbstractorError, SchemaError):
        app.add_exception_handler(root, _domain_error)
