"""The database itself refuses to rewrite the audit trail or a used schema, whoever asks."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import text, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from service.store import repositories as repo
from service.store.audit import record_event, verify_chain
from service.store.models import AuditEvent, JobStatus, UserSchema

INSUFFICIENT_PRIVILEGE = "42501"
INTEGRITY_CONSTRAINT_VIOLATION = "23000"


def _event(session: Session) -> AuditEvent:
    return record_event(
        session,
        actor="system",
        tenant_id=None,
        action="test.append_only",
        target_type="test",
        target_id="1",
        request_id=None,
        outcome="success",
    )


def _sqlstate(error: DBAPIError) -> str | None:
    return getattr(error.orig, "sqlstate", None)


def _fails(session: Session, sql: str) -> DBAPIError:
    """Run `sql` in a savepoint, expect the database to refuse it, and keep the transaction usable."""
    with pytest.raises(DBAPIError) as caught, session.begin_nested():
        session.execute(text(sql))
    return caught.value


@pytest.fixture
def as_app_role(pg_session: Session, app_role: str) -> Iterator[Session]:
    """The test's Postgres transaction, switched to the non-superuser application role."""
    pg_session.execute(text(f'SET LOCAL ROLE "{app_role}"'))
    yield pg_session


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE audit_events SET actor = 'mallory'",
        "DELETE FROM audit_events",
        "TRUNCATE audit_events",
        "ALTER TABLE audit_events DISABLE TRIGGER audit_events_no_update_delete",
        "SET session_replication_role = replica",
    ],
    ids=["update", "delete", "truncate", "disable-trigger", "replication-role"],
)
def test_app_role_cannot_rewrite_history(as_app_role: Session, sql: str) -> None:
    _event(as_app_role)
    assert _sqlstate(_fails(as_app_role, sql)) == INSUFFICIENT_PRIVILEGE
    assert verify_chain(as_app_role).ok


def test_app_role_can_do_its_job(as_app_role: Session, app_role: str) -> None:
    """Append and read the trail, and normal DML on everything else, as the application."""
    assert as_app_role.execute(text("SELECT current_user")).scalar_one() == app_role
    tenant = repo.create_tenant(as_app_role, f"t-{uuid.uuid4()}")
    document, _ = repo.add_document(as_app_role, tenant.id, b"%PDF-1.7", media_type="application/pdf")
    job, _ = repo.create_job(
        as_app_role,
        tenant.id,
        document.id,
        schema_name="nda",
        schema_version=1,
        model="m",
        backend="llamacpp",
    )
    message = repo.add_outbox(as_app_role, job.id)
    assert repo.claim_outbox(as_app_role) != []
    assert repo.mark_outbox_sent(as_app_role, [message.id]) == 1
    assert repo.transition(as_app_role, job, [JobStatus.QUEUED], JobStatus.RUNNING)
    event = _event(as_app_role)
    assert verify_chain(as_app_role).head is not None
    assert event.seq >= 1
    as_app_role.execute(text("DELETE FROM documents WHERE id = :id"), {"id": document.id})


@pytest.mark.parametrize(
    "sql",
    ["UPDATE audit_events SET actor = 'mallory'", "DELETE FROM audit_events", "TRUNCATE audit_events"],
    ids=["update", "delete", "truncate"],
)
def test_triggers_stop_even_the_owner(pg_session: Session, sql: str) -> None:
    _event(pg_session)
    error = _fails(pg_session, sql)
    assert _sqlstate(error) == INTEGRITY_CONSTRAINT_VIOLATION
    assert "append-only" in str(error.orig)


@pytest.mark.parametrize(
    "sql",
    ["UPDATE audit_events SET actor = 'mallory'", "DELETE FROM audit_events"],
    ids=["update", "delete"],
)
def test_sqlite_triggers_stop_writes(sqlite_session: Session, sql: str) -> None:
    _event(sqlite_session)
    assert "append-only" in str(_fails(sqlite_session, sql).orig)


@pytest.mark.parametrize(
    "sql",
    [
        'UPDATE user_schemas SET json_schema = \'{"type": "array"}\'',
        "UPDATE user_schemas SET used = false",
        "UPDATE user_schemas SET version = 99",
    ],
    ids=["content", "unfreeze", "version"],
)
def test_used_schema_is_frozen_in_the_database(session: Session, sql: str) -> None:
    tenant = repo.create_tenant(session, f"t-{uuid.uuid4()}")
    schema, _ = repo.register_user_schema(session, tenant.id, "invoice", {"type": "object"})
    repo.mark_user_schema_used(session, schema)
    # Uuid columns hold 32 hex digits on SQLite, and Postgres parses that form too.
    error = _fails(session, f"{sql} WHERE id = '{schema.id.hex}'")
    assert "immutable" in str(error.orig)


def test_unused_schema_can_change(session: Session) -> None:
    tenant = repo.create_tenant(session, f"t-{uuid.uuid4()}")
    schema, _ = repo.register_user_schema(session, tenant.id, "invoice", {"type": "object"})
    session.execute(update(UserSchema).where(UserSchema.id == schema.id).values(json_schema={"type": "object", "x": 1}))
    session.expire(schema)
    assert schema.json_schema == {"type": "object", "x": 1}
