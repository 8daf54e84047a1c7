"""Catalogue tables: public services, their agencies and groups, the base calculation amount, the outbox."""
from datetime import date, datetime

from sqlalchemy import JSON, BigInteger, Boolean, Date, Integer, String, false
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from oss_common.database import UtcDateTime
from oss_common.outbox import OutboxMixin


class Base(DeclarativeBase):
    pass


class Agency(Base):
    __tablename__ = "agencies"

    code: Mapped[str] = mapped_column(String(64), primary_key=True)
    names: Mapped[dict] = mapped_column(JSON, nullable=False)


class Group(Base):
    __tablename__ = "groups"

    code: Mapped[str] = mapped_column(String(64), primary_key=True)
    names: Mapped[dict] = mapped_column(JSON, nullable=False)


class PublicService(Base):
    __tablename__ = "public_services"

    code: Mapped[str] = mapped_column(String(64), primary_key=True)
    group: Mapped[str] = mapped_column(String(64), nullable=False, index=True)
    agency: Mapped[str] = mapped_column(String(64), nullable=False)
    # The definition as the API shows it (names, documents, attributes, fee, regions, ...).
    definition: Mapped[dict] = mapped_column(JSON, nullable=False)
    state: Mapped[str] = mapped_column(String(16), nullable=False, index=True)
    # Listed on the anonymous Open311 face; every other service's applications are personal.
    public_interest: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False, server_default=false())
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)


class CatalogueChange(Base):
    """The audit trail: every change of a service, with who made it."""

    __tablename__ = "catalogue_changes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    code: Mapped[str] = mapped_column(String(64), nullable=False, index=True)
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    state: Mapped[str] = mapped_column(String(16), nullable=False)
    actor: Mapped[str] = mapped_column(String(128), nullable=False)
    occurred_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)


class BaseAmount(Base):
    """The base calculation amount (bazaviy hisoblash miqdori, BHM) from the day it took effect, in tiyin."""

    __tablename__ = "base_amounts"

    effective_from: Mapped[date] = mapped_column(Date, primary_key=True)
    amount_tiyin: Mapped[int] = mapped_column(BigInteger, nullable=False)
    actor: Mapped[str] = mapped_column(String(128), nullable=False)
    recorded_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)


class OutboxEvent(OutboxMixin, Base):
    pass
