"""Hostile schemas through the real front door (`POST /v1/schemas`, uvicorn, Postgres): each one ends in a
4xx with its code well within 5 s, is audited, and quotes nothing of itself in the response, in the log
records or on the process's stdout and stderr; the server goes on admitting good schemas.

Every schema carries a marker (in property names, `const`s, descriptions) that must never come back.
"""

from __future__ import annotations

import io
import json
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine

from service.processes.embedded import build_embedded_app
from service.store.session import make_session_factory
from tests.service.api.conftest import ADMIN_TOKEN, api_settings_for
from tests.support.api import TenantKey, make_tenant
from tests.support.engines import DeterministicEngine
from tests.support.servers import ThreadedServer

MARKER = f"canary{uuid.uuid4().hex[:12]}"
SERVER_TIME_S = 5.0  # the issue's bound per request, measured from the client (so with room to spare)


def obj(**properties: Any) -> dict[str, Any]:
    return {"type": "object", "properties": properties}


def fan_out(levels: int) -> dict[str, Any]:
    """The issue's 1.9 KB schema: d0 -> {l: d1, r: d1} -> ..., 2**levels subschemas once expanded."""
    defs: dict[str, Any] = {f"d{levels}": {"type": "string", "description": MARKER}}
    for n in range(levels - 1, -1, -1):
        child = {"$ref": f"#/$defs/d{n + 1}"}
        defs[f"d{n}"] = obj(**{f"{MARKER}l": child, f"{MARKER}r": child})
    return {**obj(root={"$ref": "#/$defs/d0"}), "$defs": defs}


def nested(depth: int) -> dict[str, Any]:
    node: dict[str, Any] = {"type": "string", "description": MARKER}
    for _ in range(depth):
        node = obj(**{MARKER: node})
    return node


class Raw(str):
    """A schema already written as JSON text (nesting too deep for the client's own encoder)."""


def nested_text(depth: int) -> Raw:
    level = json.dumps(obj(**{MARKER: None}), separators=(",", ":")).removesuffix("null}}")
    leaf = json.dumps({"type": "string", "description": MARKER})
    return Raw(level * depth + leaf + "}}" * depth)


def nested_all_of(depth: int) -> dict[str, Any]:
    node: dict[str, Any] = {"type": "string", "const": MARKER}
    for _ in range(depth):
        node = {"allOf": [node]}
    return obj(a=node)


def string(**keywords: Any) -> dict[str, Any]:
    return obj(**{MARKER: {"type": "string", **keywords}})


# name -> (the schema, built lazily, the status, the code)
CASES: dict[str, tuple[Callable[[], Any], int, str]] = {
    "fan-out-30": (lambda: fan_out(30), 422, "schema_too_deep"),
    "self-ref": (lambda: obj(**{MARKER: {"$ref": "#"}}), 422, "schema_recursive"),
    "recursive-required": (
        lambda: {
            **obj(n={"$ref": "#/$defs/node"}),
            "required": ["n"],
            "$defs": {"node": {**obj(**{MARKER: {"$ref": "#/$defs/node"}}), "required": [MARKER]}},
        },
        422,
        "schema_recursive",
    ),
    "nesting-98": (lambda: nested(98), 422, "schema_too_deep"),
    # Deeper than Python's JSON decoder goes: the front door answers that the body cannot be decoded.
    "nesting-5000": (lambda: nested_text(5000), 400, "invalid_body"),
    "nesting-300": (lambda: nested_text(300), 422, "schema_too_deep"),
    "allOf-x200": (lambda: obj(a={"allOf": [nested(20)] * 200}), 422, "schema_too_large"),
    "allOf-nested-200": (lambda: nested_all_of(200), 422, "schema_too_deep"),
    # 5 MiB: the JSON body cap (1 MiB) refuses it unread, before any schema code.
    "200k-properties": (lambda: obj(**{f"{MARKER}{i}": {"type": "string"} for i in range(200_000)}), 413, "too_large"),
    "1-MiB-const": (lambda: obj(a={"const": MARKER * (1024 * 1024 // len(MARKER))}), 413, "too_large"),
    "900-KiB-const": (lambda: obj(a={"const": MARKER * (900 * 1024 // len(MARKER))}), 422, "schema_too_large"),
    "5000-char-const": (lambda: obj(a={"const": MARKER * (5000 // len(MARKER) + 1)}), 422, "schema_too_large"),
    "alternation-repeat": (lambda: string(pattern="^(a|aa){1000,}b$"), 422, "schema_unrunnable"),
    "nested-repeat": (lambda: string(pattern=f"^(({MARKER}){{40}}){{40}}$"), 422, "schema_unrunnable"),
    "minItems-1e9": (
        lambda: obj(**{MARKER: {"type": "array", "items": {"type": "string"}, "minItems": 1_000_000_000}}),
        422,
        "schema_unrunnable",
    ),
    "maxLength-1e6": (lambda: string(maxLength=1_000_000), 422, "schema_unrunnable"),
    "enum-5000": (lambda: string(enum=[f"{MARKER}{i}" for i in range(5000)]), 422, "schema_too_large"),
    "properties-1500": (
        lambda: obj(**{f"o{j}": obj(**{f"{MARKER}{i}": {"type": "string"} for i in range(50)}) for j in range(30)}),
        422,
        "schema_too_large",
    ),
    "prompt-too-long": (
        lambda: obj(**{f"{MARKER}{i}": {"type": "string", "description": MARKER * 6} for i in range(600)}),
        422,
        "schema_too_large",
    ),
    "grammar-refuses": (lambda: obj(**{MARKER: {"not": {"const": MARKER}}}), 422, "unsupported_schema"),
    "boolean-subschema": (lambda: obj(**{MARKER: True}), 422, "schema_unrunnable"),
    "not-an-object": (lambda: {"type": "array", "items": {"const": MARKER}}, 422, "invalid_schema"),
}


def _post(client: httpx.Client, tenant: TenantKey, name: str, schema: Any) -> tuple[httpx.Response, float]:
    text = schema if isinstance(schema, Raw) else json.dumps(schema, allow_nan=True)
    body = f'{{"name": "{name}", "json_schema": {text}}}'.encode()
    headers = {**tenant.headers, "Content-Type": "application/json"}
    started = time.monotonic()
    response = client.post("/v1/schemas", content=body, headers=headers)
    return response, time.monotonic() - started


def _assert_refused(response: httpx.Response, elapsed: float, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text[:500]
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == code, error
    assert elapsed < SERVER_TIME_S, elapsed
    assert MARKER not in response.text
    assert set(error.get("details", {})) <= {"limit", "max", "reason", "grammar_backend"}
    return error


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_a_hostile_schema_is_refused_quickly_audited_and_not_quoted(
    client: httpx.Client,
    tenant_a: TenantKey,
    audit_rows: Callable[..., list[dict[str, Any]]],
    logs: io.StringIO,
    capfd: pytest.CaptureFixture[str],
    case: str,
) -> None:
    build, status, code = CASES[case]
    name = f"h{uuid.uuid4().hex[:8]}"
    response, elapsed = _post(client, tenant_a, name, build())
    _assert_refused(response, elapsed, status, code)
    if status == 422:  # a 400 or a 413 is the front door's, before the body is read as a request
        rows = audit_rows(tenant_id=uuid.UUID(tenant_a.tenant_id), action="schema.register", target_id=name)
        assert [(r["outcome"].lower(), r["details"]) for r in rows] == [
            ("failure", {"error_code": code, "status": 422})
        ]
    out, err = capfd.readouterr()
    assert MARKER not in logs.getvalue() and MARKER not in out and MARKER not in err


def test_values_json_cannot_hold_are_invalid(client: httpx.Client, tenant_a: TenantKey) -> None:
    for value in (float("nan"), float("inf")):
        response, elapsed = _post(client, tenant_a, f"h{uuid.uuid4().hex[:8]}", obj(**{MARKER: {"const": value}}))
        _assert_refused(response, elapsed, 422, "invalid_schema")


def test_the_server_goes_on_admitting_good_schemas(client: httpx.Client, tenant_a: TenantKey) -> None:
    for case in ("nesting-5000", "fan-out-30", "alternation-repeat"):
        build, status, code = CASES[case]
        _assert_refused(*_post(client, tenant_a, f"h{uuid.uuid4().hex[:8]}", build()), status, code)
    good = obj(total={"type": "number", "description": "the invoice's total"})
    response, _ = _post(client, tenant_a, f"good{uuid.uuid4().hex[:8]}", good)
    assert response.status_code == 201, response.text


@pytest.fixture
def bounded_server(api_db: Engine, api_pg_url: str, tmp_path: Path) -> Iterator[Callable[..., ThreadedServer]]:
    """A fresh server with the given settings (stopped at the end of the test)."""
    started: list[ThreadedServer] = []

    def start(**overrides: Any) -> ThreadedServer:
        settings = api_settings_for(api_pg_url, tmp_path, **overrides)
        app = build_embedded_app(
            settings, engine=DeterministicEngine(), session_factory=make_session_factory(api_db), poll_s=0.2
        )
        server = ThreadedServer(app, settings=settings).__enter__()
        started.append(server)
        return server

    yield start
    for server in started:
        server.__exit__(None, None, None)


def test_the_trial_s_limits_come_from_the_settings(
    bounded_server: Callable[..., ThreadedServer], audit_rows: Callable[..., list[dict[str, Any]]]
) -> None:
    # 50 ms: no trial's interpreter even starts in time, so the child is killed at its deadline.
    server = bounded_server(schema_admission_timeout_s=0.05, schema_max_repeat=20)
    with httpx.Client(base_url=server.base_url, timeout=30.0) as client:
        tenant = make_tenant(client, ADMIN_TOKEN)
        name = f"slow{uuid.uuid4().hex[:8]}"
        response, elapsed = _post(client, tenant, name, obj(**{MARKER: {"type": "string"}}))
        error = _assert_refused(response, elapsed, 422, "schema_unrunnable")
        assert error["details"] == {"limit": "schema_admission_timeout_s", "max": 0.05}
        rows = audit_rows(tenant_id=uuid.UUID(tenant.tenant_id), action="schema.register", target_id=name)
        assert [r["details"]["error_code"] for r in rows] == ["schema_unrunnable"]
        # The cheap walk has the server's bounds too: 30 is over this server's 20.
        response, elapsed = _post(client, tenant, f"c{uuid.uuid4().hex[:8]}", string(maxLength=30))
        error = _assert_refused(response, elapsed, 422, "schema_unrunnable")
        assert error["details"] == {"limit": "schema_max_repeat", "max": 20}
        assert client.get("/v1/schemas", headers=tenant.headers).status_code == 200  # the server lives on


def test_under_outlines_core_a_schema_whose_index_would_not_fit_is_refused_at_registration(
    bounded_server: Callable[..., ThreadedServer],
) -> None:
    # Three lists of eight 300-character names: about 16 GiB of outlines-core index over the embedded
    # model's vocabulary, against the default 8; the engine would refuse every job, so admission does.
    server = bounded_server(grammar_backend="outlines_core")
    names = {"type": "array", "items": {"type": "string", "maxLength": 300, "description": MARKER}, "maxItems": 8}
    with httpx.Client(base_url=server.base_url, timeout=30.0) as client:
        tenant = make_tenant(client, ADMIN_TOKEN)
        schema = obj(**{f"{MARKER}{n}": names for n in range(3)})
        error = _assert_refused(*_post(client, tenant, f"big{uuid.uuid4().hex[:8]}", schema), 422, "grammar_too_large")
        assert error["details"] == {"limit": "grammar_index_max_gib", "max": 8.0}
        response, _ = _post(client, tenant, f"one{uuid.uuid4().hex[:8]}", obj(**{MARKER: names}))
        assert response.status_code == 201, response.text  # one list fits: about 5.5 GiB
