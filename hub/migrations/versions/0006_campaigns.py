"""campaigns: saved segments, campaigns, and the campaign an outbox row belongs to

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22 23:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _agent(column: str, table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column], ["agents.id"], name=op.f(f"fk_{table}_{column}_agents"), ondelete="SET NULL"
    )


def upgrade() -> None:
    op.create_table(
        "segments",
        sa.Column("id", Id, nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("filter", sa.JSON(), nullable=False),
        sa.Column("created_by_agent_id", Id, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        _agent("created_by_agent_id", "segments"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_segments")),
    )
    op.create_table(
        "campaigns",
        sa.Column("id", Id, nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("channel", sa.String(length=10), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("segment", sa.JSON(), nullable=False),
        sa.Column("template", sa.JSON(), nullable=False),
        sa.Column("scheduled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_by_agent_id", Id, nullable=True),
        sa.Column("preview", sa.JSON(), nullable=False),
        sa.Column("approved_by_agent_id", Id, nullable=True),
        sa.Column("approved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("approval_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("approved_digest", sa.String(length=64), nullable=True),
        sa.Column("holder", sa.String(length=100), nullable=True),
        sa.Column("holder_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("enqueued_through", sa.BigInteger(), nullable=False),
        sa.Column("enqueue_done", sa.Boolean(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        _agent("created_by_agent_id", "campaigns"),
        _agent("approved_by_agent_id", "campaigns"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_campaigns")),
    )
    with op.batch_alter_table("campaigns", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_campaigns_status_id"), ["status", "id"], unique=False)
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("campaign_id", Id, nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_outbox_campaign_id_campaigns"),
            "campaigns",
            ["campaign_id"],
            ["id"],
            ondelete="SET NULL",
        )
        batch_op.create_index(
            batch_op.f("ix_outbox_campaign_id_status_id"),
            ["campaign_id", "status", "id"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_outbox_campaign_id_status_id"))
        batch_op.drop_constraint(batch_op.f("fk_outbox_campaign_id_campaigns"), type_="foreignkey")
        batch_op.drop_column("campaign_id")
    with op.batch_alter_table("campaigns", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_campaigns_status_id"))
    op.drop_table("campaigns")
    op.drop_table("segments")
