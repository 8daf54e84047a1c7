"""public-interest services: the only ones whose applications the anonymous Open311 face lists

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
    # Every service there was is personal until the catalogue file says otherwise (loading it sets the flag).
    with op.batch_alter_table("public_services") as batch_op:
        batch_op.add_column(sa.Column("public_interest", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("public_services") as batch_op:
        batch_op.drop_column("public_interest")
