"""Repositories on both backends, each test inside a transaction that is rolled back."""

from __future__ import annotations

import datetime as dt
import hashlib
import stat
import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import pytest
from sqlalchemy import Engine, func, select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from service.store import repositories as repo
from service.store.errors import (
    BadInputStoreError,
    ConflictError,
    IntegrityCheckError,
    InvalidTransitionError,
)
from service.store.models import ApiKey, BlobStorage, Document, Job, JobStatus, Tenant, UserSchema
from service.store.session import make_engine, make_session_factory

T = TypeVar("T")

PDF = b"%PDF-1.7\n1 0 obj << >> endobj\n%%EOF"


@pytest.fixture
def tenant(session: Session) -> Tenant:
    return repo.create_tenant(session, f"tenant-{uuid.uuid4()}")


@pytest.fixture
def other_tenant(session: Session) -> Tenant:
    return repo.create_tenant(session, f"other-{uuid.uuid4()}")


@pytest.fixture
def document(session: Session, tenant: Tenant) -> Document:
    document, _ = repo.add_document(session, tenant.id, PDF, media_type="application/pdf", page_count=1)
    return document


def _job(session: Session, tenant: Tenant, document: Document, model: str = "qwen2.5-0.5b") -> tuple[Job, bool]:
    return repo.create_job(
        session,
        tenant.id,
        document.id,
        schema_name="nda",
        schema_version=1,
        model=model,
        backend="llamacpp",
    )


# --- tenants and keys --------------------------------------------------------------------------------


def test_tenant_names_are_unique_and_the_transaction_survives(session: Session, tenant: Tenant) -> None:
    with pytest.raises(ConflictError):
        repo.create_tenant(session, tenant.name)
    assert repo.get_tenant_by_name(session, tenant.name) == tenant
    assert repo.get_tenant(session, tenant.id) == tenant


def test_api_key_is_shown_once_and_stored_hashed(session: Session, tenant: Tenant) -> None:
    key, plaintext = repo.create_api_key(session, tenant.id, "ci")
    assert plaintext.startswith(f"abk_{key.prefix}_") and len(plaintext) > 50
    stored = session.scalars(select(ApiKey).where(ApiKey.id == key.id)).one()
    assert plaintext not in (stored.key_hash, stored.prefix)
    assert stored.key_hash == hashlib.sha256(plaintext.encode()).hexdigest()
    assert repo.find_api_key(session, plaintext) == key


@pytest.mark.parametrize(
    "mangle",
    [
        lambda k: k[:-1] + ("A" if k[-1] != "A" else "B"),
        lambda k: k.replace("abk_", "xyz_"),
        lambda k: "",
        str.upper,
    ],
    ids=["wrong-secret", "wrong-scheme", "empty", "upper"],
)
def test_wrong_keys_find_nothing(session: Session, tenant: Tenant, mangle: Callable[[str], str]) -> None:
    _, plaintext = repo.create_api_key(session, tenant.id, "ci")
    assert repo.find_api_key(session, mangle(plaintext)) is None


def test_revoked_key_finds_nothing_and_only_its_tenant_revokes(
    session: Session, tenant: Tenant, other_tenant: Tenant
) -> None:
    key, plaintext = repo.create_api_key(session, tenant.id, "ci")
    assert not repo.revoke_api_key(session, other_tenant.id, key.id)
    assert repo.find_api_key(session, plaintext) == key
    assert repo.revoke_api_key(session, tenant.id, key.id)
    assert not repo.revoke_api_key(session, tenant.id, key.id)
    assert repo.find_api_key(session, plaintext) is None


# --- documents ---------------------------------------------------------------------------------------


def test_document_is_stored_once_per_tenant(session: Session, tenant: Tenant, other_tenant: Tenant) -> None:
    first, created = repo.add_document(session, tenant.id, PDF, media_type="application/pdf")
    again, created_again = repo.add_document(session, tenant.id, PDF, media_type="application/pdf")
    theirs, created_theirs = repo.add_document(session, other_tenant.id, PDF, media_type="application/pdf")
    assert created and not created_again and created_theirs
    assert again.id == first.id != theirs.id
    assert first.sha256 == hashlib.sha256(PDF).hexdigest() and first.size_bytes == len(PDF)
    assert first.storage is BlobStorage.DB and first.blob_path is None
    assert repo.read_document_bytes(session, first) == PDF


def test_another_tenants_document_is_invisible(session: Session, document: Document, other_tenant: Tenant) -> None:
    assert repo.get_document(session, document.tenant_id, document.id) == document
    assert repo.get_document(session, other_tenant.id, document.id) is None
    assert repo.get_document(session, document.tenant_id, uuid.uuid4()) is None


def test_document_in_blob_directory(session: Session, tenant: Tenant, blob_dir: Path) -> None:
    document, _ = repo.add_document(session, tenant.id, PDF, media_type="application/pdf", blob_dir=blob_dir)
    assert document.storage is BlobStorage.FILE
    path = blob_dir / str(document.blob_path)
    assert path.read_bytes() == PDF
    assert path.is_relative_to(blob_dir / str(tenant.id))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert repo.read_document_bytes(session, document, blob_dir=blob_dir) == PDF

    path.write_bytes(PDF + b"tampered")
    with pytest.raises(IntegrityCheckError):
        repo.read_document_bytes(session, document, blob_dir=blob_dir)


# --- jobs --------------------------------------------------------------------------------------------


def test_job_creation_is_idempotent(session: Session, tenant: Tenant, document: Document) -> None:
    job, created = _job(session, tenant, document)
    again, created_again = _job(session, tenant, document)
    other_model, created_other = _job(session, tenant, document, model="another-model")
    assert created and not created_again and created_other
    assert again.id == job.id != other_model.id
    assert job.status is JobStatus.QUEUED and job.attempts == 0 and job.schema_ref == "nda@1"
    assert session.scalar(select(func.count()).select_from(Job).where(Job.document_id == document.id)) == 2


def test_job_needs_the_tenants_own_document(session: Session, document: Document, other_tenant: Tenant) -> None:
    with pytest.raises(BadInputStoreError):
        _job(session, other_tenant, document)


def test_another_tenants_job_is_invisible(
    session: Session, tenant: Tenant, document: Document, other_tenant: Tenant
) -> None:
    job, _ = _job(session, tenant, document)
    assert repo.get_job(session, tenant.id, job.id) == job
    assert repo.get_job(session, other_tenant.id, job.id) is None
    assert repo.load_job(session, job.id) == job


def test_guarded_transitions(session: Session, tenant: Tenant, document: Document) -> None:
    job, _ = _job(session, tenant, document)
    assert repo.transition(session, job, [JobStatus.QUEUED], JobStatus.RUNNING)
    assert job.status is JobStatus.RUNNING and job.attempts == 1
    # The same message delivered twice: the second start changes nothing.
    assert not repo.transition(session, job, [JobStatus.QUEUED], JobStatus.RUNNING)
    assert job.attempts == 1

    assert repo.transition(
        session, job.id, [JobStatus.RUNNING], JobStatus.FAILED, error_code="timeout", error_message="x" * 5000
    )
    assert job.status is JobStatus.FAILED and job.error_code == "timeout"
    assert job.error_message is not None and len(job.error_message) == repo.MAX_ERROR_MESSAGE
    assert repo.transition(session, job, [JobStatus.FAILED], JobStatus.QUEUED)
    assert repo.transition(session, job, [JobStatus.QUEUED], JobStatus.RUNNING)
    assert repo.transition(session, job, [JobStatus.RUNNING], JobStatus.SUCCEEDED, timings={"total_s": 1.5})
    assert job.status is JobStatus.SUCCEEDED and job.attempts == 2
    assert job.error_code is None and job.timings == {"total_s": 1.5}


@pytest.mark.parametrize(
    ("from_states", "to_state"),
    [
        ([JobStatus.SUCCEEDED], JobStatus.RUNNING),
        ([JobStatus.QUEUED], JobStatus.SUCCEEDED),
        ([JobStatus.QUEUED, JobStatus.SUCCEEDED], JobStatus.FAILED),
        ([], JobStatus.RUNNING),
    ],
    ids=["succeeded-running", "queued-succeeded", "one-bad-edge", "empty"],
)
def test_impossible_transitions_are_refused(
    session: Session, tenant: Tenant, document: Document, from_states: list[JobStatus], to_state: JobStatus
) -> None:
    job, _ = _job(session, tenant, document)
    with pytest.raises(InvalidTransitionError):
        repo.transition(session, job, from_states, to_state)


def test_stale_object_is_not_trusted(session: Session, tenant: Tenant, document: Document) -> None:
    """A job object that still says `queued` must not turn a refused UPDATE into a local success."""
    job, _ = _job(session, tenant, document)
    # Another worker started it; this session's copy of the job has not heard.
    session.execute(
        update(Job)
        .where(Job.id == job.id)
        .values(status=JobStatus.RUNNING)
        .execution_options(synchronize_session=False)
    )
    assert job.status is JobStatus.QUEUED
    assert not repo.transition(session, job, [JobStatus.QUEUED], JobStatus.RUNNING)
    assert job.status is JobStatus.RUNNING and job.attempts == 0  # re-read from the database, not guessed


# --- results -----------------------------------------------------------------------------------------


def test_result_is_saved_once_and_scoped(
    session: Session, tenant: Tenant, document: Document, other_tenant: Tenant
) -> None:
    job, _ = _job(session, tenant, document)
    result, created = repo.save_result(session, job.id, data={"party": "A"}, evidence={"party": [0, 1]}, flags={})
    again, created_again = repo.save_result(session, job.id, data={"party": "B"})
    assert created and not created_again and again.id == result.id and again.data == {"party": "A"}
    assert repo.get_result(session, tenant.id, job.id) == result
    assert repo.get_result(session, other_tenant.id, job.id) is None


# --- outbox ------------------------------------------------------------------------------------------


def test_outbox_claim_lease_and_send(session: Session, tenant: Tenant, document: Document) -> None:
    job, _ = _job(session, tenant, document)
    message = repo.add_outbox(session, job.id)
    assert message.payload == {"job_id": str(job.id)} and message.topic == "extract"
    now = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)

    claimed = repo.claim_outbox(session, now=now, lease=dt.timedelta(seconds=30))
    assert [m.id for m in claimed] == [message.id]
    assert claimed[0].attempts == 1 and claimed[0].claimed_until == now + dt.timedelta(seconds=30)
    assert repo.claim_outbox(session, now=now + dt.timedelta(seconds=10)) == []  # lease still held

    reclaimed = repo.claim_outbox(session, now=now + dt.timedelta(seconds=31))  # the relay died
    assert [m.id for m in reclaimed] == [message.id] and reclaimed[0].attempts == 2
    repo.release_outbox(session, [message.id])
    assert [m.id for m in repo.claim_outbox(session, now=now + dt.timedelta(seconds=32))] == [message.id]

    assert repo.jobs_with_unsent_outbox(session, [job.id]) == {job.id}
    assert repo.mark_outbox_sent(session, [message.id]) == 1
    assert repo.mark_outbox_sent(session, [message.id]) == 0  # sent twice: nothing more happens
    assert message.sent_at is not None
    assert repo.claim_outbox(session, now=now + dt.timedelta(days=1)) == []
    assert repo.mark_outbox_sent(session, []) == 0


# --- user schemas ------------------------------------------------------------------------------------


def test_user_schema_versions(session: Session, tenant: Tenant, other_tenant: Tenant) -> None:
    v1, created1 = repo.register_user_schema(session, tenant.id, "invoice", {"type": "object"})
    same, created_same = repo.register_user_schema(session, tenant.id, "invoice", {"type": "object"})
    v2, created2 = repo.register_user_schema(session, tenant.id, "invoice", {"type": "object", "title": "v2"})
    other, _ = repo.register_user_schema(session, tenant.id, "receipt", {"type": "object"})
    assert (created1, created_same, created2) == (True, False, True)
    assert same.id == v1.id and (v1.version, v2.version) == (1, 2) and v2.ref == "invoice@2"
    assert repo.get_user_schema(session, tenant.id, "invoice") == v2
    assert repo.get_user_schema(session, tenant.id, "invoice", 1) == v1
    assert repo.list_user_schemas(session, tenant.id) == [v1, v2, other]
    assert repo.list_user_schemas(session, tenant.id, "invoice") == [v1, v2]
    assert repo.get_user_schema(session, other_tenant.id, "invoice") is None
    assert repo.list_user_schemas(session, other_tenant.id) == []
    with pytest.raises(BadInputStoreError):
        repo.register_user_schema(session, tenant.id, "Bad Name@1", {})


def test_user_schema_is_frozen_by_its_first_job(session: Session, tenant: Tenant, document: Document) -> None:
    schema, _ = repo.register_user_schema(session, tenant.id, "invoice", {"type": "object"})
    job, _ = repo.create_job(
        session,
        tenant.id,
        document.id,
        schema_name="invoice",
        schema_version=1,
        model="m",
        backend="llamacpp",
        user_schema=schema,
    )
    assert job.user_schema_id == schema.id and schema.used
    with pytest.raises(DBAPIError, match="immutable"), session.begin_nested():  # the database holds it to that
        session.execute(update(UserSchema).where(UserSchema.id == schema.id).values(json_schema={"type": "array"}))
    session.expire(schema)
    assert repo.get_user_schema(session, tenant.id, "invoice", 1) == schema
    assert schema.json_schema == {"type": "object"}


def test_job_with_mismatched_user_schema_is_refused(session: Session, tenant: Tenant, document: Document) -> None:
    schema, _ = repo.register_user_schema(session, tenant.id, "invoice", {"type": "object"})
    with pytest.raises(BadInputStoreError):
        repo.create_job(
            session,
            tenant.id,
            document.id,
            schema_name="invoice",
            schema_version=2,
            model="m",
            backend="llamacpp",
            user_schema=schema,
        )


# --- concurrency on Postgres (committed, on a separate database) -------------------------------------


@pytest.fixture
def committed(pg_commit_url: str) -> Iterator[tuple[Engine, Tenant, Document]]:
    engine = make_engine(pg_commit_url, pool_size=4)
    with make_session_factory(engine).begin() as session:
        tenant = repo.create_tenant(session, f"tenant-{uuid.uuid4()}")
        document, _ = repo.add_document(session, tenant.id, PDF, media_type="application/pdf")
    yield engine, tenant, document
    engine.dispose()


def _in_threads(call: Callable[[], T], n: int = 4) -> list[T]:
    """Run `call` n times at once, each in its own thread (and so its own connection)."""
    barrier = threading.Barrier(n)

    def run() -> T:
        barrier.wait()
        return call()

    with ThreadPoolExecutor(max_workers=n) as pool:
        return [f.result() for f in [pool.submit(run) for _ in range(n)]]


def test_concurrent_job_creation_returns_one_job(committed: tuple[Engine, Tenant, Document]) -> None:
    engine, tenant, document = committed
    factory = make_session_factory(engine)

    def create() -> tuple[uuid.UUID, bool]:
        with factory.begin() as session:
            job, created = _job(session, tenant, document, model=f"race-{document.id}")
            return job.id, created

    results = _in_threads(create)
    assert len({job_id for job_id, _ in results}) == 1
    assert sum(created for _, created in results) == 1


def test_concurrent_start_has_one_winner(committed: tuple[Engine, Tenant, Document]) -> None:
    engine, tenant, document = committed
    factory = make_session_factory(engine)
    with factory.begin() as session:
        job_id = _job(session, tenant, document, model=f"start-{uuid.uuid4()}")[0].id

    def start() -> bool:
        with factory.begin() as session:
            return repo.transition(session, job_id, [JobStatus.QUEUED], JobStatus.RUNNING)

    assert sorted(_in_threads(start)) == [False, False, False, True]
    with factory() as session:
        job = repo.load_job(session, job_id)
        assert job is not None and job.attempts == 1


def test_relays_claim_disjoint_batches(committed: tuple[Engine, Tenant, Document]) -> None:
    """SKIP LOCKED: a second relay takes other rows instead of waiting for, or duplicating, the first's."""
    engine, tenant, document = committed
    factory = make_session_factory(engine)
    with factory.begin() as session:
        job, _ = _job(session, tenant, document, model=f"outbox-{uuid.uuid4()}")
        mine = {repo.add_outbox(session, job.id).id for _ in range(6)}

    with factory() as first, factory() as second:
        a = {m.id for m in repo.claim_outbox(first, limit=3)}
        b = {m.id for m in repo.claim_outbox(second, limit=100)}  # runs while `first` still holds its locks
        assert len(a) == 3 and not a & b and mine <= a | b
        first.commit()
        second.commit()
    with factory.begin() as session:
        assert repo.mark_outbox_sent(session, sorted(mine)) == len(mine)
