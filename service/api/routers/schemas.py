"""`/v1/schemas`: the built-in schemas and the tenant's own JSON Schemas."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from service.api.models import SCHEMA_NAME_PATTERN, SchemaIn, SchemaList, SchemaOut
from service.api.routers.deps import COMMON_ERRORS, NOT_FOUND, Ctx, RequestId, Tenant, _error
from service.api.usecases import schemas as usecases

router = APIRouter(prefix="/v1/schemas", tags=["schemas"], responses=COMMON_ERRORS)


@router.get("", response_model=SchemaList, summary="Schemas this tenant can extract with")
def list_schemas(ctx: Ctx, actor: Tenant) -> SchemaList:
    """Built-in schemas first, then the tenant's registered versions."""
    return usecases.schema_list(ctx, actor)


@router.post(
    "",
    status_code=201,
    response_model=SchemaOut,
    summary="Register a JSON Schema",
    responses={
        200: {"model": SchemaOut, "description": "The same content is already the latest version: that version."},
        201: {"model": SchemaOut, "description": "Registered as a new version."},
        409: _error("The name belongs to a built-in schema."),
    },
)
def register_schema(body: SchemaIn, response: Response, ctx: Ctx, actor: Tenant, request_id: RequestId) -> SchemaOut:
    """Refused with 422 and the reason when the schema is invalid or the grammar backend cannot compile it."""
    schema, created = usecases.register_schema(ctx, actor, request_id, body)
    response.status_code = 201 if created else 200
    return schema


@router.get("/{name}", response_model=SchemaOut, summary="One schema with its JSON Schema", responses=NOT_FOUND)
def read_schema(
    name: Annotated[str, Path(pattern=SCHEMA_NAME_PATTERN)],
    ctx: Ctx,
    actor: Tenant,
    version: Annotated[int | None, Query(ge=1, le=1_000_000)] = None,
) -> SchemaOut:
    """The latest version unless `version` is given."""
    return usecases.schema_detail(ctx, actor, name, version)
