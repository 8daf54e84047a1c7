"""Alembic environment of the notifications service's database."""
from alembic import context

from oss_common.database import run_migrations_online
from services.notifications.models import Base

run_migrations_online(context, Base.metadata)
