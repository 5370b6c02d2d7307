"""Repositories: small functions over a Session that flush but never commit (the caller owns it).

Tenant scoping is in the signatures: every read the API makes takes a `tenant_id`, and another
tenant's id simply finds nothing. Unique races are settled inside a SAVEPOINT, so a losing insert
leaves the caller's transaction usable and returns the winner's row.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import uuid
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar, cast

from sqlalchemy import CursorResult, Update, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service.store import blobs, keys
from service.store.errors import (
    BadInputStoreError,
    ConflictError,
    IntegrityCheckError,
    InvalidTransitionError,
    SchemaInUseError,
    StoreConfigError,
)
from service.store.models import (
    ApiKey,
    BlobStorage,
    Document,
    DocumentBlob,
    Job,
    JobStatus,
    OutboxMessage,
    Result,
    Tenant,
    UserSchema,
    utcnow,
)

T = TypeVar("T")

MAX_ERROR_MESSAGE = 2000
_SCHEMA_NAME = re.compile(r"^[a-z][a-z0-9_\-]{0,99}$")


def _insert_or_get(session: Session, row: T, existing: Callable[[], T | None]) -> tuple[T, bool]:
    """Insert `row` in a savepoint; if a unique key beat us, return the row that won instead."""
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError:
        found = existing()
        if found is None:  # the violation was not the race we expected (e.g. a bad foreign key)
            raise
        return found, False
    return row, True


def _update(session: Session, statement: Update, cls: type[object], ids: Iterable[object]) -> int:
    """Run a guarded UPDATE; return how many rows it changed, and expire cached copies of `ids`.

    ORM "evaluate" sync would trust a stale object, and "fetch" sync skips attributes never loaded
    (NULLs left unset at INSERT); expiring is simple and always right: the next read asks the database.
    """
    result = cast(CursorResult[Any], session.execute(statement.execution_options(synchronize_session=False)))
    for key in ids:
        cached = session.identity_map.get(session.identity_key(cls, key))
        if cached is not None:
            session.expire(cached)
    return result.rowcount


# --- tenants -----------------------------------------------------------------------------------------


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


# --- API keys ----------------------------------------------------------------------------------------


def create_api_key(session: Session, tenant_id: uuid.UUID, name: str) -> tuple[ApiKey, str]:
    """Create a key for a tenant; the plaintext is returned here once and is not recoverable later."""
    new = keys.generate_api_key()
    row = ApiKey(id=uuid.uuid4(), tenant_id=tenant_id, name=name, prefix=new.prefix, key_hash=new.key_hash)
    session.add(row)
    session.flush()
    return row, new.plaintext


# Compared against when no row matches, so a miss costs the same hash-and-compare as a hit.
_DUMMY_HASH = keys.hash_api_key("abk_000000000000_not-a-key")


def find_api_key(session: Session, plaintext: str) -> ApiKey | None:
    """The live (unrevoked) key a request presented, or None; the hash comparison is constant-time."""
    prefix = keys.key_prefix(plaintext)
    row = None
    if prefix is not None:
        row = session.scalars(select(ApiKey).where(ApiKey.prefix == prefix, ApiKey.revoked_at.is_(None))).one_or_none()
    matches = keys.key_matches(plaintext, row.key_hash if row is not None else _DUMMY_HASH)
    return row if row is not None and matches else None


def revoke_api_key(session: Session, tenant_id: uuid.UUID, key_id: uuid.UUID) -> bool:
    """Revoke a tenant's key; False when it is not theirs or already revoked."""
    statement = (
        update(ApiKey)
        .where(ApiKey.id == key_id, ApiKey.tenant_id == tenant_id, ApiKey.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
    return _update(session, statement, ApiKey, [key_id]) == 1


# --- documents ---------------------------------------------------------------------------------------


def find_document_by_sha256(session: Session, tenant_id: uuid.UUID, sha256: str) -> Document | None:
    """The tenant's document with these bytes, if uploaded before."""
    return session.scalars(
        select(Document).where(Document.tenant_id == tenant_id, Document.sha256 == sha256)
    ).one_or_none()


def add_document(
    session: Session,
    tenant_id: uuid.UUID,
    content: bytes,
    *,
    media_type: str,
    page_count: int | None = None,
    blob_dir: Path | None = None,
) -> tuple[Document, bool]:
    """Store a document once per tenant and content; returns (document, created).

    With `blob_dir` the bytes go to a file under it, else into `document_blobs`.
    """
    sha256 = hashlib.sha256(content).hexdigest()
    existing = find_document_by_sha256(session, tenant_id, sha256)
    if existing is not None:
        return existing, False
    document = Document(
        id=uuid.uuid4(),
        tenant_id=tenant_id,
        sha256=sha256,
        size_bytes=len(content),
        media_type=media_type,
        page_count=page_count,
        storage=BlobStorage.DB if blob_dir is None else BlobStorage.FILE,
        blob_path=None if blob_dir is None else blobs.blob_relpath(tenant_id, sha256),
    )
    if blob_dir is not None and document.blob_path is not None:
        blobs.write_blob(blob_dir, document.blob_path, content)
    try:
        with session.begin_nested():
            session.add(document)
            if blob_dir is None:
                session.add(DocumentBlob(document_id=document.id, data=content))
    except IntegrityError:
        winner = find_document_by_sha256(session, tenant_id, sha256)
        if winner is None:
            raise
        return winner, False
    return document, True


def get_document(session: Session, tenant_id: uuid.UUID, document_id: uuid.UUID) -> Document | None:
    """A document of this tenant; another tenant's id gives None, as an unknown id does."""
    return session.scalars(
        select(Document).where(Document.id == document_id, Document.tenant_id == tenant_id)
    ).one_or_none()


def read_document_bytes(session: Session, document: Document, *, blob_dir: Path | None = None) -> bytes:
    """The document's bytes from wherever they were stored, checked against its sha256."""
    if document.storage is BlobStorage.FILE:
        if blob_dir is None or document.blob_path is None:
            raise StoreConfigError("document is stored as a file but no blob directory is configured")
        return blobs.read_blob(blob_dir, document.blob_path, document.sha256)
    blob = session.get(DocumentBlob, document.id)
    if blob is None or hashlib.sha256(blob.data).hexdigest() != document.sha256:
        raise IntegrityCheckError(f"document bytes missing or changed for {document.id}")
    return blob.data


# --- user schemas ------------------------------------------------------------------------------------


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


def update_user_schema(
    session: Session, tenant_id: uuid.UUID, name: str, version: int, json_schema: Mapping[str, Any]
) -> UserSchema:
    """Replace the content of a version no job has used yet; a used one raises `SchemaInUseError`."""
    row = get_user_schema(session, tenant_id, name, version)
    if row is None:
        raise BadInputStoreError(f"unknown schema {name}@{version}", code="unknown_schema")
    statement = (
        update(UserSchema)
        .where(UserSchema.id == row.id, UserSchema.used.is_(False))
        .values(json_schema=dict(json_schema))
    )
    if _update(session, statement, UserSchema, [row.id]) != 1:
        raise SchemaInUseError(f"schema {name}@{version} has been used; register a new version")
    return row


def delete_user_schema(session: Session, tenant_id: uuid.UUID, name: str, version: int) -> bool:
    """Delete a version no job has used; False when unknown, `SchemaInUseError` when used."""
    row = get_user_schema(session, tenant_id, name, version)
    if row is None:
        return False
    if row.used:
        raise SchemaInUseError(f"schema {name}@{version} has been used and is kept for the record")
    session.delete(row)
    session.flush()
    return True


def mark_user_schema_used(session: Session, schema: UserSchema) -> None:
    """Freeze a schema version from now on (the database trigger holds it to that)."""
    if not schema.used:
        _update(
            session,
            update(UserSchema).where(UserSchema.id == schema.id).values(used=True),
            UserSchema,
            [schema.id],
        )


# --- jobs --------------------------------------------------------------------------------------------

ALLOWED_TRANSITIONS: Mapping[JobStatus, frozenset[JobStatus]] = {
    JobStatus.QUEUED: frozenset({JobStatus.RUNNING, JobStatus.FAILED}),  # failed: deadline passed in queue
    JobStatus.RUNNING: frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.QUEUED}),  # queued: retry
    JobStatus.FAILED: frozenset({JobStatus.QUEUED}),  # an operator's retry
    JobStatus.SUCCEEDED: frozenset(),
}


def _find_job(
    session: Session,
    tenant_id: uuid.UUID,
    document_id: uuid.UUID,
    schema_name: str,
    schema_version: int,
    model: str,
) -> Job | None:
    return session.scalars(
        select(Job).where(
            Job.tenant_id == tenant_id,
            Job.document_id == document_id,
            Job.schema_name == schema_name,
            Job.schema_version == schema_version,
            Job.model == model,
        )
    ).one_or_none()


def create_job(
    session: Session,
    tenant_id: uuid.UUID,
    document_id: uuid.UUID,
    *,
    schema_name: str,
    schema_version: int,
    model: str,
    backend: str,
    deadline: dt.datetime | None = None,
    user_schema: UserSchema | None = None,
) -> tuple[Job, bool]:
    """The job for (tenant, document, schema, model): the existing one, or a new queued one.

    Returns (job, created); add the outbox message only when `created`. A user schema is frozen by
    its first job.
    """
    if get_document(session, tenant_id, document_id) is None:
        raise BadInputStoreError(f"unknown document {document_id}", code="unknown_document")
    if user_schema is not None and (
        user_schema.tenant_id != tenant_id or (user_schema.name, user_schema.version) != (schema_name, schema_version)
    ):
        raise BadInputStoreError("user schema does not match the job's tenant, name and version")
    key = (tenant_id, document_id, schema_name, schema_version, model)
    existing = _find_job(session, *key)
    if existing is not None:
        return existing, False
    job = Job(
        id=uuid.uuid4(),
        tenant_id=tenant_id,
        document_id=document_id,
        user_schema_id=None if user_schema is None else user_schema.id,
        schema_name=schema_name,
        schema_version=schema_version,
        model=model,
        backend=backend,
        status=JobStatus.QUEUED,
        attempts=0,
        deadline=deadline,
    )
    job, created = _insert_or_get(session, job, lambda: _find_job(session, *key))
    if created and user_schema is not None:
        mark_user_schema_used(session, user_schema)
    return job, created


def get_job(session: Session, tenant_id: uuid.UUID, job_id: uuid.UUID) -> Job | None:
    """A job of this tenant; another tenant's id gives None."""
    return session.scalars(select(Job).where(Job.id == job_id, Job.tenant_id == tenant_id)).one_or_none()


def load_job(session: Session, job_id: uuid.UUID) -> Job | None:
    """A job by id alone, for workers: the queue message carries nothing else."""
    return session.get(Job, job_id)


def list_jobs(
    session: Session, tenant_id: uuid.UUID, *, status: JobStatus | None = None, limit: int = 100
) -> list[Job]:
    """A tenant's jobs, newest first."""
    query = select(Job).where(Job.tenant_id == tenant_id)
    if status is not None:
        query = query.where(Job.status == status)
    return list(session.scalars(query.order_by(Job.created_at.desc(), Job.id).limit(limit)))


def transition(
    session: Session,
    job: Job | uuid.UUID,
    from_states: Collection[JobStatus],
    to_state: JobStatus,
    *,
    error_code: str | None = None,
    error_message: str | None = None,
    timings: Mapping[str, Any] | None = None,
) -> bool:
    """Move a job to `to_state` only if it is in one of `from_states`; False when it was not.

    One `UPDATE ... WHERE status IN (...)`, so a redelivered message or a second worker changes
    nothing. Entering `running` counts an attempt. Error messages must not quote the document.
    """
    if not from_states:
        raise InvalidTransitionError("from_states is empty")
    for state in from_states:
        if to_state not in ALLOWED_TRANSITIONS[state]:
            raise InvalidTransitionError(f"a job never goes from {state.value} to {to_state.value}")
    job_id = job.id if isinstance(job, Job) else job
    values: dict[str, Any] = {"status": to_state, "updated_at": utcnow()}
    if to_state is JobStatus.RUNNING:
        values["attempts"] = Job.attempts + 1
    if to_state is JobStatus.SUCCEEDED:
        values["error_code"] = None
        values["error_message"] = None
    elif error_code is not None or error_message is not None:
        values["error_code"] = error_code
        values["error_message"] = None if error_message is None else error_message[:MAX_ERROR_MESSAGE]
    if timings is not None:
        values["timings"] = dict(timings)
    statement = update(Job).where(Job.id == job_id, Job.status.in_(list(from_states))).values(values)
    return _update(session, statement, Job, [job_id]) == 1


# --- results -----------------------------------------------------------------------------------------


def save_result(
    session: Session,
    job_id: uuid.UUID,
    *,
    data: Mapping[str, Any],
    evidence: Mapping[str, Any] | None = None,
    flags: Mapping[str, Any] | None = None,
) -> tuple[Result, bool]:
    """Store a job's result once; a second save for the same job returns the first, unchanged."""

    def existing() -> Result | None:
        return session.scalars(select(Result).where(Result.job_id == job_id)).one_or_none()

    found = existing()
    if found is not None:
        return found, False
    row = Result(
        id=uuid.uuid4(),
        job_id=job_id,
        data=dict(data),
        evidence=None if evidence is None else dict(evidence),
        flags=None if flags is None else dict(flags),
    )
    return _insert_or_get(session, row, existing)


def get_result(session: Session, tenant_id: uuid.UUID, job_id: uuid.UUID) -> Result | None:
    """A job's result, scoped to the tenant that owns the job."""
    return session.scalars(
        select(Result).join(Job, Job.id == Result.job_id).where(Result.job_id == job_id, Job.tenant_id == tenant_id)
    ).one_or_none()


# --- outbox ------------------------------------------------------------------------------------------

EXTRACT_TOPIC = "extract"


def add_outbox(session: Session, job_id: uuid.UUID, topic: str = EXTRACT_TOPIC) -> OutboxMessage:
    """Queue a message for the relay in the caller's transaction; the payload is the job id, nothing more."""
    message = OutboxMessage(job_id=job_id, topic=topic, payload={"job_id": str(job_id)}, attempts=0)
    session.add(message)
    session.flush()
    return message


def claim_outbox(
    session: Session,
    *,
    limit: int = 100,
    lease: dt.timedelta = dt.timedelta(seconds=60),
    now: dt.datetime | None = None,
) -> list[OutboxMessage]:
    """Lease up to `limit` unsent messages, oldest first, that no live lease holds.

    Postgres skips rows another relay has locked (SKIP LOCKED); SQLite has one writer anyway.
    Commit the claim, publish, then `mark_outbox_sent`; a relay that dies lets its lease lapse.
    """
    now = now or utcnow()
    ids = list(
        session.scalars(
            select(OutboxMessage.id)
            .where(
                OutboxMessage.sent_at.is_(None),
                or_(OutboxMessage.claimed_until.is_(None), OutboxMessage.claimed_until < now),
            )
            .order_by(OutboxMessage.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    )
    if not ids:
        return []
    statement = (
        update(OutboxMessage)
        .where(OutboxMessage.id.in_(ids))
        .values(claimed_until=now + lease, attempts=OutboxMessage.attempts + 1)
    )
    _update(session, statement, OutboxMessage, ids)
    return list(session.scalars(select(OutboxMessage).where(OutboxMessage.id.in_(ids)).order_by(OutboxMessage.id)))


def mark_outbox_sent(session: Session, message_ids: Sequence[int], *, now: dt.datetime | None = None) -> int:
    """Mark published messages sent; returns how many were still unsent (redelivery-safe)."""
    if not message_ids:
        return 0
    statement = (
        update(OutboxMessage)
        .where(OutboxMessage.id.in_(list(message_ids)), OutboxMessage.sent_at.is_(None))
        .values(sent_at=now or utcnow(), claimed_until=None)
    )
    return _update(session, statement, OutboxMessage, message_ids)


def release_outbox(session: Session, message_ids: Sequence[int]) -> None:
    """Give back a lease early (publishing failed) so the next claim retries at once."""
    if message_ids:
        statement = (
            update(OutboxMessage)
            .where(OutboxMessage.id.in_(list(message_ids)), OutboxMessage.sent_at.is_(None))
            .values(claimed_until=None)
        )
        _update(session, statement, OutboxMessage, message_ids)


def count_unsent_outbox(session: Session) -> int:
    """Messages not yet published (a gauge for the relay's health)."""
    return int(
        session.scalar(select(func.count()).select_from(OutboxMessage).where(OutboxMessage.sent_at.is_(None))) or 0
    )
