"""invoices and the money paid and refunded against them, in tiyin

Revision ID: 0003
Revises: 0002
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: Union[str, Sequence[str], None] = "0002"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table(
        "fee_states",
        sa.Column("invoice_number", sa.String(32), primary_key=True),
        sa.Column("tracking_number", sa.String(32), nullable=False),
        sa.Column("service_code", sa.String(64), nullable=False),
        sa.Column("centre", sa.String(64), nullable=False),
        sa.Column("month", sa.String(7), nullable=False),
        sa.Column("invoiced_tiyin", sa.BigInteger(), nullable=False),
        sa.Column("paid_tiyin", sa.BigInteger(), nullable=False),
        sa.Column("refunded_tiyin", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
    )
    op.create_index("ix_fee_states_month", "fee_states", ["month", "centre", "service_code"])


def downgrade() -> None:
    op.drop_table("fee_states")
