"""routing: agents' routing profiles and conversations' routing state

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22 23:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "agent_routing",
        sa.Column("agent_id", Id, nullable=False),
        sa.Column("tiers", sa.JSON(), nullable=False),
        sa.Column("capacity", sa.JSON(), nullable=False),
        sa.Column("deputy_agent_id", Id, nullable=True),
        sa.Column("last_assigned_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["agent_id"],
            ["agents.id"],
            name=op.f("fk_agent_routing_agent_id_agents"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["deputy_agent_id"],
            ["agents.id"],
            name=op.f("fk_agent_routing_deputy_agent_id_agents"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("agent_id", name=op.f("pk_agent_routing")),
    )
    op.create_table(
        "routing_states",
        sa.Column("conversation_id", Id, nullable=False),
        sa.Column("rule", sa.String(length=50), nullable=False),
        sa.Column("explanation", sa.JSON(), nullable=False),
        sa.Column("waiting", sa.Boolean(), nullable=False),
        sa.Column("queue", sa.String(length=50), nullable=True),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=20), nullable=False),
        sa.Column("tier", sa.String(length=1), nullable=False),
        sa.Column("language", sa.String(length=8), nullable=True),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("reserved_agent_id", Id, nullable=True),
        sa.Column("deputy_agent_id", Id, nullable=True),
        sa.Column("team_open", sa.Boolean(), nullable=False),
        sa.Column("widen_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("waiting_since", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sla_due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sla_breached_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name=op.f("fk_routing_states_conversation_id_conversations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["reserved_agent_id"],
            ["agents.id"],
            name=op.f("fk_routing_states_reserved_agent_id_agents"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["deputy_agent_id"],
            ["agents.id"],
            name=op.f("fk_routing_states_deputy_agent_id_agents"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("conversation_id", name=op.f("pk_routing_states")),
    )
    with op.batch_alter_table("routing_states", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_routing_states_waiting_queue_priority_waiting_since"),
            ["waiting", "queue", "priority", "waiting_since"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_routing_states_waiting_widen_at"), ["waiting", "widen_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_routing_states_sla_breached_at_sla_due_at"),
            ["sla_breached_at", "sla_due_at"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_routing_states_reserved_agent_id"), ["reserved_agent_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_routing_states_deputy_agent_id"), ["deputy_agent_id"], unique=False
        )


def downgrade() -> None:
    op.drop_table("routing_states")
    op.drop_table("agent_routing")
