"""What an error response may say: one fixed message per code, and details made of our own words only.

An exception's text is never sent: it may quote the request (a schema name, a field of a tenant's JSON
Schema, a grammar backend's report on it, a file name). The response carries the exception's `code`,
the message written here for that code (or for its status), and those of its `details` whose keys
are listed here and whose values are numbers, booleans or short identifiers. Request validation
errors keep their location only as far as it names fields of the API's own models.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic_core import PydanticKnownError

from workers.documents.errors import DOCUMENT_ERROR_CODES, DocumentError

NOT_FOUND_MESSAGE = "no such resource"
"""The one message for unknown and foreign ids alike."""

MESSAGES: dict[str, str] = {
    # Who is calling.
    "missing_api_key": "send an API key as 'Authorization: Bearer <key>' or 'X-API-Key: <key>'",
    "invalid_api_key": "unknown or revoked API key",
    "missing_admin_token": "send the admin token as 'Authorization: Bearer <token>'",
    "invalid_admin_token": "wrong admin token",
    "admin_disabled": "admin endpoints are disabled: no admin token is configured",
    "too_many_auth_failures": "too many failed authentications from this address; retry after Retry-After seconds",
    "not_found": NOT_FOUND_MESSAGE,
    # The HTTP front door.
    "invalid_host": "the Host header names no host this server answers for",
    "invalid_http": "the request is not valid HTTP/1.1",
    "headers_too_large": "the request line and headers are larger than the limit",
    "request_timeout": "the request did not arrive in time",
    "too_many_connections": "the server holds as many connections as it may; retry later",
    "too_large": "the request or the document is larger than the limit",
    "invalid_body": "the body cannot be decoded (not UTF-8 JSON, or broken framing)",
    "validation_error": "the request does not match the API schema",
    "method_not_allowed": "this path does not take this method",
    # Uploads.
    "unsupported_request_type": "upload the document as multipart/form-data with a 'file' part",
    "invalid_multipart": "the multipart body is malformed",
    "truncated_upload": "the multipart body ends before its closing boundary; nothing was stored",
    "missing_file": "the multipart body has no 'file' part",
    "client_disconnected": "the client went away mid-upload",
    # Schemas and extractions.
    "invalid_schema": "not a valid JSON Schema, or its root is not {'type': 'object', 'properties': {...}}",
    "unsupported_schema": "the grammar backend cannot compile this JSON Schema",
    "schema_too_large": "the JSON Schema is larger than a limit (details.limit names it, details.max says how large)",
    "schema_too_deep": "the JSON Schema nests deeper than the limit",
    "schema_recursive": "the JSON Schema refers to itself ($ref cycle); extraction schemas must be finite",
    "schema_unrunnable": "the JSON Schema asks for more than a generation can do in bounded time",
    "grammar_too_large": (
        "the outlines_core grammar backend's index for this JSON Schema would need more memory than "
        "ABSTRACTOR_GRAMMAR_INDEX_MAX_GIB allows (shorter maxLength or maxItems, or the llguidance backend)"
    ),
    "admission_busy": "every schema check is busy; retry",
    "unknown_schema": "no such schema (built-in or registered by this tenant)",
    "reserved_schema_name": "the name belongs to a built-in schema",
    "unknown_document": "no such document",
    "conflict": "the request clashes with a concurrent change; retry",
    "webhook_url_refused": "the webhook URL is not allowed (details.reason says why)",
    "webhooks_disabled": "webhooks are off: the operator has set no ABSTRACTOR_WEBHOOK_SECRET; poll instead",
    "parquet_unavailable": "Parquet export needs pyarrow on the server",
    "bad_format": "unknown export format",
    # Page images and reviews.
    "no_page_images": "only PDF documents have page images",
    "not_reviewable": "only a succeeded job's record can be reviewed",
    "unknown_field": "no such field in the job's schema",
    "invalid_decision": "the decision does not fit its action (details.reason names what)",
    "invalid_correction": "the corrected value does not satisfy the job's schema",
    # A failed job (`error` of GET /v1/extractions/{id}).
    "invalid_json": "the model's output is not JSON",
    "validation_failed": "the model's output does not satisfy the schema",
    "output_truncated": "the model's output was cut at the token budget",
    "generation_error": "the engine failed to generate an answer",
    "grammar_failed": "the grammar engine failed while generating an answer for this schema",
    "generation_stalled": "the generation made no progress within its token or time budget",
    "merge_invalid": "the merged record does not satisfy the schema",
    "time_limit": "the job ran past its time limit",
    "document_missing": "the job's document is gone",
    "interrupted": "the job was interrupted",
    # The service's side.
    "store_transient_error": "the store is busy; retry",
    "internal_error": "internal error",
    **{code: DocumentError(code).message for code in DOCUMENT_ERROR_CODES},  # type: ignore[arg-type]
}

STATUS_MESSAGES: dict[int, str] = {
    400: "the request is malformed",
    401: "authentication failed",
    403: "not allowed",
    404: NOT_FOUND_MESSAGE,
    405: "this path does not take this method",
    408: "the request did not arrive in time",
    409: "the request clashes with existing state",
    413: "the request is larger than the limit",
    415: "unsupported media type",
    422: "the request cannot be acted on",
    429: "too many requests; retry later",
    431: "the request headers are larger than the limit",
    500: "internal error",
    503: "the service is busy; retry",
}

_CODE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_WORD = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:/+\-]{0,79}$")
"""A detail's string value: an id, a code, a limit's or a media type's name (no spaces, no quotes)."""

DETAIL_KEYS = frozenset(
    {"allowed", "attempts", "byte_offset", "bytes_read", "expected", "field", "grammar_backend", "id",
     "limit", "max", "pages_without_text", "reason", "resource", "retry_after_s", "status"}
)  # fmt: skip
"""Keys a response's `details` may carry (besides the validation errors' `errors`); others are dropped."""


def public_code(code: object) -> str:
    """The code itself when it is one of ours in shape (snake_case), else `error`."""
    return code if isinstance(code, str) and _CODE.fullmatch(code) else "error"


def public_message(status: int, code: str) -> str:
    """The fixed message for `code`, else the one for `status`: never text taken from an exception."""
    if code in MESSAGES:
        return MESSAGES[code]
    return STATUS_MESSAGES.get(status) or STATUS_MESSAGES[500 if status >= 500 else 400]


def job_error_message(code: str) -> str:
    """What a failed job's `error.message` says: the fixed message of its code (engines and grammars may
    quote the document or the schema in theirs, so the stored text is for operators, not for responses)."""
    return MESSAGES.get(code, "the job failed; error.code says why")


def _scalar(value: object) -> tuple[bool, object]:
    if value is None or isinstance(value, bool | int | float):
        return True, value
    if isinstance(value, str) and _WORD.fullmatch(value):
        return True, value
    return False, None


def public_details(details: Mapping[str, Any] | None) -> dict[str, Any]:
    """The listed keys whose values are numbers, booleans, short identifiers, or lists of those."""
    out: dict[str, Any] = {}
    for key, value in (details or {}).items():
        if key not in DETAIL_KEYS:
            continue
        if isinstance(value, list | tuple):
            items = [_scalar(v) for v in value[:32]]
            if all(ok for ok, _ in items):
                out[key] = [v for _, v in items]
            continue
        ok, clean = _scalar(value)
        if ok:
            out[key] = clean
    return out


# --- request validation errors -----------------------------------------------------------------------

_LOCATIONS = frozenset({"body", "query", "path", "header", "cookie"})
_OUR_CONTEXT = frozenset({"pattern", "expected", "expected_schemes", "field_type", "expected_plural"})
"""Context values taken from the API's models (a constraint's pattern, a literal's choices)."""
_MARK = "\x00"


def field_names(openapi: Mapping[str, Any]) -> frozenset[str]:
    """Every property and parameter name the API's OpenAPI document declares: the fields that are ours."""
    names: set[str] = set()
    for component in (openapi.get("components", {}).get("schemas", {}) or {}).values():
        names.update((component.get("properties") or {}).keys())
    for path in (openapi.get("paths", {}) or {}).values():
        for operation in path.values():
            if isinstance(operation, dict):
                names.update(p.get("name", "") for p in operation.get("parameters", []) or [])
    return frozenset(n for n in names if n)


def _location(loc: Iterable[object], ours: frozenset[str]) -> list[str]:
    # A name the client made up (an unknown field) or a pydantic internal (a union member's tag) is `*`.
    out: list[str] = []
    for i, part in enumerate(loc):
        if isinstance(part, int) and not isinstance(part, bool):
            out.append(str(part))
        elif isinstance(part, str) and ((i == 0 and part in _LOCATIONS) or part in ours):
            out.append(part)
        else:
            out.append("*")
    return out


def _validation_message(error_type: str, ctx: Mapping[str, Any] | None) -> str:
    """pydantic's message for the type, with numbers and our models' constraints only; the rest cut off."""
    filled: dict[str, Any] = {}
    for key, value in (ctx or {}).items():
        if isinstance(value, int | float) and not isinstance(value, bool):
            filled[key] = value
        elif key in _OUR_CONTEXT and isinstance(value, str) and len(value) <= 200:
            filled[key] = value
    for _ in range(8):
        try:
            text = PydanticKnownError(error_type, filled).message()  # type: ignore[arg-type]
        except KeyError:
            return "invalid value"
        except TypeError as e:  # "<Type>: '<key>' required in context": mark it and try again
            found = re.search(r"'(\w+)' required in context", str(e))
            if found is None:
                return "invalid value"
            filled[found.group(1)] = _MARK
            continue
        return text.split(_MARK, 1)[0].rstrip(" ,:") or "invalid value"
    return "invalid value"


def validation_errors(errors: Iterable[Mapping[str, Any]], ours: frozenset[str]) -> list[dict[str, Any]]:
    """Location, message and type per error (at most 20), in our words: no input, no names we did not define."""
    out: list[dict[str, Any]] = []
    for error in errors:
        if len(out) >= 20:
            break
        error_type = public_code(error.get("type"))
        out.append(
            {
                "loc": _location(error.get("loc", ()), ours),
                "msg": _validation_message(error_type, error.get("ctx")),
                "type": error_type,
            }
        )
    return out
