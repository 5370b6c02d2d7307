"""Batches (a manifest of documents by sha256) and signed job webhooks delivered from an outbox table.

`jobs.webhook_url` is where a job's completion is announced; `webhook_deliveries` holds one row per
announcement, written in the same transaction as the job's final status and delivered afterwards
with retries (an outbox: a crash between commit and POST loses nothing). `batches` and
`batch_items` are the manifest a restarted batch reads to skip documents already done: one item per
distinct sha256, pointing at the (deduplicated) job. On Postgres the app role gets DML on the new
tables and their sequences, as 0003 did for the first ones.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 14:30:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import context, op
from sqlalchemy.dialects import postgresql

from service.store.session import app_role_name

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Spelled out here rather than imported from models: a migration must keep meaning what it meant.
JSON_T = sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), "postgresql")
TS = sa.DateTime(timezone=True)
BIGINT_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

NEW_TABLES = ("batches", "batch_items", "webhook_deliveries")
SERIAL_IDS = (("batch_items", "id"), ("webhook_deliveries", "id"))


def _created_at() -> sa.Column[object]:
    return sa.Column("created_at", TS, server_default=sa.func.now(), nullable=False)


def _role() -> str | None:
    if op.get_context().dialect.name != "postgresql":
        return None
    return app_role_name(context.config.attributes.get("app_role"))


def upgrade() -> None:
    """Add the webhook column, the batch manifest and the webhook outbox; grant them to the app role."""
    op.add_column("jobs", sa.Column("webhook_url", sa.String(2000), nullable=True))

    op.create_table(
        "batches",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("source", sa.String(1000), nullable=False),
        sa.Column("schema_name", sa.String(100), nullable=False),
        sa.Column("schema_version", sa.Integer(), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("backend", sa.String(50), nullable=False),
        sa.Column("webhook_url", sa.String(2000), nullable=True),
        _created_at(),
        sa.Column("updated_at", TS, server_default=sa.func.now(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_batches_tenant_id_tenants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_batches")),
    )
    op.create_index("ix_batches_tenant_id_source", "batches", ["tenant_id", "source"])

    op.create_table(
        "batch_items",
        sa.Column("id", BIGINT_ID, autoincrement=True, nullable=False),
        sa.Column("batch_id", sa.Uuid(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("name", sa.String(1000), nullable=False),
        sa.Column("document_id", sa.Uuid(), nullable=False),
        sa.Column("job_id", sa.Uuid(), nullable=True),
        sa.Column("copies", sa.Integer(), server_default=sa.text("1"), nullable=False),
        _created_at(),
        sa.ForeignKeyConstraint(
            ["batch_id"], ["batches.id"], name=op.f("fk_batch_items_batch_id_batches"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["document_id"], ["documents.id"], name=op.f("fk_batch_items_document_id_documents"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], name=op.f("fk_batch_items_job_id_jobs"), ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_batch_items")),
        sa.UniqueConstraint("batch_id", "sha256", name=op.f("uq_batch_items_batch_id_sha256")),
    )
    op.create_index(op.f("ix_batch_items_job_id"), "batch_items", ["job_id"])
    op.create_index(op.f("ix_batch_items_document_id"), "batch_items", ["document_id"])

    op.create_table(
        "webhook_deliveries",
        sa.Column("id", BIGINT_ID, autoincrement=True, nullable=False),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("job_id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("url", sa.String(2000), nullable=False),
        sa.Column("event", sa.String(50), nullable=False),
        sa.Column("payload", JSON_T, nullable=False),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("next_attempt_at", TS, nullable=False),
        sa.Column("claimed_until", TS, nullable=True),
        sa.Column("delivered_at", TS, nullable=True),
        sa.Column("gave_up_at", TS, nullable=True),
        sa.Column("last_status_code", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.String(200), nullable=True),
        _created_at(),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name=op.f("fk_webhook_deliveries_job_id_jobs"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_webhook_deliveries_tenant_id_tenants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_deliveries")),
        sa.UniqueConstraint("event_id", name=op.f("uq_webhook_deliveries_event_id")),
    )
    op.create_index(op.f("ix_webhook_deliveries_job_id"), "webhook_deliveries", ["job_id"])
    op.create_index(
        "ix_webhook_deliveries_pending",
        "webhook_deliveries",
        ["next_attempt_at"],
        postgresql_where=sa.text("delivered_at IS NULL AND gave_up_at IS NULL"),
        sqlite_where=sa.text("delivered_at IS NULL AND gave_up_at IS NULL"),
    )

    role = _role()
    if role is not None:
        op.execute(f'GRANT SELECT, INSERT, UPDATE, DELETE ON {", ".join(NEW_TABLES)} TO "{role}"')
        for table, column in SERIAL_IDS:
            op.execute(
                f"""
                DO $$
                BEGIN
                    EXECUTE format('GRANT USAGE, SELECT ON SEQUENCE %s TO "{role}"',
                                   pg_get_serial_sequence('{table}', '{column}'));
                END
                $$
                """
            )


def downgrade() -> None:
    """Drop the new tables (their grants go with them) and the webhook column."""
    for table in ("webhook_deliveries", "batch_items", "batches"):
        op.drop_table(table)
    if op.get_context().dialect.name == "sqlite":
        # Native DROP COLUMN (SQLite 3.35+): a batch copy of `jobs` would DROP the parent table, and with
        # foreign keys on, that cascades into results and the outbox.
        op.execute("ALTER TABLE jobs DROP COLUMN webhook_url")
    else:
        op.drop_column("jobs", "webhook_url")
