"""results keyed for appending; the batches table dropped (resends are recognised by
the results' own keys)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 01:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("batches", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_batches_received_at"))
    op.drop_table("batches")
    with op.batch_alter_table("results", schema=None) as batch_op:
        batch_op.drop_constraint("uq_results_host_id_produced_at_result_uid", type_="unique")
        batch_op.create_unique_constraint(
            batch_op.f("uq_results_produced_at_host_id_result_uid"),
            ["produced_at", "host_id", "result_uid"],
        )


def downgrade() -> None:
    with op.batch_alter_table("results", schema=None) as batch_op:
        batch_op.drop_constraint("uq_results_produced_at_host_id_result_uid", type_="unique")
        batch_op.create_unique_constraint(
            batch_op.f("uq_results_host_id_produced_at_result_uid"),
            ["host_id", "produced_at", "result_uid"],
        )
    # The table comes back empty: a resend of a batch stored before the downgrade is
    # still recognised by its results' keys, which the results table keeps.
    op.create_table(
        "batches",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("host_id", sa.Integer(), nullable=False),
        sa.Column("batch_id", sa.String(length=64), nullable=False),
        sa.Column("received_at", sa.Double(), nullable=False),
        sa.Column("result_count", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["host_id"], ["hosts.id"], name=op.f("fk_batches_host_id_hosts"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_batches")),
        sa.UniqueConstraint("host_id", "batch_id", name=op.f("uq_batches_host_id_batch_id")),
    )
    with op.batch_alter_table("batches", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_batches_received_at"), ["received_at"], unique=False)
