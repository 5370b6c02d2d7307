"""The API's one error model, `{"error": {"code", "message", "details"}}`, and the one place that maps
every exception root (ours, the store's, the workers', the service's, the schemas', the framework's) to a
status. Every root but the schemas' and the framework's derives from `workers.errors.AbstractorError`.

Messages and details carry ids, codes, limits and JSON paths only: never request bodies, document
text or extracted values (FastAPI's validation errors echo the input; we drop it).
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


NOT_FOUND_MESSAGE = "no such resource"
"""The one message for unknown and foreign ids alike."""


def error_body(code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    """The one error shape."""
    return {"error": {"code": code, "message": message, "details": details or {}}}


def error_response(
    status: int,
    code: str,
    message: str,
    details: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """A JSON error response in the one shape."""
    return JSONResponse(error_body(code, message, details), status_code=status, headers=headers)


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


def _validation_details(exc: RequestValidationError) -> dict[str, Any]:
    # Location, message and type only: `input` and `ctx` would echo the caller's data back and to logs.
    errors = [
        {
            "loc": [str(p) for p in e.get("loc", ())],
            "msg": str(e.get("msg", "")),
            "type": str(e.get("type", "")),
        }
        for e in exc.errors()[:20]
    ]
    return {"errors": errors}


async def _api_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return error_response(exc.status_code, exc.code, exc.message, exc.details, exc.headers)


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return error_response(
        422, "validation_error", "the request does not match the API schema", _validation_details(exc)
    )


async def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    try:
        phrase = HTTPStatus(exc.status_code).phrase
    except ValueError:
        phrase = "error"
    code = _HTTP_CODES.get(exc.status_code) or phrase.lower().replace(" ", "_").replace("-", "_")
    message = NOT_FOUND_MESSAGE if exc.status_code == 404 else phrase
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        # Starlette names only the first matching route's methods; a path served by several routes
        # (GET and POST /v1/schemas) must list them all.
        headers["Allow"] = ", ".join(_allowed_methods(_request))
    return error_response(exc.status_code, code, message, {}, headers)


_HTTP_CODES = {400: "invalid_body"}


def _allowed_methods(request: Request) -> list[str]:
    methods: set[str] = set()
    for route in request.app.router.routes:
        match, _ = route.matches(request.scope)
        if match is not Match.NONE:
            methods.update(getattr(route, "methods", None) or ())
    methods.discard("HEAD")  # implied by GET; the OpenAPI document does not list it
    return sorted(methods)


async def _domain_error(_request: Request, exc: Exception) -> JSONResponse:
    status, code, message, details = classify(exc)
    if status >= 500:
        log.error("request failed", extra={"error_code": code, "exc_type": type(exc).__name__})
    return error_response(status, code, message, details)


def install_error_handlers(app: FastAPI) -> None:
    """Route every known exception root to the error model (the catch-all lives in the middleware)."""
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    for root in (AbstractorError, SchemaError):
        app.add_exception_handler(root, _domain_error)
