"""the legal clock's rules per service: whether returning for correction stops it, how many working days an
extension may add and how many extensions there may be (kept in the definition, like the deadline)

Revision ID: 0006
Revises: 0005
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: Union[str, Sequence[str], None] = "0005"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

# The rules a service had before the catalogue said them: the clock stops on return, no extension.
DEFAULTS = {"stops_on_return": True, "extension_working_days": 0, "max_extensions": 1}
SERVICES = sa.table("public_services", sa.column("code", sa.String), sa.column("definition", sa.JSON))


def upgrade() -> None:
    connection = op.get_bind()
    for code, definition in connection.execute(sa.select(SERVICES.c.code, SERVICES.c.definition)).all():
        if "clock" not in definition:
            connection.execute(SERVICES.update().where(SERVICES.c.code == code)
                               .values(definition={**definition, "clock": dict(DEFAULTS)}))


def downgrade() -> None:
    connection = op.get_bind()
    for code, definition in connection.execute(sa.select(SERVICES.c.code, SERVICES.c.definition)).all():
        if "clock" in definition:
            connection.execute(SERVICES.update().where(SERVICES.c.code == code)
                               .values(definition={key: value for key, value in definition.items() if key != "clock"}))
