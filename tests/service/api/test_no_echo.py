"""No echo: an error response says a code, our fixed message for it, and details in our own words only.

Requests carry a marker where a tenant controls the text (field names, values, a schema's name and
content, a webhook host, a schema name to extract with); no response, log line or audit row may
quote it back, whatever the layer that refused it (FastAPI's validation, jsonschema, the grammar
backend, our use cases).
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from service.api.messages import (
    MESSAGES,
    STATUS_MESSAGES,
    public_details,
    public_message,
    validation_errors,
)
from tests.support.api import TenantKey, upload

MARKER = f"canary{uuid.uuid4().hex}"


def _refused(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == code, error
    assert error["message"] == public_message(status, code)  # ours, whatever the exception said
    assert MARKER not in response.text.lower() and MARKER.upper() not in response.text
    return error


SCHEMAS: dict[str, tuple[dict[str, Any], str]] = {
    "not-json-schema": ({"type": MARKER}, "invalid_schema"),
    "not-an-object": ({"type": "string", "description": MARKER * 10}, "invalid_schema"),
    "bad-regex": (
        {"type": "object", "properties": {MARKER: {"type": "string", "pattern": f"(({MARKER}"}}},
        "invalid_schema",
    ),
    "backend-refuses": (
        {"type": "object", "properties": {MARKER: {"not": {"type": "string", "description": MARKER * 20}}}},
        "unsupported_schema",
    ),
    "meta-schema": (
        {"type": "object", "properties": {"a": {"type": "string", "minLength": MARKER * 6}}},
        "invalid_schema",
    ),
}


@pytest.mark.parametrize("case", list(SCHEMAS), ids=list(SCHEMAS))
def test_schema_refusals_quote_nothing_of_the_schema(
    client: httpx.Client, tenant_a: TenantKey, audit_rows: Callable[..., list[dict[str, Any]]], case: str
) -> None:
    schema, code = SCHEMAS[case]
    name = f"s{uuid.uuid4().hex[:8]}-{case}"  # the name is the schema's id (audited as its target): no marker
    response = client.post("/v1/schemas", json={"name": name, "json_schema": schema}, headers=tenant_a.headers)
    error = _refused(response, 422, code)
    assert set(error["details"]) <= {"grammar_backend", "reason", "limit", "max"}
    rows = audit_rows(tenant_id=uuid.UUID(tenant_a.tenant_id), action="schema.register")
    assert rows and MARKER not in repr(rows)


def test_a_name_we_do_not_know_is_not_quoted(client: httpx.Client, tenant_a: TenantKey) -> None:
    document = upload(client, tenant_a, f"Note {uuid.uuid4().hex}.\n".encode())
    unknown = client.post(
        "/v1/extractions", json={"document_id": document["id"], "schema_name": MARKER}, headers=tenant_a.headers
    )
    _refused(unknown, 422, "unknown_schema")
    versioned = client.get(f"/v1/schemas/{MARKER}", params={"version": 3}, headers=tenant_a.headers)
    _refused(versioned, 404, "not_found")


def test_validation_errors_name_only_our_fields(client: httpx.Client, tenant_a: TenantKey, logs: io.StringIO) -> None:
    response = client.post(
        "/v1/extractions",
        json={"document_id": MARKER, "schema_name": MARKER.upper(), MARKER: {"nested": MARKER}, "schema_version": 0},
        headers=tenant_a.headers,
    )
    error = _refused(response, 422, "validation_error")
    locations = sorted(tuple(e["loc"]) for e in error["details"]["errors"])
    assert locations == [("body", "*"), ("body", "document_id"), ("body", "schema_name"), ("body", "schema_version")]
    for item in error["details"]["errors"]:
        assert set(item) == {"loc", "msg", "type"} and item["msg"]
    query = client.get(f"/v1/schemas/{MARKER}", params={"version": MARKER}, headers=tenant_a.headers)
    _refused(query, 422, "validation_error")
    assert MARKER not in logs.getvalue()


def test_a_refused_webhook_host_is_not_quoted(client: httpx.Client, tenant_a: TenantKey) -> None:
    document = upload(client, tenant_a, f"Hook {uuid.uuid4().hex}.\n".encode())
    for url, code in (
        (f"http://{MARKER}.invalid/hook", "webhook_url_refused"),
        (f"http://10.1.2.3/{MARKER}", "webhook_url_refused"),
        (f"http://[::ffff:10.1.2.3]/{MARKER}", "webhook_url_refused"),
        (f"ftp://{MARKER}.example/", "validation_error"),
    ):
        body = {"document_id": document["id"], "schema_name": "nda", "webhook_url": url}
        response = client.post("/v1/extractions", json=body, headers=tenant_a.headers)
        error = _refused(response, 422, code)
        assert set(error["details"]) == ({"reason"} if code == "webhook_url_refused" else {"errors"})


def test_bodies_that_are_not_json_are_not_quoted(client: httpx.Client, tenant_a: TenantKey) -> None:
    headers = {**tenant_a.headers, "Content-Type": "application/json"}
    response = client.post("/v1/schemas", content=f'{{"name": "{MARKER}", '.encode(), headers=headers)
    error = _refused(response, 422, "validation_error")
    assert [e["type"] for e in error["details"]["errors"]] == ["json_invalid"]


def test_every_message_is_ours_and_short() -> None:
    for code, message in {**MESSAGES, **{str(k): v for k, v in STATUS_MESSAGES.items()}}.items():
        assert message and len(message) < 200 and "{" not in message.replace("{'type'", "").replace("{...}", ""), code
    assert public_message(422, "something_part_a_adds") == STATUS_MESSAGES[422]
    assert public_message(599, "x") == STATUS_MESSAGES[500]


def test_details_keep_our_keys_and_identifiers_only() -> None:
    details = {
        "reason": "non_public_address",
        "limit": "max_json_body_bytes",
        "max": 1048576,
        "grammar_backend": "llguidance",
        "path": "$.properties.patient_name",  # the tenant's field names: not ours to repeat
        "property": "patient_name",
        "schema_text": '{"type": "object"}',
        "expected": "multipart/form-data",
        "field": "a value with spaces and 'quotes'",
        "pages_without_text": [1, 2, 3],
        "id": str(uuid.UUID(int=7)),
    }
    assert public_details(details) == {
        "reason": "non_public_address",
        "limit": "max_json_body_bytes",
        "max": 1048576,
        "grammar_backend": "llguidance",
        "expected": "multipart/form-data",
        "pages_without_text": [1, 2, 3],
        "id": str(uuid.UUID(int=7)),
    }


def test_validation_messages_keep_our_constraints_and_drop_the_input() -> None:
    ours = frozenset({"document_id", "schema_name"})
    errors = [
        {"type": "uuid_parsing", "loc": ("body", "document_id"), "ctx": {"error": f"found `{MARKER}` at 1"}},
        {"type": "string_pattern_mismatch", "loc": ("body", "schema_name"), "ctx": {"pattern": "^[a-z]+$"}},
        {"type": "extra_forbidden", "loc": ("body", MARKER), "input": MARKER},
        {"type": "value_error", "loc": ("body", "schema_name"), "ctx": {"error": ValueError(MARKER)}},
        {"type": "not-a-pydantic-type", "loc": ("query", 3), "msg": MARKER},
    ]
    assert validation_errors(errors, ours) == [
        {"loc": ["body", "document_id"], "msg": "Input should be a valid UUID", "type": "uuid_parsing"},
        {
            "loc": ["body", "schema_name"],
            "msg": "String should match pattern '^[a-z]+$'",
            "type": "string_pattern_mismatch",
        },
        {"loc": ["body", "*"], "msg": "Extra inputs are not permitted", "type": "extra_forbidden"},
        {"loc": ["body", "schema_name"], "msg": "Value error", "type": "value_error"},
        {"loc": ["query", "3"], "msg": "invalid value", "type": "error"},
    ]
