"""Postgres application role: normal DML on every table, but only SELECT and INSERT on audit_events.

The service should connect as a login role that is a member of this NOLOGIN role (or as the role
itself, given LOGIN by the DBA); the migrations run as the tables' owner. Without UPDATE, DELETE or
TRUNCATE privilege and without ownership, the application can neither rewrite the audit trail nor
switch its triggers off. The role's name comes from the migration config (`app_role`), default
`abstractor_app`, env `ABSTRACTOR_DATABASE_APP_ROLE`. Roles are cluster-wide, so downgrade revokes
the grants but leaves the role for the DBA to drop. SQLite has no roles: nothing to do there.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25 13:20:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import context, op

from service.store.session import app_role_name

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DML_TABLES = (
    "tenants",
    "api_keys",
    "documents",
    "document_blobs",
    "user_schemas",
    "jobs",
    "results",
    "outbox",
)


def _role() -> str | None:
    if op.get_context().dialect.name != "postgresql":
        return None
    # Validated: the name is spliced into DDL, which cannot take bind parameters.
    return app_role_name(context.config.attributes.get("app_role"))


def upgrade() -> None:
    """Create the role when missing and grant it what the service needs, no more."""
    role = _role()
    if role is None:
        return
    op.execute(
        f"""
        DO $$
        BEGIN
            IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}') THEN
                BEGIN
                    CREATE ROLE "{role}" NOLOGIN;
                EXCEPTION WHEN duplicate_object OR unique_violation THEN
                    -- Another database's migration created it between our check and CREATE.
                    RAISE NOTICE 'role % already exists', '{role}';
                END;
            END IF;
            EXECUTE format('GRANT USAGE ON SCHEMA %I TO "{role}"', current_schema());
            EXECUTE format(
                'GRANT USAGE, SELECT ON SEQUENCE %s TO "{role}"', pg_get_serial_sequence('outbox', 'id')
            );
        END
        $$
        """
    )
    op.execute(f'GRANT SELECT, INSERT, UPDATE, DELETE ON {", ".join(DML_TABLES)} TO "{role}"')
    op.execute(f'GRANT SELECT, INSERT ON audit_events TO "{role}"')
    # Read-only, so a readiness probe running as the app can check the schema is at head.
    op.execute(f'GRANT SELECT ON alembic_version TO "{role}"')


def downgrade() -> None:
    """Revoke every grant made above; the cluster-wide role itself stays."""
    role = _role()
    if role is None:
        return
    op.execute(f'REVOKE ALL ON {", ".join((*DML_TABLES, "audit_events", "alembic_version"))} FROM "{role}"')
    op.execute(
        f"""
        DO $$
        BEGIN
            EXECUTE format(
                'REVOKE ALL ON SEQUENCE %s FROM "{role}"', pg_get_serial_sequence('outbox', 'id')
            );
            EXECUTE format('REVOKE USAGE ON SCHEMA %I FROM "{role}"', current_schema());
        END
        $$
        """
    )
