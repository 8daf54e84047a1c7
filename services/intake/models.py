"""Intake tables: applications, their status history, tracking sequences, invoices and payments, the
centre's office sales, the catalogue copy, centres' closure days, the outbox."""
from datetime import date, datetime

from sqlalchemy import JSON, BigInteger, Date, ForeignKey, Index, Integer, String, Text, UniqueConstraint
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
    # The legal clock (domain.LegalClock): it runs from `clock_started_on` (the filing or the last
    # resumption; None: the filing day, for applications filed before the clock) to `due_date`; when
    # paused it holds the working days that were left.
    clock_started_on: Mapped[date | None] = mapped_column(Date, nullable=True)
    clock_paused_on: Mapped[date | None] = mapped_column(Date, nullable=True)
    working_days_left: Mapped[int | None] = mapped_column(Integer, nullable=True)
    extensions: Mapped[int] = mapped_column(Integer, nullable=False, default=0, server_default="0")

    history: Mapped[list["StatusChange"]] = relationship(
        back_populates="application", order_by="StatusChange.id", cascade="all, delete-orphan"
    )
    # A paid service's invoice (None for a free one), by the tracking number both carry.
    invoice: Mapped["Invoice | None"] = relationship(
        primaryjoin="foreign(Invoice.tracking_number) == Application.tracking_number", uselist=False, viewonly=True)


class StatusChange(Base):
    """Who moved an application, when, from where to where, and why; also what its clock did (started,
    paused, resumed, extended: from and to the same status; moved by a closure day) and the due date after."""

    __tablename__ = "status_changes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    application_id: Mapped[int] = mapped_column(ForeignKey("applications.id"), nullable=False, index=True)
    from_status: Mapped[str | None] = mapped_column(String(32), nullable=True)
    to_status: Mapped[str] = mapped_column(String(32), nullable=False)
    actor: Mapped[str] = mapped_column(String(128), nullable=False)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    occurred_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    clock: Mapped[str | None] = mapped_column(String(16), nullable=True)
    # Extended: by how many working days; paused: how many were left.
    working_days: Mapped[int | None] = mapped_column(Integer, nullable=True)
    due_date: Mapped[date | None] = mapped_column(Date, nullable=True)

    application: Mapped[Application] = relationship(back_populates="history")


class Invoice(Base):
    """The fee of one application, in tiyin, and how it was paid or refunded."""

    __tablename__ = "invoices"
    __table_args__ = (
        UniqueConstraint("centre", "receipt_number", name="uq_invoices_receipt"),
        Index("ix_invoices_centre_paid", "centre", "paid_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    invoice_number: Mapped[str] = mapped_column(String(32), unique=True, nullable=False)
    tracking_number: Mapped[str] = mapped_column(String(32), unique=True, nullable=False)
    service_code: Mapped[str] = mapped_column(String(64), nullable=False)
    centre: Mapped[str] = mapped_column(String(64), nullable=False)
    amount_tiyin: Mapped[int] = mapped_column(BigInteger, nullable=False)
    currency: Mapped[str] = mapped_column(String(3), nullable=False)
    issued_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    due_date: Mapped[date] = mapped_column(Date, nullable=False)
    state: Mapped[str] = mapped_column(String(16), nullable=False)
    method: Mapped[str | None] = mapped_column(String(16), nullable=True)  # cash, card, payme
    receipt_number: Mapped[str | None] = mapped_column(String(64), nullable=True)
    paid_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    paid_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    refunded_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    refund_reason: Mapped[str | None] = mapped_column(Text, nullable=True)


class PaymeTransaction(Base):
    """A Payme merchant API transaction (its id, its `time` in ms), and its state 1, 2, -1 or -2."""

    __tablename__ = "payme_transactions"
    __table_args__ = (Index("ix_payme_transactions_invoice", "invoice_number", "state"),
                      Index("ix_payme_transactions_time", "payme_time"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    payme_id: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    payme_time: Mapped[int] = mapped_column(BigInteger, nullable=False)
    invoice_number: Mapped[str] = mapped_column(String(32), nullable=False)
    amount_tiyin: Mapped[int] = mapped_column(BigInteger, nullable=False)
    state: Mapped[int] = mapped_column(Integer, nullable=False)
    reason: Mapped[int | None] = mapped_column(Integer, nullable=True)
    create_time: Mapped[int] = mapped_column(BigInteger, nullable=False)
    perform_time: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    cancel_time: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)


class OfficeSale(Base):
    """A sale of one of the centre's own office services at the desk: no applicant, a receipt."""

    __tablename__ = "office_sales"
    __table_args__ = (Index("ix_office_sales_centre_day", "centre", "day"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    receipt_number: Mapped[str] = mapped_column(String(40), unique=True, nullable=False)
    centre: Mapped[str] = mapped_column(String(64), nullable=False)
    service_code: Mapped[str] = mapped_column(String(64), nullable=False)
    quantity: Mapped[int] = mapped_column(Integer, nullable=False)
    unit_tiyin: Mapped[int] = mapped_column(BigInteger, nullable=False)
    amount_tiyin: Mapped[int] = mapped_column(BigInteger, nullable=False)
    method: Mapped[str] = mapped_column(String(16), nullable=False)
    sold_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    day: Mapped[date] = mapped_column(Date, nullable=False)  # the Tashkent day of the sale: the day's takings
    actor: Mapped[str] = mapped_column(String(128), nullable=False)


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


class CentreClosure(Base):
    """A day an OSS centre could not work (a power cut, a flood): the clock of its applications skips it."""

    __tablename__ = "centre_closures"
    __table_args__ = (UniqueConstraint("centre", "day", name="uq_centre_closures_centre_day"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    centre: Mapped[str] = mapped_column(String(64), nullable=False)
    day: Mapped[date] = mapped_column(Date, nullable=False)
    reason: Mapped[str] = mapped_column(Text, nullable=False)
    declared_by: Mapped[str] = mapped_column(String(128), nullable=False)
    declared_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)


class OutboxEvent(OutboxMixin, Base):
    pass


class ProcessedEvent(ProcessedEventMixin, Base):
    pass
