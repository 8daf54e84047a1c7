"""What intake is asked to do, as plain data: entrypoints build these from the wire, use cases carry them out."""
from dataclasses import dataclass
from datetime import date, datetime

from oss_common.auth import Principal


@dataclass(frozen=True)
class SubmitApplication:
    submission: dict  # as SubmissionSchema loaded it
    idempotency_key: str | None = None
    actor: str | None = None  # `role:subject` for the audit trail; None: the centre it is filed at
    caller: Principal | None = None  # the operator filing it: files only at its centres; None: no caller to check (a queued Open311 request)
    submitted_at: datetime | None = None  # None: now


@dataclass(frozen=True)
class Transition:
    tracking_number: str
    to: str
    actor: str
    reason: str | None = None
    caller: Principal | None = None  # staff whose centres or agencies the application must be in
    at: datetime | None = None  # None: now


@dataclass(frozen=True)
class ReissueStatusCode:
    """A new status code for a citizen who lost the receipt; the old code stops working."""

    tracking_number: str
    caller: Principal | None = None  # the operator, whose centres the application must be in; None over RPC


@dataclass(frozen=True)
class PayAtDesk:
    """The desk took an application's fee in cash or by card; the receipt is the till's or terminal's."""

    tracking_number: str
    method: str  # cash or card
    receipt_number: str
    amount_tiyin: int
    actor: str
    caller: Principal | None = None  # the operator, whose centres the application must be in
    at: datetime | None = None


@dataclass(frozen=True)
class RefundFee:
    """The agency got a refusal wrong: the fee goes back (an officer of its agency says why)."""

    tracking_number: str
    reason: str
    actor: str
    caller: Principal | None = None
    at: datetime | None = None


@dataclass(frozen=True)
class SellOfficeService:
    """One of the centre's own office services sold at the desk: no applicant, a receipt."""

    service_code: str
    quantity: int
    method: str  # cash or card
    centre: str | None
    actor: str
    caller: Principal | None = None
    at: datetime | None = None


@dataclass(frozen=True)
class ExtendDeadline:
    """An officer gives an application more working days, as its service allows, and says why."""

    tracking_number: str
    working_days: int
    reason: str
    actor: str
    caller: Principal | None = None  # the officer, whose agencies the application must be in; None over RPC
    at: datetime | None = None  # None: now


@dataclass(frozen=True)
class DeclareClosure:
    """A centre could not work on `day` (a power cut): its applications' clocks skip that day."""

    centre: str
    day: date
    reason: str
    actor: str
    caller: Principal | None = None  # a region administrator, or the head of that centre; None over RPC
    at: datetime | None = None  # None: now


@dataclass(frozen=True)
class ExpireUnpaidInvoices:
    """Cancel invoices still unpaid after their due date and withdraw their applications."""

    at: datetime | None = None  # None: now
    batch: int = 100  # at most this many in one run; the next run takes the rest
