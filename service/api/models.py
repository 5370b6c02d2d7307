"""Pydantic models at the API edge, separate from the ORM models: what clients send and receive."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Any, Literal

from pydantic import AnyUrl, BaseModel, ConfigDict, Field, UrlConstraints

SCHEMA_NAME_PATTERN = r"^[a-z][a-z0-9_\-]{0,99}$"

WebhookUrl = Annotated[AnyUrl, UrlConstraints(max_length=2000, allowed_schemes=["http", "https"])]
WEBHOOK_DESCRIPTION = (
    "POSTed a signed notification (ids and status only) when the job succeeds or fails; see README, Webhooks. "
    "A URL resolving to a loopback, private, link-local or metadata address is refused with 422 "
    "`webhook_url_refused` unless the operator allow-listed it."
)


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
    webhook_url: WebhookUrl | None = Field(default=None, description=WEBHOOK_DESCRIPTION)


class RecordOut(BaseModel):
    """The validated record: data, evidence spans per field path, quality flags, and what produced it."""

    data: Any
    evidence: dict[str, Any]
    flags: list[dict[str, Any]]
    model: dict[str, Any] | None = None
    document: dict[str, Any] | None = None
    confidence: dict[str, float] = Field(
        default_factory=dict, description="Per value path: the probability that the value is right (see calibration)."
    )
    calibration: dict[str, Any] = Field(
        default_factory=lambda: {"status": "uncalibrated"},
        description='Which calibration produced `confidence`; status "uncalibrated" means a ranking only.',
    )


ReviewStateName = Literal["unreviewed", "in_review", "reviewed"]


class ExtractionOut(BaseModel):
    """A job: its status and, once succeeded, its record (`result`: the current version, reviewers' decisions
    applied; `model_result`: the model's own, never changed)."""

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
    model_result: RecordOut | None = None
    review_state: ReviewStateName | None = Field(default=None, description="Once succeeded: where its review is.")


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


class BatchIn(BaseModel):
    """Extract uploaded documents with one schema as a batch; repeated ids (or equal content) count once."""

    model_config = ConfigDict(extra="forbid")

    document_ids: list[uuid.UUID] = Field(min_length=1, max_length=10_000)
    schema_name: str = Field(pattern=SCHEMA_NAME_PATTERN, examples=["nda"])
    schema_version: int | None = Field(default=None, ge=1, le=1_000_000)
    name: str | None = Field(
        default=None, max_length=200, pattern=r"^\S(.*\S)?$", description="A label, e.g. the archive it came from."
    )
    webhook_url: WebhookUrl | None = Field(default=None, description=WEBHOOK_DESCRIPTION)


class BatchOut(BaseModel):
    """A batch and its progress: items per job status; `done` once every item has succeeded or failed."""

    id: uuid.UUID
    name: str
    schema_name: str
    schema_version: int
    model: str
    created_at: dt.datetime
    updated_at: dt.datetime
    documents: int
    counts: dict[str, int]
    done: bool
    new_jobs: int | None = Field(default=None, description="On creation: jobs queued now (the rest existed).")


class ReviewDecisionIn(BaseModel):
    """A reviewer's decision on one field (`correct` needs `value`), or `finish` (no field) to close the review."""

    model_config = ConfigDict(extra="forbid")

    action: Literal["accept", "correct", "reject", "finish"]
    field: str | None = Field(
        default=None, min_length=1, max_length=200, description="A top-level field of the schema."
    )
    value: Any = Field(default=None, description="The corrected value (`correct` only), checked against the schema.")


class Reviewer(BaseModel):
    """Who decided: the API key's id and name."""

    key_id: uuid.UUID | None
    name: str


class ReviewDecisionOut(BaseModel):
    """One stored decision (append-only); `evidence`/`flags` come from grounding a corrected value again."""

    id: int
    field: str | None
    action: Literal["accept", "correct", "reject", "finish"]
    value: Any = None
    evidence: dict[str, Any] | None = None
    flags: list[dict[str, Any]] | None = None
    reviewer: Reviewer
    created_at: dt.datetime


class ReviewFieldOut(BaseModel):
    """A field as the reviewer sees it: its lowest value confidence, the model's value and the current one."""

    name: str
    confidence: float | None
    model_value: Any = None
    value: Any = None
    decision: Literal["accept", "correct", "reject"] | None = None


class ReviewOut(BaseModel):
    """A job's review: fields by confidence (lowest first), both versions of the record, every decision."""

    job_id: uuid.UUID
    document_id: uuid.UUID
    media_type: str
    schema_name: str
    schema_version: int
    state: ReviewStateName
    fields: list[ReviewFieldOut]
    current: RecordOut
    model: RecordOut
    decisions: list[ReviewDecisionOut]
    reviewers: list[Reviewer]


class ReviewQueueItem(BaseModel):
    """A succeeded job that is not reviewed yet."""

    job_id: uuid.UUID
    document_id: uuid.UUID
    schema_name: str
    schema_version: int
    state: ReviewStateName
    lowest_confidence: float | None
    created_at: dt.datetime


class ReviewQueue(BaseModel):
    """Jobs needing review, lowest field confidence first (records that state nothing last)."""

    items: list[ReviewQueueItem]
