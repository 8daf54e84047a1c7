"""application states say whether the application's legal clock is stopped (returned for correction): a
paused application is not overdue

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
    with op.batch_alter_table("application_states") as batch_op:
        batch_op.add_column(sa.Column("clock_paused", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("application_states") as batch_op:
        batch_op.drop_column("clock_paused")
