"""A tenant's registered JSON Schemas: versioned by name, frozen by their first job."""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service.store.errors import BadInputStoreError, ConflictError
from service.store.models import UserSchema
from service.store.repositories.shared import update_rows

_SCHEMA_NAME = re.compile(r"^[a-z][a-z0-9_\-]{0,99}$")


def get_user_schema(session: Session, tenant_id: uuid.UUID, name: str, version: int | None = None) -> UserSchema | None:
    """A tenant's schema by name and version (latest when `version` is None)."""
    query = select(UserSchema).where(UserSchema.tenant_id == tenant_id, UserSchema.name == name)
    if version is not None:
        return session.scalars(query.where(UserSchema.version == version)).one_or_none()
    return session.scalars(query.order_by(UserSchema.version.desc()).limit(1)).first()


def list_user_schemas(session: Session, tenant_id: uuid.UUID, name: str | None = None) -> list[UserSchema]:
    """A tenant's schemas (optionally one name's versions), by name then version."""
    query = select(UserSchema).where(UserSchema.tenant_id == tenant_id)
    if name is not None:
        query = query.where(UserSchema.name == name)
    return list(session.scalars(query.order_by(UserSchema.name, UserSchema.version)))


def register_user_schema(
    session: Session, tenant_id: uuid.UUID, name: str, json_schema: Mapping[str, Any]
) -> tuple[UserSchema, bool]:
    """Add the next version of a named schema; re-registering the latest content returns it unchanged."""
    if not _SCHEMA_NAME.fullmatch(name):
        raise BadInputStoreError(f"schema name must match {_SCHEMA_NAME.pattern}: {name!r}")
    latest = get_user_schema(session, tenant_id, name)
    if latest is not None and latest.json_schema == dict(json_schema):
        return latest, False
    version = 1 if latest is None else latest.version + 1
    row = UserSchema(id=uuid.uuid4(), tenant_id=tenant_id, name=name, version=version, json_schema=dict(json_schema))
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError as e:
        raise ConflictError(f"schema {name}@{version} was registered concurrently; retry") from e
    return row, True


def mark_user_schema_used(session: Session, schema: UserSchema) -> None:
    """Freeze a schema version from now on (the database trigger holds it to that)."""
    if not schema.used:
        update_rows(
            session,
            update(UserSchema).where(UserSchema.id == schema.id).values(used=True),
            UserSchema,
            [schema.id],
        )
