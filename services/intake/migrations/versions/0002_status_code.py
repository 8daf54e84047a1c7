"""the citizen's status code (a keyed digest of it): the second factor of a public status look-up

Revision ID: 0002
Revises: 0001
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: Union[str, Sequence[str], None] = "0001"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    # Applications filed before have none, so no anonymous look-up finds them until an operator
    # reissues their code (POST /api/v1/applications/<tracking number>/status-code).
    with op.batch_alter_table("applications") as batch_op:
        batch_op.add_column(sa.Column("status_code_digest", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("applications") as batch_op:
        batch_op.drop_column("status_code_digest")
