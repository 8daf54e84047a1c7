"""the legal clock: applications keep where their clock started, whether it is paused and the working days
left, and their extensions; history entries say what the clock did; centres' closure days

Revision ID: 0005
Revises: 0004
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: Union[str, Sequence[str], None] = "0004"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    # Applications filed before the clock run from their filing day (clock_started_on None).
    with op.batch_alter_table("applications") as batch_op:
        batch_op.add_column(sa.Column("clock_started_on", sa.Date(), nullable=True))
        batch_op.add_column(sa.Column("clock_paused_on", sa.Date(), nullable=True))
        batch_op.add_column(sa.Column("working_days_left", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("extensions", sa.Integer(), nullable=False, server_default="0"))
    with op.batch_alter_table("status_changes") as batch_op:
        batch_op.add_column(sa.Column("clock", sa.String(16), nullable=True))
        batch_op.add_column(sa.Column("working_days", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("due_date", sa.Date(), nullable=True))
    op.create_table(
        "centre_closures",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("centre", sa.String(64), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("declared_by", sa.String(128), nullable=False),
        sa.Column("declared_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("centre", "day", name="uq_centre_closures_centre_day"),
    )


def downgrade() -> None:
    op.drop_table("centre_closures")
    with op.batch_alter_table("status_changes") as batch_op:
        batch_op.drop_column("due_date")
        batch_op.drop_column("working_days")
        batch_op.drop_column("clock")
    with op.batch_alter_table("applications") as batch_op:
        batch_op.drop_column("extensions")
        batch_op.drop_column("working_days_left")
        batch_op.drop_column("clock_paused_on")
        batch_op.drop_column("clock_started_on")
