"""Schemas: the built-ins and the tenant's registered JSON Schemas, and registering a new version."""

from __future__ import annotations

from schemas.errors import UnknownSchemaError
from schemas.registry import get_schema, is_builtin, list_schemas
from service.api.context import Actor, ApiContext
from service.api.errors import ConflictApiError, UnprocessableError
from service.api.models import SchemaIn, SchemaList, SchemaOut
from service.api.usecases.common import not_found, record, record_refusal
from service.jobs.admission import SchemaRefused, admit_schema, policy_from
from service.store import repositories as repo
from service.store.models import AuditOutcome, UserSchema
from workers.errors import TransientError


def _user_schema_out(row: UserSchema, *, with_schema: bool) -> SchemaOut:
    return SchemaOut(
        name=row.name,
        version=row.version,
        kind="user",
        used=row.used,
        created_at=row.created_at,
        json_schema=row.json_schema if with_schema else None,
    )


def schema_list(ctx: ApiContext, actor: Actor) -> SchemaList:
    """Built-in schemas, then the tenant's registered ones."""
    builtins = [
        SchemaOut(name=s.name, version=s.version, kind="builtin", description=s.description) for s in list_schemas()
    ]
    with ctx.session_factory.begin() as session:
        own = [_user_schema_out(r, with_schema=False) for r in repo.list_user_schemas(session, actor.tenant())]
    return SchemaList(schemas=builtins + own)


def schema_detail(ctx: ApiContext, actor: Actor, name: str, version: int | None) -> SchemaOut:
    """One schema with its JSON Schema; another tenant's name answers 404 like an unknown one."""
    if is_builtin(name):
        try:
            spec = get_schema(name if version is None else f"{name}@{version}")
        except UnknownSchemaError as e:
            raise not_found("schema") from e
        return SchemaOut(
            name=spec.name,
            version=spec.version,
            kind="builtin",
            description=spec.description,
            json_schema=spec.json_schema(),
        )
    with ctx.session_factory.begin() as session:
        row = repo.get_user_schema(session, actor.tenant(), name, version)
        out = None if row is None else _user_schema_out(row, with_schema=True)
    if out is None:
        raise not_found("schema")
    return out


def register_schema(ctx: ApiContext, actor: Actor, request_id: str, body: SchemaIn) -> tuple[SchemaOut, bool]:
    """Register the next version of a tenant's schema (the same content again returns the latest).

    A schema that is invalid, not an object, outside the settings' bounds, or that cannot be compiled or
    rendered within the trial's time and memory is a 422 with its code (`service.jobs.admission` decides);
    every refusal, a busy trial (503) included, is audited.
    """
    try:
        if is_builtin(body.name):
            raise ConflictApiError(f"{body.name!r} is a built-in schema's name", code="reserved_schema_name")
        try:
            admit_schema(body.json_schema, body.name, policy_from(ctx.settings))
        except SchemaRefused as e:
            raise UnprocessableError(e.message, code=e.code, details=e.details) from e
        with ctx.session_factory.begin() as session:
            row, created = repo.register_user_schema(session, actor.tenant(), body.name, body.json_schema)
            record(
                session,
                actor,
                request_id,
                "schema.register",
                "schema",
                row.ref,
                AuditOutcome.SUCCESS,
                {"created": created, "version": row.version},
            )
            out = _user_schema_out(row, with_schema=True)
    except (ConflictApiError, UnprocessableError, TransientError) as e:
        record_refusal(ctx, actor, request_id, "schema.register", "schema", body.name, e)
        raise
    return out, created
