"""Reporting's read model: one row per application, and daily buckets kept current by delta.

Nothing personal is kept: no applicant name, PINFL or contact ever reaches these tables.
"""
from datetime import date, datetime

from sqlalchemy import BigInteger, Boolean, Date, Float, Index, Integer, String, false
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from oss_common.database import UtcDateTime
from oss_common.consumers import ProcessedEventMixin


class Base(DeclarativeBase):
    pass


class ApplicationState(Base):
    """Where one application stands, as the newest event seen so far says (highest `version` wins)."""

    __tablename__ = "application_states"
    __table_args__ = (
        Index("ix_application_states_open_due", "is_open", "due_date"),
        Index("ix_application_states_decided", "decided_day", "service_code"),
        Index("ix_application_states_submitted", "submitted_day"),
    )

    tracking_number: Mapped[str] = mapped_column(String(32), primary_key=True)
    service_code: Mapped[str] = mapped_column(String(64), nullable=False)
    agency: Mapped[str] = mapped_column(String(64), nullable=False)
    district: Mapped[str] = mapped_column(String(16), nullable=False)
    centre: Mapped[str] = mapped_column(String(64), nullable=False)
    channel: Mapped[str] = mapped_column(String(8), nullable=False)
    status: Mapped[str] = mapped_column(String(32), nullable=False)
    is_open: Mapped[bool] = mapped_column(Boolean, nullable=False)
    submitted_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    submitted_day: Mapped[date] = mapped_column(Date, nullable=False)
    # The net due date: intake moves it when the clock resumes, is extended or skips a closure day.
    due_date: Mapped[date] = mapped_column(Date, nullable=False)
    # Returned for correction with its clock stopped: open, but not overdue whatever due_date says.
    clock_paused: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False, server_default=false())
    changed_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=0, server_default="0")
    decision: Mapped[str | None] = mapped_column(String(16), nullable=True)
    decided_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    decided_day: Mapped[date | None] = mapped_column(Date, nullable=True)
    decided_on_time: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    processing_seconds: Mapped[float | None] = mapped_column(Float, nullable=True)


class DailyCount(Base):
    """Applications submitted on `day` (Tashkent date) by one value of one dimension.

    Dimensions: `all` (value ""), `service`, `district`, `centre`, `channel` and `status`
    (the application's current status, moved from bucket to bucket as it changes).
    """

    __tablename__ = "daily_counts"
    # Clustered by (day, dimension, value) on SQLite, so a period's buckets are one range read.
    __table_args__ = {"sqlite_with_rowid": False}

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    dimension: Mapped[str] = mapped_column(String(16), primary_key=True)
    value: Mapped[str] = mapped_column(String(64), primary_key=True)
    applications: Mapped[int] = mapped_column(Integer, nullable=False, default=0)


class DailyDecision(Base):
    """Decisions taken on `day` (Tashkent date) by one value of `all`, `service` or `district`."""

    __tablename__ = "daily_decisions"
    __table_args__ = {"sqlite_with_rowid": False}

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    dimension: Mapped[str] = mapped_column(String(16), primary_key=True)
    value: Mapped[str] = mapped_column(String(64), primary_key=True)
    approved: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    rejected: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    on_time: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    late: Mapped[int] = mapped_column(Integer, nullable=False, default=0)


class FeeState(Base):
    """One invoice: the month it was issued (Tashkent), where, what for, and the money in tiyin: invoiced,
    paid (every payment), refunded (every refund); outstanding while its state is `issued`."""

    __tablename__ = "fee_states"
    __table_args__ = (Index("ix_fee_states_month", "month", "centre", "service_code"),)

    invoice_number: Mapped[str] = mapped_column(String(32), primary_key=True)
    tracking_number: Mapped[str] = mapped_column(String(32), nullable=False)
    service_code: Mapped[str] = mapped_column(String(64), nullable=False)
    centre: Mapped[str] = mapped_column(String(64), nullable=False)
    month: Mapped[str] = mapped_column(String(7), nullable=False)
    invoiced_tiyin: Mapped[int] = mapped_column(BigInteger, nullable=False)
    paid_tiyin: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    refunded_tiyin: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    state: Mapped[str] = mapped_column(String(16), nullable=False)
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=0)


class ProcessedEvent(ProcessedEventMixin, Base):
    pass
