"""The application workflow and intake's rules, in plain Python (no bus, no database)."""
import hashlib
import hmac
import re
import secrets
from collections.abc import Collection
from dataclasses import dataclass, replace
from datetime import date, datetime
from enum import StrEnum

from oss_common.calendar import NO_CLOSURES, add_working_days, is_working_day, working_days_between
from services.intake.exceptions import ApplicationInvalid, ServiceNotAvailable


class Status(StrEnum):
    AWAITING_PAYMENT = "awaiting_payment"
    SUBMITTED = "submitted"
    ACCEPTED = "accepted"
    IN_REVIEW = "in_review"
    APPROVED = "approved"
    REJECTED = "rejected"
    ISSUED = "issued"
    RETURNED_FOR_CORRECTION = "returned_for_correction"
    RESUBMITTED = "resubmitted"
    WITHDRAWN = "withdrawn"


TRANSITIONS = {
    # Paid by the desk or the payment provider (ApplicationWorkflow.pay), never moved on by an officer.
    Status.AWAITING_PAYMENT: {Status.WITHDRAWN},
    Status.SUBMITTED: {Status.ACCEPTED, Status.RETURNED_FOR_CORRECTION, Status.WITHDRAWN},
    Status.ACCEPTED: {Status.IN_REVIEW, Status.RETURNED_FOR_CORRECTION, Status.WITHDRAWN},
    Status.IN_REVIEW: {Status.APPROVED, Status.REJECTED, Status.RETURNED_FOR_CORRECTION, Status.WITHDRAWN},
    Status.RETURNED_FOR_CORRECTION: {Status.RESUBMITTED, Status.WITHDRAWN},
    Status.RESUBMITTED: {Status.ACCEPTED, Status.RETURNED_FOR_CORRECTION, Status.WITHDRAWN},
    # The decision, positive or negative, is handed to the applicant: that is `issued`.
    Status.APPROVED: {Status.ISSUED},
    Status.REJECTED: {Status.ISSUED},
    Status.ISSUED: set(),
    Status.WITHDRAWN: set(),
}
DECISIONS = frozenset({Status.APPROVED, Status.REJECTED})
FINAL = frozenset(status for status, targets in TRANSITIONS.items() if not targets)
# Still awaiting a decision: what reports count as open and the deadline watch follows (the legal
# clock of a paid service starts when it is paid).
AWAITING_DECISION = frozenset(Status) - DECISIONS - FINAL - {Status.AWAITING_PAYMENT}
# The applicant is owed an explanation for these.
REASON_REQUIRED = frozenset({Status.REJECTED, Status.RETURNED_FOR_CORRECTION, Status.WITHDRAWN})


class TransitionNotAllowed(Exception):
    def __init__(self, current, target):
        allowed = ", ".join(sorted(TRANSITIONS[current])) or "none"
        super().__init__(f"cannot move an application from {current} to {target}; allowed: {allowed}")
        self.current = current
        self.target = target


class ReasonRequired(Exception):
    def __init__(self, target):
        super().__init__(f"a reason is required to move an application to {target}")
        self.target = target


class ApplicationWorkflow:
    """Where an application stands and where it may go next."""

    def __init__(self, status):
        self.status = Status(status)

    @property
    def allowed(self):
        return sorted(TRANSITIONS[self.status])

    def transition(self, target, reason=None):
        """Move to `target`; returns the status left. Raises when the move is not allowed."""
        target = Status(target)
        if target not in TRANSITIONS[self.status]:
            raise TransitionNotAllowed(self.status, target)
        if target in REASON_REQUIRED and not (reason or "").strip():
            raise ReasonRequired(target)
        previous, self.status = self.status, target
        return previous

    def pay(self):
        """The fee is paid: the application is filed with the agency. Returns the status left."""
        if self.status is not Status.AWAITING_PAYMENT:
            raise TransitionNotAllowed(self.status, Status.SUBMITTED)
        previous, self.status = self.status, Status.SUBMITTED
        return previous

    def payment_reversed(self):
        """The payment provider took a payment back before work started: waiting for payment again."""
        if self.status is not Status.SUBMITTED:
            raise TransitionNotAllowed(self.status, Status.AWAITING_PAYMENT)
        previous, self.status = self.status, Status.AWAITING_PAYMENT
        return previous


# Fees. Amounts are whole tiyin (1 so'm = 100 tiyin) everywhere; the catalogue gives a paid
# service's fee from each day the base calculation amount changed (`fee_amounts`).
CURRENCY = "UZS"
INVOICE_DUE_WORKING_DAYS = 5
# Work has not started while the agency has not accepted the application: a withdrawal refunds the fee.
WORK_NOT_STARTED = frozenset({Status.SUBMITTED})


class InvoiceState(StrEnum):
    ISSUED = "issued"  # outstanding
    PAID = "paid"
    REFUNDED = "refunded"
    CANCELLED = "cancelled"  # withdrawn before it was paid


def fee_on(definition, day):
    """The fee in tiyin of a catalogue service on `day` (a Tashkent date): the amount from the last
    change of the base calculation amount on or before it; None for a free service. Raises 422
    when the catalogue knows no amount for that day."""
    fee = definition.get("fee") or {}
    if fee.get("free", True):
        return None
    in_force = [entry for entry in definition.get("fee_amounts") or [] if entry["effective_from"] <= day.isoformat()]
    if not in_force:
        raise ServiceNotAvailable(f"no fee of service {definition['code']!r} is in force on {day.isoformat()}",
                                  fields={"service_code": ["no base calculation amount in force"]})
    return int(in_force[-1]["amount_tiyin"])


def invoiced_at_filing(definition):
    """Whether filing an application for this service issues an invoice it waits for (the centre's
    own office services are sold at the desk instead)."""
    fee = definition.get("fee") or {}
    return not fee.get("free", True) and fee.get("collection", "invoice") == "invoice"


def invoice_number(region_number, tracking):
    """Digits only, as payment terminals and providers take them: the region's number, the year and
    the sequence of the application's tracking number (one invoice per application): JI-2026-000123
    -> 042026000123."""
    _, year, sequence = tracking.split("-")
    return f"{region_number:02d}{year}{sequence}"


# The legal clock. The catalogue says per service whether returning an application for correction
# stops it (`stops_on_return`), by how many working days an officer may extend it at most
# (`extension_working_days`, 0: never) and how many times (`max_extensions`).
CLOCK_DEFAULTS = {"stops_on_return": True, "extension_working_days": 0, "max_extensions": 1}
PAUSED, RESUMED, EXTENDED, CLOSURE, STARTED = "paused", "resumed", "extended", "closure", "started"


@dataclass(frozen=True)
class ClockRules:
    stops_on_return: bool = True
    extension_working_days: int = 0
    max_extensions: int = 1

    @classmethod
    def of(cls, definition: dict | None) -> "ClockRules":
        """The rules of a catalogue service (its `clock`; the defaults for a copy made before it had one)."""
        return cls(**{**CLOCK_DEFAULTS, **((definition or {}).get("clock") or {})})


class ExtensionRefused(Exception):
    """An extension the catalogue's rules or the application's state do not allow; `field` names what."""

    def __init__(self, field, message):
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class LegalClock:
    """An application's deadline in working days, counted over Uzbekistan's calendar and its centre's
    closure days (`closed`).

    The clock runs from `started_on` (the filing day, or the day it was resumed; that day itself does
    not count) to `due_date`. Paused on `paused_on`, it keeps the working days that were left
    (negative when it was already overdue) and gives them again from the day it resumes.
    """

    due_date: date
    started_on: date
    paused_on: date | None = None
    working_days_left: int | None = None
    extensions: int = 0
    closed: Collection[date] = NO_CLOSURES

    @classmethod
    def start(cls, filed_on: date, working_days: int, closed: Collection[date] = NO_CLOSURES) -> "LegalClock":
        return cls(add_working_days(filed_on, working_days, closed), filed_on, closed=closed)

    @property
    def paused(self) -> bool:
        return self.paused_on is not None

    def pause(self, today: date) -> "LegalClock":
        """Stopped today (a day the agency had, so it counts as used); no change when already stopped."""
        if self.paused:
            return self
        left = working_days_between(today, self.due_date, self.closed)
        return replace(self, paused_on=today, working_days_left=left)

    def resume(self, today: date) -> "LegalClock":
        """Running again from today with the working days that were left; no change when running."""
        if not self.paused:
            return self
        return replace(self, due_date=add_working_days(today, self.working_days_left, self.closed), started_on=today,
                       paused_on=None, working_days_left=None)

    def extend(self, working_days: int, rules: ClockRules) -> "LegalClock":
        """`working_days` more, within the service's rules; ExtensionRefused naming the field otherwise."""
        if rules.extension_working_days <= 0:
            raise ExtensionRefused("working_days", "this service's deadline cannot be extended")
        if not 1 <= working_days <= rules.extension_working_days:
            raise ExtensionRefused("working_days", f"between 1 and {rules.extension_working_days} working days for this service")
        if self.extensions >= rules.max_extensions:
            raise ExtensionRefused("extensions", f"at most {rules.max_extensions} extension(s) for this service, "
                                                 f"{self.extensions} made")
        left = None if self.working_days_left is None else self.working_days_left + working_days
        return replace(self, due_date=add_working_days(self.due_date, working_days, self.closed),
                       working_days_left=left, extensions=self.extensions + 1)

    def close(self, day: date) -> "LegalClock":
        """The centre declared `day` closed: a working day the clock had counted is given back."""
        counted = is_working_day(day, self.closed) and self.started_on < day
        closed = frozenset(self.closed) | {day}
        if self.paused:
            if not (counted and day <= self.paused_on):
                return replace(self, closed=closed)
            moved = self.due_date if day > self.due_date else add_working_days(self.due_date, 1, closed)
            return replace(self, closed=closed, due_date=moved, working_days_left=self.working_days_left + 1)
        if not (counted and day <= self.due_date):
            return replace(self, closed=closed)
        return replace(self, closed=closed, due_date=add_working_days(self.due_date, 1, closed))


def tracking_number(prefix, year, sequence):
    """`JI-2026-000123`: region prefix, year of submission, the region's sequence in that year."""
    return f"{prefix}-{year:04d}-{sequence:06d}"


TRACKING_NUMBER = re.compile(r"^[A-Z]{2}-\d{4}-\d{6,}$")


def missing_documents(required, presented):
    """Codes of required documents not presented, in the catalogue's order."""
    presented = set(presented)
    return [document["code"] for document in required if document["code"] not in presented]


def unknown_documents(required, presented):
    known = {document["code"] for document in required}
    return sorted(set(presented) - known)


def validate_attributes(definitions, values):
    """Check attribute values against the service's definitions.

    Returns (clean values, errors by attribute code). Unknown codes and missing required ones
    are errors; values are checked against their datatype and allowed keys.
    """
    by_code = {definition["code"]: definition for definition in definitions if definition.get("variable", True)}
    errors = {}
    clean = {}
    for code in sorted(set(values) - set(by_code)):
        errors[code] = ["unknown attribute for this service"]
    for code, definition in by_code.items():
        if code not in values or values[code] in (None, "", []):
            if definition.get("required"):
                errors[code] = ["required"]
            continue
        value, problem = _check_value(definition, values[code])
        if problem:
            errors[code] = [problem]
        else:
            clean[code] = value
    return clean, errors


def _check_value(definition, value):
    datatype = definition["datatype"]
    allowed = [item["key"] for item in definition.get("values", [])]
    if datatype in ("string", "text"):
        limit = 255 if datatype == "string" else 5000
        if not isinstance(value, str):
            return None, "must be a string"
        if len(value) > limit:
            return None, f"at most {limit} characters"
        return value, None
    if datatype == "number":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return None, "must be a number"
        if value != value or value in (float("inf"), float("-inf")):
            return None, "must be a finite number"
        return value, None
    if datatype == "datetime":
        if not isinstance(value, str):
            return None, "must be an ISO 8601 date or date-time"
        try:
            datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None, "must be an ISO 8601 date or date-time"
        return value, None
    if datatype == "singlevaluelist":
        if not isinstance(value, str) or value not in allowed:
            return None, f"must be one of: {', '.join(allowed)}"
        return value, None
    if datatype == "multivaluelist":
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            return None, "must be a list of keys"
        if len(set(value)) != len(value) or not set(value) <= set(allowed):
            return None, f"must be distinct keys among: {', '.join(allowed)}"
        return value, None
    return None, f"unsupported datatype {datatype}"


def check_against_catalogue(region, definition, submission, centre):
    """Everything the catalogue and the region registry say about a submission filed at `centre`;
    returns its clean attributes, or raises 422 naming the fields."""
    code = submission["service_code"]
    if definition is None:
        raise ServiceNotAvailable(f"no service {code!r} in the catalogue", fields={"service_code": ["unknown service"]})
    if definition["state"] != "published":
        raise ServiceNotAvailable(f"service {code!r} is not published", fields={"service_code": [f"service is {definition['state']}"]})
    if region.slug not in definition["regions"]:
        raise ServiceNotAvailable(f"service {code!r} is not offered in {region.slug}",
                                  fields={"service_code": [f"not offered in {region.slug}"]})
    fields = {}
    if region.district(submission["district"]) is None:
        fields["district"] = [f"not a district of {region.slug}"]
    if region.centre(centre) is None:
        fields["centre"] = [f"not an OSS centre of {region.slug}"]
    missing = missing_documents(definition["required_documents"], submission["documents"])
    unknown = unknown_documents(definition["required_documents"], submission["documents"])
    if missing:
        fields["documents"] = [f"missing required document: {code}" for code in missing]
    if unknown:
        fields.setdefault("documents", []).extend(f"not a document of this service: {code}" for code in unknown)
    attributes, attribute_errors = validate_attributes(definition["attributes"], submission["attributes"])
    for attribute, messages in attribute_errors.items():
        fields[f"attributes.{attribute}"] = messages
    if fields:
        raise ApplicationInvalid(f"the application does not fit service {code!r}: {', '.join(sorted(fields))}", fields=fields)
    return attributes


# The status code: the second factor a citizen holds besides the tracking number (printed on the
# receipt, sent with the first notification). Eight symbols of 32 (40 bits; no 0/O, no 1/I), so
# that with the per-address and per-tracking-number limits on wrong guesses, walking the
# sequential tracking numbers learns nothing. Only a keyed digest is stored: the code cannot be
# shown again, only replaced.
CODE_SYMBOLS = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
CODE_LENGTH = 8


def new_status_code():
    """A fresh code, written as the receipt shows it: `ABCD-EFGH`."""
    symbols = "".join(secrets.choice(CODE_SYMBOLS) for _ in range(CODE_LENGTH))
    return f"{symbols[:4]}-{symbols[4:]}"


def status_code_digest(tracking_number, code):
    """What is stored of a code: HMAC-SHA-256 keyed by the tracking number, of the code as typed
    without case, spaces or dashes (so `abcd efgh` is `ABCD-EFGH`)."""
    typed = "".join(character for character in str(code).upper() if character not in " -")
    return hmac.new(tracking_number.encode("utf-8"), typed.encode("utf-8"), hashlib.sha256).hexdigest()
