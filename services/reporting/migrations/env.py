"""Alembic environment of the reporting service's database."""
from alembic import context

from oss_common.database import run_migrations_online
from services.reporting.models import Base

run_migrations_online(context, Base.metadata)
