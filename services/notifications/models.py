"""Notifications' tables: every delivery and its attempts, the deadline watch's copy of open
applications, and the outbox.

No phone number or e-mail address is stored: a citizen's contact travels in the event, which is
there again whenever its delivery is retried; agencies' addresses are configuration.
"""
from datetime import date, datetime

from sqlalchemy import JSON, BigInteger, Boolean, Date, Index, Integer, String, UniqueConstraint, false
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from oss_common.database import UtcDateTime
from oss_common.outbox import OutboxMixin


class Base(DeclarativeBase):
    pass


class Delivery(Base):
    """One message to one recipient by one channel, from one event (or one deadline notice).

    The unique (event_id, channel) makes it at most once: a redelivered event finds its row.
    """

    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("event_id", "channel", name="uq_deliveries_event_channel"),
        Index("ix_deliveries_tracking", "tracking_number"),
        Index("ix_deliveries_status", "status", "audience", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    tracking_number: Mapped[str] = mapped_column(String(32), nullable=False)
    region: Mapped[str] = mapped_column(String(32), nullable=False)
    # The application event it answers, or for a deadline notice a stable id of
    # (application, threshold, due date): see domain.deadline_notice_id.
    event_id: Mapped[str] = mapped_column(String(36), nullable=False)
    event_type: Mapped[str] = mapped_column(String(64), nullable=False)
    audience: Mapped[str] = mapped_column(String(8), nullable=False)
    channel: Mapped[str] = mapped_column(String(8), nullable=False)
    language: Mapped[str] = mapped_column(String(2), nullable=False)
    status: Mapped[str] = mapped_column(String(8), nullable=False)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    last_error: Mapped[str | None] = mapped_column(String(300), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    # Set while an attempt is under way: a row found with it set (and old) was left mid-send.
    attempt_started_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    # When the deadline watch may try an agency notice again (event deliveries follow their event).
    next_attempt_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


class WatchedApplication(Base):
    """Where an application stands as its newest event says: what the deadline watch reads."""

    __tablename__ = "watched_applications"
    __table_args__ = (Index("ix_watched_applications_open_due", "is_open", "due_date"),)

    tracking_number: Mapped[str] = mapped_column(String(32), primary_key=True)
    region: Mapped[str] = mapped_column(String(32), nullable=False)
    service_code: Mapped[str] = mapped_column(String(64), nullable=False)
    service_name: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    agency: Mapped[str] = mapped_column(String(64), nullable=False)
    status: Mapped[str] = mapped_column(String(32), nullable=False)
    is_open: Mapped[bool] = mapped_column(Boolean, nullable=False)
    due_date: Mapped[date] = mapped_column(Date, nullable=False)
    # Returned for correction with its clock stopped: no deadline notice while it is.
    clock_paused: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False, server_default=false())
    changed_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    # The application's version in that event: a lower one is older, whatever its `changed_at`.
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=0, server_default="0")
    # The last threshold (due_soon, overdue) the agency was told about for this due date.
    deadline_notice: Mapped[str | None] = mapped_column(String(16), nullable=True)


class OutboxEvent(OutboxMixin, Base):
    pass
