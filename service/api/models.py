"""Pydantic models at the API edge, separate from the ORM models: what clients send and receive."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any, Literal

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field

SCHEMA_NAME_PATTERN = r"^[a-z][a-z0-9_\-]{0,99}$"


class ErrorInfo(BaseModel):
    """What went wrong: a stable code, a message for people, and ids/limits to act on."""

    code: str
    message: str
    details: dict[str, Any] = Field(default_factory=dict)


class ErrorResponse(BaseModel):
    """Every failure, whatever its status."""

    error: ErrorInfo


class DocumentOut(BaseModel):
    """A stored document's metadata (never its content)."""

    id: uuid.UUID
    sha256: str
    size_bytes: int
    media_type: str
    page_count: int | None
    created_at: dt.datetime


class ExtractionIn(BaseModel):
    """Extract `document_id` with a built-in or registered schema (latest version when omitted)."""

    model_config = ConfigDict(extra="forbid")

    document_id: uuid.UUID
    schema_name: str = Field(pattern=SCHEMA_NAME_PATTERN, examples=["nda", "clinical_note"])
    schema_version: int | None = Field(default=None, ge=1, le=1_000_000)
    webhook_url: AnyHttpUrl | None = Field(
        default=None, description="Not supported yet: a non-null value is refused with 422."
    )


class RecordOut(BaseModel):
    """The validated record: data, evidence spans per field path, quality flags, and what produced it."""

    data: Any
    evidence: dict[str, Any]
    flags: list[dict[str, Any]]
    model: dict[str, Any] | None = None
    document: dict[str, Any] | None = None


class ExtractionOut(BaseModel):
    """A job: its status and, once succeeded, its record."""

    id: uuid.UUID
    status: Literal["queued", "running", "succeeded", "failed"]
    document_id: uuid.UUID
    schema_name: str
    schema_version: int
    model: str
    backend: str
    attempts: int
    created_at: dt.datetime
    updated_at: dt.datetime
    error: ErrorInfo | None = None
    timings: dict[str, Any] | None = None
    result: RecordOut | None = None


class SchemaIn(BaseModel):
    """Register a JSON Schema under a name; each new content becomes the next version."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=SCHEMA_NAME_PATTERN, examples=["invoice"])
    json_schema: dict[str, Any] = Field(
        examples=[{"type": "object", "properties": {"total": {"type": ["number", "null"]}}}]
    )


class SchemaOut(BaseModel):
    """A schema clients can extract with; `json_schema` only on single-schema reads."""

    name: str
    version: int
    kind: Literal["builtin", "user"]
    description: str | None = None
    used: bool | None = None
    created_at: dt.datetime | None = None
    json_schema: dict[str, Any] | None = None


class SchemaList(BaseModel):
    """Built-in schemas first, then the tenant's own."""

    schemas: list[SchemaOut]


class TenantIn(BaseModel):
    """A new tenant."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200, pattern=r"^\S(.*\S)?$")


class TenantOut(BaseModel):
    """A tenant."""

    id: uuid.UUID
    name: str
    created_at: dt.datetime


class ApiKeyIn(BaseModel):
    """A label for a new key (who or what uses it)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200, pattern=r"^\S(.*\S)?$")


class ApiKeyCreated(BaseModel):
    """A new key: `key` is shown here once and cannot be recovered later."""

    id: uuid.UUID
    tenant_id: uuid.UUID
    name: str
    prefix: str
    key: str
    created_at: dt.datetime


class Health(BaseModel):
    """Liveness."""

    status: Literal["ok"]


class Readiness(BaseModel):
    """Readiness and each dependency's state (`ok`, `error` or `skipped`)."""

    status: Literal["ready", "not_ready"]
    checks: dict[str, str]
