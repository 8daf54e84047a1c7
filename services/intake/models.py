"""Intake tables: applications, their status history, tracking sequences, the catalogue copy, the outbox."""
from datetime import date, datetime

from sqlalchemy import JSON, Date, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from oss_common.database import UtcDateTime
from oss_common.consumers import ProcessedEventMixin
from oss_common.outbox import OutboxMixin


class Base(DeclarativeBase):
    pass


class Application(Base):
    __tablename__ = "applications"
    __table_args__ = (
        Index("ix_applications_status_due", "status", "due_date"),
        Index("ix_applications_submitted", "submitted_at"),
        Index("ix_applications_service", "service_code", "submitted_at"),
        Index("ix_applications_district", "district", "submitted_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tracking_number: Mapped[str] = mapped_column(String(32), unique=True, nullable=False)
    idempotency_key: Mapped[str | None] = mapped_column(String(128), unique=True, nullable=True)
    request_fingerprint: Mapped[str | None] = mapped_column(String(64), nullable=True)
    service_code: Mapped[str] = mapped_column(String(64), nullable=False)
    service_version: Mapped[int] = mapped_column(Integer, nullable=False)
    agency: Mapped[str] = mapped_column(String(64), nullable=False)
    district: Mapped[str] = mapped_column(String(16), nullable=False)
    centre: Mapped[str] = mapped_column(String(64), nullable=False)
    status: Mapped[str] = mapped_column(String(32), nullable=False)
    applicant_pinfl: Mapped[str] = mapped_column(String(14), nullable=False)
    applicant_name: Mapped[str] = mapped_column(String(200), nullable=False)
    applicant_phone: Mapped[str] = mapped_column(String(16), nullable=False)
    applicant_email: Mapped[str | None] = mapped_column(String(254), nullable=True)
    language: Mapped[str] = mapped_column(String(2), nullable=False)
    channel: Mapped[str] = mapped_column(String(8), nullable=False)
    documents: Mapped[list] = mapped_column(JSON, nullable=False)
    attributes: Mapped[dict] = mapped_column(JSON, nullable=False)
    submitted_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    due_date: Mapped[date] = mapped_column(Date, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    decided_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    # The citizen's status code, as services.intake.public.status_code_digest keeps it (never the code).
    status_code_digest: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # Rises by one with every change (1 when submitted); events carry it, and read models apply an
    # application's events by it, never by comparing timestamps taken on different hosts.
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=1, server_default="1")

    history: Mapped[list["StatusChange"]] = relationship(
        back_populates="application", order_by="StatusChange.id", cascade="all, delete-orphan"
    )


class StatusChange(Base):
    """Who moved an application, when, from where to where, and why."""

    __tablename__ = "status_changes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    application_id: Mapped[int] = mapped_column(ForeignKey("applications.id"), nullable=False, index=True)
    from_status: Mapped[str | None] = mapped_column(String(32), nullable=True)
    to_status: Mapped[str] = mapped_column(String(32), nullable=False)
    actor: Mapped[str] = mapped_column(String(128), nullable=False)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    occurred_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)

    application: Mapped[Application] = relationship(back_populates="history")


class TrackingSequence(Base):
    """The last tracking number handed out in a year; incremented inside the submission's transaction."""

    __tablename__ = "tracking_sequences"

    year: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last_value: Mapped[int] = mapped_column(Integer, nullable=False)


class CatalogueEntry(Base):
    """The region's copy of a catalogue service, kept current by the catalogue's events."""

    __tablename__ = "catalogue_entries"

    code: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    state: Mapped[str] = mapped_column(String(16), nullable=False)
    definition: Mapped[dict] = mapped_column(JSON, nullable=False)
    refreshed_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)


class OutboxEvent(OutboxMixin, Base):
    pass


class ProcessedEvent(ProcessedEventMixin, Base):
    pass
