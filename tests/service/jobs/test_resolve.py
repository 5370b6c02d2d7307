"""Schema resolution: built-ins first (reserved names), then the tenant's own; a job reloads what it was keyed with."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session

from schemas.bounds import SchemaShapeError
from schemas.errors import UnknownSchemaError
from service.jobs.identity import ModelRef
from service.jobs.resolve import ResolvedSchema, UserSchemaSpec, job_schema, resolve_schema
from service.jobs.submit import submit_job
from service.store import repositories as repo
from service.store.models import Document, Tenant

INVOICE = {"type": "object", "properties": {"total": {"type": "number"}}}
MODEL = ModelRef("m", "b")


def test_a_builtin_resolves_to_its_latest_or_named_version(session: Session, tenant: Tenant) -> None:
    assert resolve_schema(session, tenant.id, "nda") == ResolvedSchema("nda", 1)
    assert resolve_schema(session, tenant.id, "nda", 1).ref == "nda@1"
    assert resolve_schema(session, tenant.id, "nda@1") == ResolvedSchema("nda", 1)
    with pytest.raises(UnknownSchemaError):
        resolve_schema(session, tenant.id, "nda", 99)


def test_a_tenants_schema_resolves_for_that_tenant_only(session: Session, tenant: Tenant) -> None:
    v1, _ = repo.register_user_schema(session, tenant.id, "invoice", INVOICE)
    v2, _ = repo.register_user_schema(session, tenant.id, "invoice", {**INVOICE, "title": "v2"})
    other = repo.create_tenant(session, f"other-{tenant.id}")
    assert resolve_schema(session, tenant.id, "invoice") == ResolvedSchema("invoice", 2, v2)
    assert resolve_schema(session, tenant.id, "invoice@1") == ResolvedSchema("invoice", 1, v1)
    with pytest.raises(UnknownSchemaError, match="invoice"):
        resolve_schema(session, other.id, "invoice")


def test_a_job_reloads_the_schema_it_was_keyed_with(session: Session, tenant: Tenant, document: Document) -> None:
    row, _ = repo.register_user_schema(session, tenant.id, "invoice", INVOICE)
    builtin, _ = submit_job(session, tenant.id, document.id, resolve_schema(session, tenant.id, "nda"), MODEL)
    own, _ = submit_job(session, tenant.id, document.id, resolve_schema(session, tenant.id, "invoice"), MODEL)
    assert own.user_schema_id == row.id
    assert job_schema(session, builtin).ref == "nda@1"
    spec = job_schema(session, own)
    assert isinstance(spec, UserSchemaSpec) and spec.ref == "invoice@1"
    assert spec.json_schema() == INVOICE
    assert spec.model.model_validate({"total": 3}).root == {"total": 3}


def test_a_job_whose_schema_came_in_before_the_bounds_fails_with_their_code(
    session: Session, tenant: Tenant, document: Document
) -> None:
    # Stored directly, as a schema registered before admission counted expansions would be.
    defs = {f"d{n}": {"type": "object", "properties": {"l": {"$ref": f"#/$defs/d{n + 1}"}}} for n in range(40)}
    deep = {"type": "object", "properties": {"root": {"$ref": "#/$defs/d0"}}, "$defs": {**defs, "d40": {}}}
    repo.register_user_schema(session, tenant.id, "deep", deep)
    job, _ = submit_job(session, tenant.id, document.id, resolve_schema(session, tenant.id, "deep"), MODEL)
    with pytest.raises(SchemaShapeError) as refused:
        job_schema(session, job)
    assert refused.value.code == "schema_too_deep"
