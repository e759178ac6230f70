"""raw messages remember whether their source was told

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-22 23:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("raw_messages", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("acknowledged", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.create_index(
            batch_op.f("ix_raw_messages_source_acknowledged_status"),
            ["source", "acknowledged", "status"],
            unique=False,
        )
    # Before this revision the intake flagged a message right after taking it.
    op.execute(
        sa.text(
            "UPDATE raw_messages SET acknowledged = :yes "
            "WHERE status IN ('ingested', 'quarantined')"
        ).bindparams(yes=True)
    )
    with op.batch_alter_table("raw_messages", schema=None) as batch_op:
        batch_op.alter_column("acknowledged", server_default=None)


def downgrade() -> None:
    with op.batch_alter_table("raw_messages", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_raw_messages_source_acknowledged_status"))
        batch_op.drop_column("acknowledged")
