"""Typed ORM models of the store; the Alembic migrations, never `create_all`, create these tables."""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Dialect,
    Enum,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    Uuid,
    false,
    func,
    text,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Deterministic constraint names, so that migrations can name what they alter or drop on every backend.
NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

GENESIS_HASH = "0" * 64
"""`prev_hash` of the first audit event: the chain has to start from a value everybody knows."""


def utcnow() -> dt.datetime:
    """The current time, timezone-aware in UTC (the only kind the store accepts)."""
    return dt.datetime.now(dt.UTC)


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Aware UTC datetimes in and out: SQLite drops the offset, so we normalise on both sides."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        """Refuse naive values (their zone is a guess); store UTC."""
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; use an aware UTC datetime")
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        """Attach UTC to SQLite's naive values."""
        if value is None:
            return None
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


# JSONB on Postgres (indexable, comparable); JSON text elsewhere. Python None means SQL NULL.
JSONType = JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), "postgresql")

# SQLite only auto-increments an INTEGER PRIMARY KEY, not a BIGINT one.
BigIntId = BigInteger().with_variant(Integer(), "sqlite")


class JobStatus(enum.StrEnum):
    """Where a job is; `transition` moves it along the edges in `repositories.ALLOWED_TRANSITIONS`."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class BlobStorage(enum.StrEnum):
    """Where a document's bytes live: a row in `document_blobs`, or a file under the blob directory."""

    DB = "db"
    FILE = "file"


class ReviewAction(enum.StrEnum):
    """A reviewer's decision on one field, or the end of a review (`finish`, no field)."""

    ACCEPT = "accept"
    CORRECT = "correct"
    REJECT = "reject"
    FINISH = "finish"


class AuditOutcome(enum.StrEnum):
    """How the audited action ended."""

    SUCCESS = "success"
    FAILURE = "failure"
    DENIED = "denied"


def _enum(cls: type[enum.StrEnum], name: str) -> Enum:
    # VARCHAR + CHECK rather than a native type: portable, and a new value is one constraint swap.
    return Enum(
        cls,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=16,
        values_callable=lambda members: [m.value for m in members],
        validate_strings=True,
    )


class Base(DeclarativeBase):
    """Declarative base carrying the naming convention that the migrations rely on."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Tenant(Base):
    """An isolated customer: every document, job, key and schema belongs to exactly one."""

    __tablename__ = "tenants"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, server_default=func.now())


class ApiKey(Base):
    """An API key: only a lookup prefix and a sha256 of the whole key are kept; the key is shown once."""

    __tablename__ = "api_keys"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    prefix: Mapped[str] = mapped_column(String(32), unique=True)
    key_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, server_default=func.now())
    last_used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class Document(Base):
    """An uploaded file's metadata; the bytes live in `document_blobs` or under the blob directory."""

    __tablename__ = "documents"
    __table_args__ = (
        UniqueConstraint("tenant_id", "sha256"),
        CheckConstraint("(storage = 'file') = (blob_path IS NOT NULL)", name="blob_path_matches_storage"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    sha256: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    media_type: Mapped[str] = mapped_column(String(200))
    page_count: Mapped[int | None] = mapped_column(Integer)
    storage: Mapped[BlobStorage] = mapped_column(_enum(BlobStorage, "blob_storage"))
    blob_path: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, server_default=func.now())


class DocumentBlob(Base):
    """A document's bytes when they are kept in the database (the embedded default)."""

    __tablename__ = "document_blobs"

    document_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("documents.id", ondelete="CASCADE"), primary_key=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)


class UserSchema(Base):
    """A tenant's own JSON Schema, versioned; a version that a job has used is frozen (`used`)."""

    __tablename__ = "user_schemas"
    __table_args__ = (UniqueConstraint("tenant_id", "name", "version"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    version: Mapped[int] = mapped_column(Integer)
    json_schema: Mapped[dict[str, Any]] = mapped_column(JSONType)
    used: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, server_default=func.now())

    @property
    def ref(self) -> str:
        """The stable reference, e.g. `invoice@2`, in the same shape as the built-in registry's."""
        return f"{self.name}@{self.version}"


class Job(Base):
    """One extraction of one document with one schema and model; unique per that combination."""

    __tablename__ = "jobs"
    __table_args__ = (
        # Idempotency: the same upload asked twice for the same schema and model is the same job.
        UniqueConstraint(
            "tenant_id", "document_id", "schema_name", "schema_version", "model", name="uq_jobs_idempotency"
        ),
        Index("ix_jobs_tenant_id_created_at", "tenant_id", "created_at"),
        Index("ix_jobs_status", "status"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    document_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("documents.id", ondelete="CASCADE"), index=True)
    user_schema_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("user_schemas.id"), index=True)
    schema_name: Mapped[str] = mapped_column(String(100))
    schema_version: Mapped[int] = mapped_column(Integer)
    model: Mapped[str] = mapped_column(String(200))
    backend: Mapped[str] = mapped_column(String(50))
    status: Mapped[JobStatus] = mapped_column(_enum(JobStatus, "job_status"), default=JobStatus.QUEUED)
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    timings: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    error_code: Mapped[str | None] = mapped_column(String(100))
    error_message: Mapped[str | None] = mapped_column(Text)
    deadline: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, server_default=func.now())
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, server_default=func.now())
    # Where the job's completion is announced (checked against SSRF at submission and at delivery).
    webhook_url: Mapped[str | None] = mapped_column(String(2000))

    @property
    def schema_ref(self) -> str:
        """`name@version` of the schema this job extracts with."""
        return f"{self.schema_name}@{self.schema_version}"


class Result(Base):
    """The validated record of a succeeded job, with its evidence spans and quality flags."""

    __tablename__ = "results"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    job_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), unique=True)
    data: Mapped[dict[str, Any]] = mapped_column(JSONType)
    evidence: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    flags: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, server_default=func.now())


class OutboxMessage(Base):
    """A message to publish after commit (transactional outbox); the payload holds a job id only."""

    __tablename__ = "outbox"
    __table_args__ = (
        # The relay only ever scans unsent rows; keep that scan small however long the table grows.
        Index(
            "ix_outbox_unsent",
            "id",
            postgresql_where=text("sent_at IS NULL"),
            sqlite_where=text("sent_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    job_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    topic: Mapped[str] = mapped_column(String(100))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType)
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    claimed_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, server_default=func.now())
    sent_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class AuditEvent(Base):
    """One hash-chained, append-only audit record; `audit.record_event` is the only writer."""

    __tablename__ = "audit_events"
    __table_args__ = (
        CheckConstraint("outcome IN ('success', 'failure', 'denied')", name="outcome"),
        Index("ix_audit_events_tenant_id_occurred_at", "tenant_id", "occurred_at"),
    )

    # Assigned by record_event under the chain lock (gapless), not by a sequence that rollbacks skip.
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    occurred_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    actor: Mapped[str] = mapped_column(String(200))
    # No foreign key: the trail must outlive the tenant it talks about.
    tenant_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    action: Mapped[str] = mapped_column(String(100))
    target_type: Mapped[str] = mapped_column(String(50))
    target_id: Mapped[str | None] = mapped_column(String(200))
    request_id: Mapped[str | None] = mapped_column(String(100))
    outcome: Mapped[str] = mapped_column(String(16))
    details: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)


class Batch(Base):
    """A manifest of documents extracted with one schema and model; a restart finds it by source."""

    __tablename__ = "batches"
    __table_args__ = (Index("ix_batches_tenant_id_source", "tenant_id", "source"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    source: Mapped[str] = mapped_column(String(1000))
    schema_name: Mapped[str] = mapped_column(String(100))
    schema_version: Mapped[int] = mapped_column(Integer)
    model: Mapped[str] = mapped_column(String(200))
    backend: Mapped[str] = mapped_column(String(50))
    webhook_url: Mapped[str | None] = mapped_column(String(2000))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, server_default=func.now())
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, server_default=func.now())

    @property
    def schema_ref(self) -> str:
        """`name@version` of the schema the batch extracts with."""
        return f"{self.schema_name}@{self.schema_version}"


class BatchItem(Base):
    """One distinct document (by sha256) of a batch and the job that extracts it; copies are counted."""

    __tablename__ = "batch_items"
    __table_args__ = (UniqueConstraint("batch_id", "sha256"),)

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    batch_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("batches.id", ondelete="CASCADE"))
    sha256: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(1000))
    document_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("documents.id", ondelete="CASCADE"), index=True)
    job_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"), index=True)
    copies: Mapped[int] = mapped_column(Integer, default=1, server_default=text("1"))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, server_default=func.now())


class WebhookDelivery(Base):
    """A job notification to POST (webhook outbox): written with the job's final status, sent after commit."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        # The deliverer only scans pending rows; keep that scan small however long the table grows.
        Index(
            "ix_webhook_deliveries_pending",
            "next_attempt_at",
            postgresql_where=text("delivered_at IS NULL AND gave_up_at IS NULL"),
            sqlite_where=text("delivered_at IS NULL AND gave_up_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    # Sent as X-Abstractor-Delivery: receivers deduplicate retries on it (delivery is at least once).
    event_id: Mapped[uuid.UUID] = mapped_column(Uuid, unique=True, default=uuid.uuid4)
    job_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    url: Mapped[str] = mapped_column(String(2000))
    event: Mapped[str] = mapped_column(String(50))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType)
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    next_attempt_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    claimed_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    delivered_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    gave_up_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, server_default=func.now())


class ReviewDecision(Base):
    """One reviewer decision on a job's record: append-only (a trigger refuses UPDATE), the record is never rewritten.

    The record's current version is the model's output (`results`) with each field's latest decision
    applied; `value` is the corrected value, with its `evidence` and `flags` from grounding it again.
    """

    __tablename__ = "review_decisions"
    __table_args__ = (Index("ix_review_decisions_job_id_id", "job_id", "id"),)

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    job_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    field: Mapped[str | None] = mapped_column(String(200))
    action: Mapped[ReviewAction] = mapped_column(_enum(ReviewAction, "review_action"))
    value: Mapped[Any] = mapped_column(JSONType, nullable=True)
    evidence: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    flags: Mapped[list[Any] | None] = mapped_column(JSONType)
    reviewer_key_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    reviewer_name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, server_default=func.now())
