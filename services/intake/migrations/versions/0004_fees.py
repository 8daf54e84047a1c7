"""invoices and payments (Payme transactions among them), the centre's office sales

Revision ID: 0004
Revises: 0003
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: Union[str, Sequence[str], None] = "0003"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table(
        "invoices",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("invoice_number", sa.String(32), nullable=False, unique=True),
        sa.Column("tracking_number", sa.String(32), nullable=False, unique=True),
        sa.Column("service_code", sa.String(64), nullable=False),
        sa.Column("centre", sa.String(64), nullable=False),
        sa.Column("amount_tiyin", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("due_date", sa.Date(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("method", sa.String(16), nullable=True),
        sa.Column("receipt_number", sa.String(64), nullable=True),
        sa.Column("paid_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("paid_by", sa.String(128), nullable=True),
        sa.Column("refunded_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("refund_reason", sa.Text(), nullable=True),
        sa.UniqueConstraint("centre", "receipt_number", name="uq_invoices_receipt"),
    )
    op.create_index("ix_invoices_centre_paid", "invoices", ["centre", "paid_at"])
    op.create_table(
        "payme_transactions",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("payme_id", sa.String(64), nullable=False, unique=True),
        sa.Column("payme_time", sa.BigInteger(), nullable=False),
        sa.Column("invoice_number", sa.String(32), nullable=False),
        sa.Column("amount_tiyin", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.Integer(), nullable=False),
        sa.Column("reason", sa.Integer(), nullable=True),
        sa.Column("create_time", sa.BigInteger(), nullable=False),
        sa.Column("perform_time", sa.BigInteger(), nullable=False),
        sa.Column("cancel_time", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_payme_transactions_invoice", "payme_transactions", ["invoice_number", "state"])
    op.create_index("ix_payme_transactions_time", "payme_transactions", ["payme_time"])
    op.create_table(
        "office_sales",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("receipt_number", sa.String(40), nullable=False, unique=True),
        sa.Column("centre", sa.String(64), nullable=False),
        sa.Column("service_code", sa.String(64), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("unit_tiyin", sa.BigInteger(), nullable=False),
        sa.Column("amount_tiyin", sa.BigInteger(), nullable=False),
        sa.Column("method", sa.String(16), nullable=False),
        sa.Column("sold_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
    )
    op.create_index("ix_office_sales_centre_day", "office_sales", ["centre", "day"])


def downgrade() -> None:
    op.drop_table("office_sales")
    op.drop_table("payme_transactions")
    op.drop_table("invoices")
