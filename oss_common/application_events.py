"""The contract of intake's application events (`application.submitted`, `application.status_changed`,
`application.deadline_extended`, `application.due_date_moved`):
one schema, versioned, that intake dumps and every consumer loads, so no consumer declares the body
again or copies the workflow to read it.

Version 2 says where the application stands: `open` (still awaiting a decision: what reports count
as open and the deadline watch follows), `decided` (this status is a decision, approved or rejected)
and `final` (no status follows). Version 1 bodies, still in outboxes and event exports, said none of
it; `load` fills it in from the statuses version 1 knew, a fixed table that is part of that version.
Version 3 adds `version`: the application's own counter, 1 when submitted and one more with every
change (intake raises it under the application's row lock). Read models apply an application's
events by it and never compare `changed_at`, which comes from the clock of whichever intake process
made the change. Older bodies have none (`version` None, see `supersedes`).
Version 4 adds fees: an application of a paid service carries its `invoice` (number, amount in
tiyin, currency, due date, state, where to pay) in every event, and two events join the contract:
`application.paid` (the fee was paid: the application left `awaiting_payment`) and
`application.refunded` (the fee went back), each with the `payment` (amount in tiyin, method,
receipt number, reason). They carry the application's snapshot and `version` like the others, so a
reader of version 3 would read them as any other application event; older bodies have neither field.
Version 5 adds the legal clock: `clock_paused` (returned for correction, its clock stopped: not
overdue whatever `due_date` says), `working_days_left` (while paused), `extensions` (how many so far),
`clock_change` (what this event did to the clock: `paused`, `resumed`, `extended`, `closure`) and
`extended_by` (working days), and two types that change the due date without a status change:
`application.deadline_extended` (an officer's, with `actor` and `reason`) and
`application.due_date_moved` (a closure day of the application's centre, `reason` the closure's).
Older bodies read as a running clock without extensions; older readers ignore the new fields and
the new types (which carry the whole snapshot, as every application event does).
No PINFL and no name: the contact the applicant chose travels in the body, never in a routing key.
"""
from datetime import datetime, timezone

from marshmallow import EXCLUDE, Schema, fields, validate

from oss_common.events import rfc3339

VERSION = 5
SUBMITTED = "application.submitted"
STATUS_CHANGED = "application.status_changed"
PAID = "application.paid"
REFUNDED = "application.refunded"
DEADLINE_EXTENDED = "application.deadline_extended"
DUE_DATE_MOVED = "application.due_date_moved"
TYPES = frozenset({SUBMITTED, STATUS_CHANGED, PAID, REFUNDED, DEADLINE_EXTENDED, DUE_DATE_MOVED})
CLOCK_CHANGES = ("paused", "resumed", "extended", "closure")

# Version 1's statuses by where they stand; later versions say it in the body.
_V1_DECISIONS = frozenset({"approved", "rejected"})
_V1_FINAL = frozenset({"issued", "withdrawn"})


class Instant(fields.AwareDateTime):
    """An instant, sent as RFC 3339 in UTC (`...Z`), read back aware."""

    def __init__(self, **kwargs):
        super().__init__(format="iso", default_timezone=timezone.utc, **kwargs)

    def _serialize(self, value, attr, obj, **kwargs):
        return None if value is None else rfc3339(value)


class ContactSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    phone = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=32))
    email = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=254))


class InvoiceSchema(Schema):
    """A paid service's fee as invoiced at filing. Amounts are whole tiyin (strict integers)."""

    class Meta:
        unknown = EXCLUDE

    invoice_number = fields.String(required=True, validate=validate.Length(min=1, max=32))
    amount_tiyin = fields.Integer(required=True, strict=True, validate=validate.Range(min=0))
    currency = fields.String(required=True, validate=validate.Length(equal=3))
    due_date = fields.Date(required=True)
    state = fields.String(required=True, validate=validate.OneOf(("issued", "paid", "refunded", "cancelled")))
    issued_at = Instant(required=True)
    pay_url = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=500))


class PaymentSchema(Schema):
    """One movement of money: a payment (application.paid) or a refund (application.refunded)."""

    class Meta:
        unknown = EXCLUDE

    amount_tiyin = fields.Integer(required=True, strict=True, validate=validate.Range(min=0))
    method = fields.String(required=True, validate=validate.OneOf(("cash", "card", "payme")))
    receipt_number = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=64))
    reason = fields.String(load_default=None, allow_none=True)
    at = Instant(required=True)


class ApplicationEventSchema(Schema):
    """An application event's body. Fields added by a later version are ignored by older readers."""

    class Meta:
        unknown = EXCLUDE

    tracking_number = fields.String(required=True, validate=validate.Length(min=1, max=32))
    service_code = fields.String(required=True, validate=validate.Length(min=1, max=64))
    service_version = fields.Integer(load_default=None, allow_none=True)
    service_name = fields.Dict(keys=fields.String(), values=fields.String(), load_default=None, allow_none=True)
    agency = fields.String(required=True, validate=validate.Length(min=1, max=64))
    district = fields.String(required=True, validate=validate.Length(min=1, max=16))
    centre = fields.String(required=True, validate=validate.Length(min=1, max=64))
    status = fields.String(required=True, validate=validate.Length(min=1, max=32))
    version = fields.Integer(load_default=None, allow_none=True, strict=True, validate=validate.Range(min=1))
    previous_status = fields.String(load_default=None, allow_none=True)
    reason = fields.String(load_default=None, allow_none=True)
    actor = fields.String(load_default=None, allow_none=True)
    open = fields.Boolean(required=True)
    decided = fields.Boolean(required=True)
    final = fields.Boolean(required=True)
    submitted_at = Instant(required=True)
    changed_at = Instant(required=True)
    due_date = fields.Date(required=True)
    decided_on_time = fields.Boolean(load_default=None, allow_none=True)
    clock_paused = fields.Boolean(load_default=False)
    working_days_left = fields.Integer(load_default=None, allow_none=True)
    extensions = fields.Integer(load_default=0, validate=validate.Range(min=0))
    clock_change = fields.String(load_default=None, allow_none=True, validate=validate.OneOf(CLOCK_CHANGES))
    extended_by = fields.Integer(load_default=None, allow_none=True, validate=validate.Range(min=1))
    language = fields.String(load_default=None, allow_none=True)
    channel = fields.String(required=True, validate=validate.Length(min=1, max=8))
    contact = fields.Nested(ContactSchema, load_default=dict)
    # Only in application.submitted, for the first message; event exports leave it out.
    status_code = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=32))
    # Version 4: a paid service's invoice (every event), the payment or refund (application.paid, .refunded).
    invoice = fields.Nested(InvoiceSchema, load_default=None, allow_none=True)
    payment = fields.Nested(PaymentSchema, load_default=None, allow_none=True)


APPLICATION_EVENT = ApplicationEventSchema()


def dump(data: dict) -> dict:
    """The body of an application event of this version, from the producer's values."""
    return APPLICATION_EVENT.dump(data)


def supersedes(fact: dict, version: int, changed_at: datetime) -> bool:
    """Whether the event `fact` is newer than a stored state of (`version`, `changed_at`), where a
    state built only from version-2 bodies keeps version 0: by `version` when either side has one;
    between two version-2 bodies (an old export replayed), by `changed_at` as version 2 ordered them."""
    if fact["version"] is None and not version:
        return fact["changed_at"] > changed_at
    return (fact["version"] or 0) > version


def stored_version(fact: dict) -> int:
    """The version a read model keeps for the state `fact` describes (0: a version-2 body had none)."""
    return fact["version"] or 0


def load(envelope: dict) -> dict:
    """The body of a received application event, of any version, as this version reads it;
    marshmallow.ValidationError when it is malformed."""
    data = envelope["data"]
    if envelope.get("schema_version", 1) < 2 and isinstance(data, dict) and isinstance(data.get("status"), str):
        status = data["status"]
        data = {"open": status not in _V1_DECISIONS | _V1_FINAL, "decided": status in _V1_DECISIONS,
                "final": status in _V1_FINAL, **data}
    return APPLICATION_EVENT.load(data)
