"""Tenants: created by the admin API (or a CLI batch's default tenant), found by id or name."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service.store.errors import ConflictError
from service.store.models import Tenant


def create_tenant(session: Session, name: str) -> Tenant:
    """Create a tenant; a taken name is a `ConflictError`."""
    tenant = Tenant(id=uuid.uuid4(), name=name)
    try:
        with session.begin_nested():
            session.add(tenant)
    except IntegrityError as e:
        raise ConflictError(f"tenant name already taken: {name!r}") from e
    return tenant


def get_tenant(session: Session, tenant_id: uuid.UUID) -> Tenant | None:
    """A tenant by id."""
    return session.get(Tenant, tenant_id)


def get_tenant_by_name(session: Session, name: str) -> Tenant | None:
    """A tenant by its unique name (for the admin CLI)."""
    return session.scalars(select(Tenant).where(Tenant.name == name)).one_or_none()
