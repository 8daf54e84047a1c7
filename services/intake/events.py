"""The events intake publishes, dumped by their contract (oss_common.application_events), which every
consumer loads."""
from oss_common import application_events
from oss_common.calendar import local_date
from services.intake.domain import AWAITING_DECISION, DECISIONS, FINAL

SUBMITTED = application_events.SUBMITTED
STATUS_CHANGED = application_events.STATUS_CHANGED
PAID = application_events.PAID
REFUNDED = application_events.REFUNDED
DEADLINE_EXTENDED = application_events.DEADLINE_EXTENDED
DUE_DATE_MOVED = application_events.DUE_DATE_MOVED
VERSION = application_events.VERSION


def event_data(application, definition, actor: str, previous_status: str | None = None, reason: str | None = None,
               status_code: str | None = None, invoice: dict | None = None, payment: dict | None = None,
               clock_change: str | None = None, extended_by: int | None = None) -> dict:
    """What others need to react to an application event, where it stands included: no PINFL, no name.

    The contact the applicant chose travels in the body (never in a routing key) so that
    notifications need not call back; so does the citizen's status code, in `application.submitted`,
    for the first message. A paid service's `invoice` (as `invoice_data` gives it) travels in
    every event; `payment` in application.paid and application.refunded. `clock_change` says what the
    event did to the legal clock, if anything.
    """
    data = {
        "tracking_number": application.tracking_number,
        "service_code": application.service_code,
        "service_version": application.service_version,
        "agency": application.agency,
        "district": application.district,
        "centre": application.centre,
        "status": application.status,
        "version": application.version,
        "previous_status": previous_status,
        "reason": reason,
        "actor": actor,
        "open": application.status in AWAITING_DECISION,
        "decided": application.status in DECISIONS,
        "final": application.status in FINAL,
        "submitted_at": application.submitted_at,
        "changed_at": application.updated_at,
        "due_date": application.due_date,
        "clock_paused": application.clock_paused_on is not None,
        "working_days_left": application.working_days_left,
        "extensions": application.extensions,
        "clock_change": clock_change,
        "extended_by": extended_by,
        "language": application.language,
        "channel": application.channel,
        "contact": {"phone": application.applicant_phone, "email": application.applicant_email},
    }
    if definition is not None:
        data["service_name"] = definition["names"]
    if status_code is not None:
        data["status_code"] = status_code
    if invoice is not None:
        data["invoice"] = invoice
    if payment is not None:
        data["payment"] = payment
    if application.decided_at is not None and application.status in DECISIONS:
        data["decided_on_time"] = local_date(application.decided_at) <= application.due_date
    return application_events.dump(data)


def invoice_data(invoice) -> dict:
    """An invoice as events and views show it (`pay_url`, when set, is where to pay it online)."""
    return {"invoice_number": invoice.invoice_number, "amount_tiyin": invoice.amount_tiyin, "currency": invoice.currency,
            "due_date": invoice.due_date, "state": invoice.state, "issued_at": invoice.issued_at,
            "pay_url": getattr(invoice, "pay_url", None)}
