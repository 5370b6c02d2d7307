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
    Batch,
    BatchItem,
    BlobStorage,
    Document,
    DocumentBlob,
    Job,
    JobStatus,
    OutboxMessage,
    Result,
    Tenant,
    UserSchema,
    WebhookDelivery,
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


Leased = TypeVar("Leased", OutboxMessage, WebhookDelivery)


def _claim_leased(
    session: Session,
    cls: type[Leased],
    *,
    due: Sequence[Any],
    order_by: Sequence[Any],
    limit: int,
    lease: dt.timedelta,
    now: dt.datetime,
) -> list[Leased]:
    """Lease up to `limit` rows matching `due` that no live lease holds, counting an attempt on each.

    Postgres skips rows another claimer has locked (SKIP LOCKED); SQLite has one writer anyway.
    """
    ids = list(
        session.scalars(
            select(cls.id)
            .where(*due, or_(cls.claimed_until.is_(None), cls.claimed_until < now))
            .order_by(*order_by)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    )
    if not ids:
        return []
    statement = update(cls).where(cls.id.in_(ids)).values(claimed_until=now + lease, attempts=cls.attempts + 1)
    _update(session, statement, cls, ids)
    return list(session.scalars(select(cls).where(cls.id.in_(ids)).order_by(cls.id)))


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
    webhook_url: str | None = None,
) -> tuple[Job, bool]:
    """The job for (tenant, document, schema, model): the existing one, or a new queued one.

    Returns (job, created); add the outbox message only when `created`. A user schema is frozen by
    its first job. `webhook_url` (checked by the caller) is set on a new job only: the existing one
    keeps its own.
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
        webhook_url=webhook_url,
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
    return _claim_leased(
        session,
        OutboxMessage,
        due=[OutboxMessage.sent_at.is_(None)],
        order_by=[OutboxMessage.id],
        limit=limit,
        lease=lease,
        now=now or utcnow(),
    )


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


# --- batches -----------------------------------------------------------------------------------------


def create_batch(
    session: Session,
    tenant_id: uuid.UUID,
    *,
    source: str,
    schema_name: str,
    schema_version: int,
    model: str,
    backend: str,
    webhook_url: str | None = None,
) -> Batch:
    """A new, empty batch manifest."""
    batch = Batch(
        id=uuid.uuid4(),
        tenant_id=tenant_id,
        source=source[:1000],
        schema_name=schema_name,
        schema_version=schema_version,
        model=model,
        backend=backend,
        webhook_url=webhook_url,
    )
    session.add(batch)
    session.flush()
    return batch


def find_batch(
    session: Session, tenant_id: uuid.UUID, *, source: str, schema_name: str, schema_version: int, model: str
) -> Batch | None:
    """The newest batch over the same source, schema and model: what a restarted batch resumes."""
    return session.scalars(
        select(Batch)
        .where(
            Batch.tenant_id == tenant_id,
            Batch.source == source[:1000],
            Batch.schema_name == schema_name,
            Batch.schema_version == schema_version,
            Batch.model == model,
        )
        .order_by(Batch.created_at.desc(), Batch.id)
        .limit(1)
    ).first()


def get_batch(session: Session, tenant_id: uuid.UUID, batch_id: uuid.UUID) -> Batch | None:
    """A batch of this tenant; another tenant's id gives None."""
    return session.scalars(select(Batch).where(Batch.id == batch_id, Batch.tenant_id == tenant_id)).one_or_none()


def add_batch_item(
    session: Session, batch: Batch, *, sha256: str, name: str, document_id: uuid.UUID, copies: int = 1
) -> tuple[BatchItem, bool]:
    """The batch's item for this content: the existing one (copies raised if more were seen), or a new one."""

    def existing() -> BatchItem | None:
        return session.scalars(
            select(BatchItem).where(BatchItem.batch_id == batch.id, BatchItem.sha256 == sha256)
        ).one_or_none()

    found = existing()
    if found is None:
        row = BatchItem(batch_id=batch.id, sha256=sha256, name=name[:1000], document_id=document_id, copies=copies)
        item, created = _insert_or_get(session, row, existing)
        if created:
            return item, True
        found = item
    if copies > found.copies:
        found.copies = copies
        session.flush()
    return found, False


def set_batch_item_job(session: Session, item: BatchItem, job_id: uuid.UUID) -> None:
    """Point an item at the job that extracts its document."""
    if item.job_id != job_id:
        item.job_id = job_id
        session.flush()


def touch_batch(session: Session, batch: Batch) -> None:
    """Note activity on a batch (a resume, new items)."""
    batch.updated_at = utcnow()
    session.flush()


def batch_status_counts(session: Session, batch_id: uuid.UUID) -> dict[str, int]:
    """Items per job status (`pending` for items not yet given a job)."""
    rows = session.execute(
        select(Job.status, func.count(BatchItem.id))
        .select_from(BatchItem)
        .outerjoin(Job, Job.id == BatchItem.job_id)
        .where(BatchItem.batch_id == batch_id)
        .group_by(Job.status)
    ).all()
    return {("pending" if status is None else JobStatus(status).value): int(n) for status, n in rows}


def batch_rows(
    session: Session, batch_id: uuid.UUID, *, after_id: int = 0, limit: int = 500
) -> list[tuple[BatchItem, Job | None, Result | None]]:
    """Items with their job and result, in manifest order, one page at a time (for exports)."""
    rows = session.execute(
        select(BatchItem, Job, Result)
        .outerjoin(Job, Job.id == BatchItem.job_id)
        .outerjoin(Result, Result.job_id == BatchItem.job_id)
        .where(BatchItem.batch_id == batch_id, BatchItem.id > after_id)
        .order_by(BatchItem.id)
        .limit(limit)
    ).all()
    return [(item, job, result) for item, job, result in rows]


def batch_job_ids(session: Session, batch_id: uuid.UUID, statuses: Collection[JobStatus]) -> list[uuid.UUID]:
    """Ids of the batch's jobs in one of `statuses`."""
    return list(
        session.scalars(
            select(Job.id)
            .join(BatchItem, BatchItem.job_id == Job.id)
            .where(BatchItem.batch_id == batch_id, Job.status.in_(list(statuses)))
            .order_by(BatchItem.id)
        )
    )


def jobs_with_unsent_outbox(session: Session, job_ids: Collection[uuid.UUID]) -> set[uuid.UUID]:
    """Which of these jobs still have a message waiting for the relay (or the embedded worker)."""
    if not job_ids:
        return set()
    return set(
        session.scalars(
            select(OutboxMessage.job_id).where(OutboxMessage.job_id.in_(list(job_ids)), OutboxMessage.sent_at.is_(None))
        )
    )


def list_batches(session: Session, tenant_id: uuid.UUID, *, limit: int = 100) -> list[Batch]:
    """A tenant's batches, newest first."""
    return list(
        session.scalars(
            select(Batch).where(Batch.tenant_id == tenant_id).order_by(Batch.created_at.desc(), Batch.id).limit(limit)
        )
    )


# --- webhook deliveries (an outbox of job notifications) ---------------------------------------------

WEBHOOK_EVENTS: Mapping[JobStatus, str] = {JobStatus.SUCCEEDED: "job.succeeded", JobStatus.FAILED: "job.failed"}


def enqueue_job_webhook(
    session: Session, job_id: uuid.UUID, *, now: dt.datetime | None = None
) -> WebhookDelivery | None:
    """In the transaction that settles a job: queue its notification if it has a webhook URL.

    Call it after the job's final transition. The payload holds ids, status and an error code only,
    never extracted values or document text; it is signed when sent, not here.
    """
    job = session.get(Job, job_id)
    if job is None or job.webhook_url is None or job.status not in WEBHOOK_EVENTS:
        return None
    now = now or utcnow()
    event = WEBHOOK_EVENTS[job.status]
    event_id = uuid.uuid4()
    payload: dict[str, Any] = {
        "id": str(event_id),
        "type": event,
        "created_at": now.isoformat(),
        "job": {
            "id": str(job.id),
            "status": job.status.value,
            "document_id": str(job.document_id),
            "schema": job.schema_ref,
            "model": job.model,
            "attempts": job.attempts,
            "error_code": job.error_code,
        },
    }
    row = WebhookDelivery(
        event_id=event_id,
        job_id=job.id,
        tenant_id=job.tenant_id,
        url=job.webhook_url,
        event=event,
        payload=payload,
        attempts=0,
        next_attempt_at=now,
    )
    session.add(row)
    session.flush()
    return row


def claim_webhook_deliveries(
    session: Session,
    *,
    limit: int = 20,
    lease: dt.timedelta = dt.timedelta(seconds=60),
    now: dt.datetime | None = None,
) -> list[WebhookDelivery]:
    """Lease up to `limit` due, pending deliveries that no live lease holds (SKIP LOCKED on Postgres).

    Commit the claim, POST, then `record_webhook_attempt`; a deliverer that dies lets its lease lapse.
    """
    now = now or utcnow()
    return _claim_leased(
        session,
        WebhookDelivery,
        due=[
            WebhookDelivery.delivered_at.is_(None),
            WebhookDelivery.gave_up_at.is_(None),
            WebhookDelivery.next_attempt_at <= now,
        ],
        order_by=[WebhookDelivery.next_attempt_at, WebhookDelivery.id],
        limit=limit,
        lease=lease,
        now=now,
    )


def record_webhook_attempt(
    session: Session,
    delivery_id: int,
    *,
    delivered: bool,
    status_code: int | None = None,
    error: str | None = None,
    retry_at: dt.datetime | None = None,
    now: dt.datetime | None = None,
) -> bool:
    """Settle one attempt: delivered, retried at `retry_at`, or given up (neither). False if already settled."""
    now = now or utcnow()
    values: dict[str, Any] = {
        "claimed_until": None,
        "last_status_code": status_code,
        "last_error": None if error is None else error[:200],
    }
    if delivered:
        values["delivered_at"] = now
    elif retry_at is None:
        values["gave_up_at"] = now
    else:
        values["next_attempt_at"] = retry_at
    statement = (
        update(WebhookDelivery)
        .where(
            WebhookDelivery.id == delivery_id,
            WebhookDelivery.delivered_at.is_(None),
            WebhookDelivery.gave_up_at.is_(None),
        )
        .values(values)
    )
    return _update(session, statement, WebhookDelivery, [delivery_id]) == 1


def list_webhook_deliveries(session: Session, job_id: uuid.UUID) -> list[WebhookDelivery]:
    """A job's notifications, oldest first."""
    return list(
        session.scalars(select(WebhookDelivery).where(WebhookDelivery.job_id == job_id).order_by(WebhookDelivery.id))
    )
