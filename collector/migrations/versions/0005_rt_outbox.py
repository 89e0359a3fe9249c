"""request tracker: the outbox of ticket changes, and the links to RT tickets

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26 13:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rt_links",
        sa.Column(
            "ticket_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("rt_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("seen_txn", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.ForeignKeyConstraint(
            ["ticket_id"],
            ["tickets.id"],
            name=op.f("fk_rt_links_ticket_id_tickets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("ticket_id", name=op.f("pk_rt_links")),
        sa.UniqueConstraint("rt_id", name=op.f("uq_rt_links_rt_id")),
    )
    op.create_table(
        "rt_changes",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "ticket_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("event_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("state", sa.String(length=12), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.Double(), nullable=False),
        sa.Column("lease_until", sa.Double(), nullable=True),
        sa.Column("done_at", sa.Double(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["ticket_events.id"],
            name=op.f("fk_rt_changes_event_id_ticket_events"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["ticket_id"],
            ["tickets.id"],
            name=op.f("fk_rt_changes_ticket_id_tickets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rt_changes")),
        sa.UniqueConstraint("event_id", name=op.f("uq_rt_changes_event_id")),
    )
    with op.batch_alter_table("rt_changes", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_rt_changes_state_next_attempt_at"),
            ["state", "next_attempt_at"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_rt_changes_ticket_id_state_id"),
            ["ticket_id", "state", "id"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("rt_changes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_rt_changes_ticket_id_state_id"))
        batch_op.drop_index(batch_op.f("ix_rt_changes_state_next_attempt_at"))

    op.drop_table("rt_changes")
    op.drop_table("rt_links")
