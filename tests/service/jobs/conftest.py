"""The store's fixtures (both backends, rolled back after each test), for the tests of a job's life."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy.orm import Session

from service.store import repositories as repo
from service.store.models import Document, Tenant
from tests.service.store.conftest import (  # noqa: F401 - shared fixtures
    app_role,
    db_engine,
    pg_admin,
    pg_database,
    pg_engine,
    pg_url,
    session,
    sqlite_engine,
    sqlite_url,
)


@pytest.fixture
def tenant(session: Session) -> Tenant:  # noqa: F811
    return repo.create_tenant(session, f"jobs-{uuid.uuid4()}")


@pytest.fixture
def document(session: Session, tenant: Tenant) -> Document:  # noqa: F811
    document, _ = repo.add_document(session, tenant.id, f"Note {uuid.uuid4()}.\n".encode(), media_type="text/plain")
    return document
