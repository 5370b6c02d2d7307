"""Whether a tenant's JSON Schema may be registered: valid, an object at its root, and compilable.

Compiling runs third-party grammar code on tenant input, so it happens behind this one function: the
hostile-tenants issue will move its body into a bounded child process without touching a caller. The
grammar modules are imported inside it, so the API process loads them when a schema is registered,
never at import (an `ignore_imports` entry of the API's import contract names this one place).
"""

from __future__ import annotations

from typing import Any

from schemas.bounds import SchemaShapeError, check_shape
from schemas.errors import InvalidSchemaError
from schemas.user_schema import load_user_schema
from service.errors import ServiceError


class SchemaRefused(ServiceError):
    """A schema that is invalid, not an object, or that the grammar backend cannot compile (HTTP 422)."""

    code = "invalid_schema"


def admit_schema(json_schema: dict[str, Any], name: str, backend: str) -> None:
    """Raise `SchemaRefused` (`invalid_schema` or `unsupported_schema`, with the reason) unless it may be used."""
    try:
        check_shape(json_schema)  # before any validator or compiler expands it
    except SchemaShapeError as e:
        raise SchemaRefused(str(e), code=e.code, details=e.details) from e
    try:
        user = load_user_schema(json_schema, name=name)
    except InvalidSchemaError as e:
        raise SchemaRefused(str(e)) from e
    schema = user.schema
    if schema.get("type") != "object" or not isinstance(schema.get("properties"), dict):
        raise SchemaRefused("an extraction schema's root must be {'type': 'object', 'properties': {...}}")
    from workers.engines.constraints import generation_schema
    from workers.engines.grammar import UnsupportedSchemaError, compile_json_schema

    try:
        # What the pipeline will ask the grammar to enforce: every property required (null = not stated).
        compile_json_schema(generation_schema(schema), backend)  # type: ignore[arg-type]
    except UnsupportedSchemaError as e:
        raise SchemaRefused(e.message, code="unsupported_schema", details={"grammar_backend": backend}) from e
