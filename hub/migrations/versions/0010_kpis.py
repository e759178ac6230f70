"""kpis: the presence log, and the indexes the dashboard's aggregates use

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-23 00:15:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

INDEXES = (
    ("ix_conversations_created_at", "conversations", ["created_at"]),
    ("ix_conversations_closed_at", "conversations", ["closed_at"]),
    ("ix_complaints_opened_at", "complaints", ["opened_at"]),
    ("ix_complaints_resolved_at", "complaints", ["resolved_at"]),
    (
        "ix_interactions_direction_occurred_at_channel_customer_id",
        "interactions",
        ["direction", "occurred_at", "channel", "customer_id"],
    ),
)


def upgrade() -> None:
    op.create_table(
        "presence_changes",
        sa.Column("id", Id, nullable=False),
        sa.Column("agent_id", Id, nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["agent_id"],
            ["agents.id"],
            name=op.f("fk_presence_changes_agent_id_agents"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_presence_changes")),
    )
    op.create_index(op.f("ix_presence_changes_agent_id_at"), "presence_changes", ["agent_id", "at"])
    for name, table, columns in INDEXES:
        op.create_index(name, table, columns)


def downgrade() -> None:
    for name, table, _columns in reversed(INDEXES):
        op.drop_index(name, table_name=table)
    op.drop_index(op.f("ix_presence_changes_agent_id_at"), table_name="presence_changes")
    op.drop_table("presence_changes")
