"""Schemathesis against the served OpenAPI document, over real HTTP: no 5xx, no off-schema response.

Every operation gets a bounded, derandomized (same examples every run) set of generated requests,
authenticated as a tenant (as the admin on /v1/admin), and each response goes through schemathesis'
default checks: server errors, status codes, content types, headers and bodies against the schema.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from service.api import create_app
from tests.service.api.conftest import ADMIN_TOKEN, api_settings_for
from tests.support.api import TenantKey, make_tenant
from tests.support.servers import ThreadedServer

MAX_EXAMPLES = 25
JUDGED_BEYOND_SCHEMA = {
    ("POST", "/v1/documents"),
    ("POST", "/v1/schemas"),
    ("POST", "/v1/extractions"),
    ("POST", "/v1/batches"),
}


@pytest.fixture(scope="module")
def fuzz_tenant(server: ThreadedServer) -> TenantKey:
    """One tenant for the whole run (keys are made through the admin API like any operator would)."""
    import httpx

    with httpx.Client(base_url=server.base_url) as client:
        return make_tenant(client, ADMIN_TOKEN)


def _openapi() -> dict[str, Any]:
    # Built from the same factory the server uses; the database URL is not touched to build it.
    # `test_the_served_document_is_the_one_fuzzed` holds the served document to this one.
    app = create_app(api_settings_for("sqlite:///:memory:", Path("var")))
    document: dict[str, Any] = app.openapi()
    return document


OPENAPI = _openapi()
schema = schemathesis.openapi.from_dict(OPENAPI)


def test_the_served_document_is_the_one_fuzzed(server: ThreadedServer) -> None:
    import httpx

    assert httpx.get(f"{server.base_url}/openapi.json").json() == OPENAPI


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_api_conforms_to_its_openapi(case: Any, server: ThreadedServer, fuzz_tenant: TenantKey) -> None:
    token = ADMIN_TOKEN if case.path.startswith("/v1/admin") else fuzz_tenant.key
    # Some schema-valid requests are refused on purpose, for reasons OpenAPI cannot state: a file's
    # type is judged from its bytes (415), a JSON Schema must compile with the grammar backend, a
    # schema name must exist, a webhook URL must resolve to a public address (422). Every other
    # check, and this one elsewhere, still applies.
    excluded = [positive_data_acceptance] if (case.method, case.path) in JUDGED_BEYOND_SCHEMA else []
    case.call_and_validate(
        base_url=server.base_url,
        headers={"Authorization": f"Bearer {token}"},
        excluded_checks=excluded,
        timeout=30,
    )
