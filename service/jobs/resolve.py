"""Which schema a job extracts with: resolved once at submission, and loaded again from the job's row.

Built-in schema names are reserved, so a name is looked up among the built-ins first and only then
among the tenant's registered schemas; another tenant's schema is as unknown as a name never seen.
A queued job records the resolved name and version (and the user schema row, which its first job
froze), so the worker loads exactly what the submission resolved.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from schemas.bounds import SchemaBounds, check_shape
from schemas.errors import UnknownSchemaError
from schemas.registry import SchemaSpec, get_schema, is_builtin
from schemas.user_schema import UserSchema, load_user_schema
from service.store import repositories as repo
from service.store.models import Job
from service.store.models import UserSchema as UserSchemaRow


@dataclass(frozen=True)
class ResolvedSchema:
    """A resolved schema: built-in (`user` is None) or a tenant's registered version."""

    name: str
    version: int
    user: UserSchemaRow | None = None

    @property
    def ref(self) -> str:
        """`name@version`, as jobs and audit details write it."""
        return f"{self.name}@{self.version}"


def resolve_schema(session: Session, tenant_id: uuid.UUID, name: str, version: int | None = None) -> ResolvedSchema:
    """Built-in schemas first (their names are reserved), then the tenant's own; `name@N` is accepted.

    An unknown name or version raises `UnknownSchemaError` (bad input).
    """
    if "@" in name and version is None:
        base, _, number = name.partition("@")
        if number.isdigit():
            name, version = base, int(number)
    if is_builtin(name):
        spec = get_schema(name if version is None else f"{name}@{version}")
        return ResolvedSchema(spec.name, spec.version)
    user = repo.get_user_schema(session, tenant_id, name, version)
    if user is None:
        raise UnknownSchemaError(f"unknown schema {name if version is None else f'{name}@{version}'!r}")
    return ResolvedSchema(user.name, user.version, user)


@dataclass(frozen=True)
class UserSchemaSpec:
    """A tenant's registered schema in the shape the pipeline takes (`ref`, `model`, `json_schema()`)."""

    ref: str
    user: UserSchema

    @property
    def model(self) -> Any:
        """The Pydantic model that validates through the user's JSON Schema."""
        return self.user.model

    def json_schema(self) -> dict[str, Any]:
        """The user's schema as registered."""
        return self.user.schema


def job_schema(session: Session, job: Job, bounds: SchemaBounds | None = None) -> SchemaSpec | UserSchemaSpec:
    """The schema a queued job was keyed with; a user schema deleted since raises `UnknownSchemaError`.

    A tenant's schema meets admission's cheap walk again, with the deployment's `bounds` (the settings'
    `ABSTRACTOR_SCHEMA_MAX_*`, which the worker's `PipelineOptions` carry; the defaults if None): one
    registered before a bound existed, or before it was lowered, fails the job with the bound's code
    (`SchemaShapeError`: `schema_too_large`, `schema_unrunnable`, ...) before any prompt or grammar is built.
    """
    if job.user_schema_id is None:
        return get_schema(job.schema_ref)
    row = repo.get_user_schema(session, job.tenant_id, job.schema_name, job.schema_version)
    if row is None:
        raise UnknownSchemaError(f"schema {job.schema_ref} is gone")
    check_shape(row.json_schema, bounds or SchemaBounds())
    return UserSchemaSpec(ref=row.ref, user=load_user_schema(row.json_schema, name=row.name))
