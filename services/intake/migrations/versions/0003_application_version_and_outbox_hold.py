"""applications carry a version; the outbox holds events the broker returned

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
    with op.batch_alter_table("applications") as batch_op:
        batch_op.add_column(sa.Column("version", sa.Integer(), nullable=False, server_default="1"))
    # Every change wrote one history entry, the submission included.
    op.execute("UPDATE applications SET version = (SELECT count(*) FROM status_changes "
               "WHERE status_changes.application_id = applications.id)")
    with op.batch_alter_table("outbox") as batch_op:
        batch_op.add_column(sa.Column("returns", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("retry_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("outbox") as batch_op:
        batch_op.drop_column("retry_at")
        batch_op.drop_column("returns")
    with op.batch_alter_table("applications") as batch_op:
        batch_op.drop_column("version")
