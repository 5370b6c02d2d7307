"""Human review: reviewers' decisions per field, append-only beside the model's untouched record.

`review_decisions` holds one row per decision (accept, correct with a value, reject as not stated)
and one `finish` row per completed review; the record's current version is derived from them, the
model's `results` row is never rewritten. A trigger refuses UPDATE on both backends; on Postgres the
app role gets SELECT and INSERT only (deletes come only from the cascades of a job or tenant).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05 13:20:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import context, op
from sqlalchemy.dialects import postgresql

from service.store.session import app_role_name

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Spelled out here rather than imported from models: a migration must keep meaning what it meant.
JSON_T = sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), "postgresql")
TS = sa.DateTime(timezone=True)
BIGINT_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

_PG_UP = (
    """
    CREATE FUNCTION review_decisions_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION 'review_decisions is append-only: UPDATE of decision % rejected', OLD.id
            USING ERRCODE = 'integrity_constraint_violation';
    END
    $$
    """,
    """
    CREATE TRIGGER review_decisions_no_update BEFORE UPDATE ON review_decisions
    FOR EACH ROW EXECUTE FUNCTION review_decisions_append_only()
    """,
)
_PG_DOWN = (
    "DROP TRIGGER review_decisions_no_update ON review_decisions",
    "DROP FUNCTION review_decisions_append_only()",
)
_SQLITE_UP = (
    """
    CREATE TRIGGER review_decisions_no_update BEFORE UPDATE ON review_decisions
    BEGIN SELECT RAISE(ABORT, 'review_decisions is append-only: UPDATE rejected'); END
    """,
)
_SQLITE_DOWN = ("DROP TRIGGER review_decisions_no_update",)


def _role() -> str | None:
    if op.get_context().dialect.name != "postgresql":
        return None
    return app_role_name(context.config.attributes.get("app_role"))


def upgrade() -> None:
    """Create the decisions table, its append-only trigger, and the app role's grants."""
    op.create_table(
        "review_decisions",
        sa.Column("id", BIGINT_ID, autoincrement=True, nullable=False),
        sa.Column("job_id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("field", sa.String(200), nullable=True),
        sa.Column(
            "action",
            sa.Enum(
                "accept",
                "correct",
                "reject",
                "finish",
                name="review_action",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("value", JSON_T, nullable=True),
        sa.Column("evidence", JSON_T, nullable=True),
        sa.Column("flags", JSON_T, nullable=True),
        sa.Column("reviewer_key_id", sa.Uuid(), nullable=True),
        sa.Column("reviewer_name", sa.String(200), nullable=False),
        sa.Column("created_at", TS, server_default=sa.func.now(), nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name=op.f("fk_review_decisions_job_id_jobs"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_review_decisions_tenant_id_tenants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_review_decisions")),
    )
    op.create_index("ix_review_decisions_job_id_id", "review_decisions", ["job_id", "id"])
    op.create_index(op.f("ix_review_decisions_tenant_id"), "review_decisions", ["tenant_id"])
    dialect = op.get_context().dialect.name
    for statement in _PG_UP if dialect == "postgresql" else _SQLITE_UP:
        op.execute(statement)
    role = _role()
    if role is not None:
        op.execute(f'GRANT SELECT, INSERT ON review_decisions TO "{role}"')
        op.execute(
            f"""
            DO $$
            BEGIN
                EXECUTE format('GRANT USAGE, SELECT ON SEQUENCE %s TO "{role}"',
                               pg_get_serial_sequence('review_decisions', 'id'));
            END
            $$
            """
        )


def downgrade() -> None:
    """Drop the trigger and the table (its grants go with it)."""
    dialect = op.get_context().dialect.name
    for statement in _PG_DOWN if dialect == "postgresql" else _SQLITE_DOWN:
        op.execute(statement)
    op.drop_table("review_decisions")
