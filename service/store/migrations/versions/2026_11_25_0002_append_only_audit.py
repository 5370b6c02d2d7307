"""Append-only audit trail and frozen user schemas, enforced by the database itself.

Triggers reject UPDATE, DELETE (and, on Postgres, TRUNCATE) of audit_events, so even a bug or a
hand-typed statement with the application's credentials cannot rewrite history; the hash chain
then catches what a superuser does with the triggers switched off. A user schema version that a
job has used keeps its content forever.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 13:10:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_PG_UP = (
    """
    CREATE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_LEVEL = 'ROW' THEN
            RAISE EXCEPTION 'audit_events is append-only: % of event % rejected', TG_OP, OLD.seq
                USING ERRCODE = 'integrity_constraint_violation';
        END IF;
        RAISE EXCEPTION 'audit_events is append-only: % rejected', TG_OP
            USING ERRCODE = 'integrity_constraint_violation';
    END
    $$
    """,
    """
    CREATE TRIGGER audit_events_no_update_delete BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_append_only()
    """,
    """
    CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only()
    """,
    """
    CREATE FUNCTION user_schemas_freeze_used() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF NOT NEW.used
           OR NEW.json_schema IS DISTINCT FROM OLD.json_schema
           OR NEW.name IS DISTINCT FROM OLD.name
           OR NEW.version IS DISTINCT FROM OLD.version
           OR NEW.tenant_id IS DISTINCT FROM OLD.tenant_id THEN
            RAISE EXCEPTION 'user schema %@% has been used and is immutable', OLD.name, OLD.version
                USING ERRCODE = 'integrity_constraint_violation';
        END IF;
        RETURN NEW;
    END
    $$
    """,
    """
    CREATE TRIGGER user_schemas_freeze_used BEFORE UPDATE ON user_schemas
    FOR EACH ROW WHEN (OLD.used) EXECUTE FUNCTION user_schemas_freeze_used()
    """,
)

_PG_DOWN = (
    "DROP TRIGGER user_schemas_freeze_used ON user_schemas",
    "DROP FUNCTION user_schemas_freeze_used()",
    "DROP TRIGGER audit_events_no_truncate ON audit_events",
    "DROP TRIGGER audit_events_no_update_delete ON audit_events",
    "DROP FUNCTION audit_events_append_only()",
)

# SQLite has no TRUNCATE: an unqualified DELETE is a DELETE, and the trigger below stops it.
_SQLITE_UP = (
    """
    CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
    BEGIN SELECT RAISE(ABORT, 'audit_events is append-only: UPDATE rejected'); END
    """,
    """
    CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
    BEGIN SELECT RAISE(ABORT, 'audit_events is append-only: DELETE rejected'); END
    """,
    """
    CREATE TRIGGER user_schemas_freeze_used BEFORE UPDATE ON user_schemas
    WHEN OLD.used AND (
        NOT NEW.used
        OR NEW.json_schema IS NOT OLD.json_schema
        OR NEW.name IS NOT OLD.name
        OR NEW.version IS NOT OLD.version
        OR NEW.tenant_id IS NOT OLD.tenant_id
    )
    BEGIN SELECT RAISE(ABORT, 'user schema has been used and is immutable'); END
    """,
)

_SQLITE_DOWN = (
    "DROP TRIGGER user_schemas_freeze_used",
    "DROP TRIGGER audit_events_no_delete",
    "DROP TRIGGER audit_events_no_update",
)


def _statements(up: bool) -> tuple[str, ...]:
    dialect = op.get_context().dialect.name
    if dialect == "postgresql":
        return _PG_UP if up else _PG_DOWN
    if dialect == "sqlite":
        return _SQLITE_UP if up else _SQLITE_DOWN
    raise NotImplementedError(f"no append-only triggers written for {dialect}")


def upgrade() -> None:
    """Install the append-only and freeze triggers for this backend."""
    for statement in _statements(up=True):
        op.execute(statement)


def downgrade() -> None:
    """Remove them again."""
    for statement in _statements(up=False):
        op.execute(statement)
