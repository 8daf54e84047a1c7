"""Builds the read model from application events, idempotently and in any order, and rebuilds it; one
function per use case of `(unit of work, command)`, no SQL, no nameko.

Every application event carries the application's whole (non-personal) snapshot, so the first
event seen for an application creates its row whatever its type; later ones move its status only
when newer (a higher `version`: intake raises it with every change, so no clock is compared), and
a decision is counted once, whenever its event arrives.
"""
import time

from oss_common import application_events
from oss_common.calendar import local_date
from oss_common.failures import is_transient, retry_delay
from services.reporting import commands
from services.reporting.commands import RecordEvent
from services.reporting.domain import COUNT_DIMENSIONS, DECISION_DIMENSIONS, month_of
from services.reporting.unit_of_work import ReportingUnitOfWork

PAGE_ATTEMPTS = 8
_DIMENSION_COLUMN = {"service": "service_code", "district": "district", "centre": "centre", "channel": "channel",
                     "status": "status"}


def record_event(uow: ReportingUnitOfWork, command: RecordEvent) -> bool:
    """The consumer's use case: apply one application event; False when it was applied before."""
    with uow:
        applied = apply_event(uow, command)
        uow.commit()
    return applied


def apply_event(uow: ReportingUnitOfWork, command: RecordEvent) -> bool:
    """Apply one application event in the unit of work's open block; False when it was applied before."""
    fact = command.fact
    if not uow.read_model.first_delivery(command.event_id, command.event_type):
        return False
    if fact.get("invoice") is not None:
        _record_fee(uow, command.event_type, fact)
    values = _snapshot(fact)
    created = uow.read_model.claim(values)
    if created:
        # A new application: its row is the event's snapshot as inserted, counted from that.
        uow.read_model.count(values["submitted_day"],
                             [(dimension, _value(values, dimension), 1) for dimension in COUNT_DIMENSIONS])
        if not fact["decided"]:
            return True  # not yet decided (the usual first event): nothing more, no need to read the row back
    state = uow.read_model.locked(fact["tracking_number"])
    if not created and application_events.supersedes(fact, state.version, state.changed_at):
        if fact["status"] != state.status:
            uow.read_model.count(state.submitted_day, [("status", state.status, -1), ("status", fact["status"], 1)])
            state.status = fact["status"]
            state.is_open = fact["open"]
        # The net time: the clock paused, resumed, extended or moved by a closure day.
        state.due_date = fact["due_date"]
        state.clock_paused = fact["clock_paused"]
        state.changed_at = fact["changed_at"]
        state.version = application_events.stored_version(fact)
    if fact["decided"] and state.decided_at is None:
        _decide(uow, state, fact)
    uow.read_model.flush()
    return True


def rebuild(uow: ReportingUnitOfWork, export_page, page_size: int = 1000) -> dict:
    """Replay a region's whole event history into an emptied read model, a page per commit.

    `export_page(after_id, limit)` is intake's `export_events`. Events the live consumer applies
    meanwhile are recorded like any other, so each counts exactly once either way.
    Returns how many events were read and how many applied.
    """
    with uow:
        uow.read_model.reset()
        uow.commit()
    after_id, read, applied = 0, 0, 0
    while True:
        page = export_page(after_id, page_size)
        read += len(page["items"])
        applied += _apply_page(uow, page["items"])
        after_id = page["next_after_id"]
        if not page["more"]:
            return {"events_read": read, "events_applied": applied}


def _apply_page(uow, envelopes, attempts=PAGE_ATTEMPTS):
    """Apply one page of events in one commit, trying the page again when it meets a transient
    failure: the live consumer applies the same region's events meanwhile, and on PostgreSQL the
    two can deadlock (the page holds bucket rows while claiming an event the consumer has claimed
    and not yet committed). The failed page was rolled back whole, so trying it again counts each
    event once."""
    attempt = 0
    while True:
        attempt += 1
        try:
            with uow:
                applied = sum(apply_event(uow, command) for command in map(commands.record_event, envelopes) if command)
                uow.commit()
            return applied
        except Exception as exc:
            if attempt == attempts or not is_transient(exc):
                raise
            time.sleep(retry_delay(attempt, base=0.2, ceiling=5.0))


def _record_fee(uow, event_type, fact):
    """A paid application's invoice, and the money an `application.paid` or `.refunded` event moved."""
    invoice = fact["invoice"]
    uow.read_model.keep_fee({
        "invoice_number": invoice["invoice_number"], "tracking_number": fact["tracking_number"],
        "service_code": fact["service_code"], "centre": fact["centre"],
        "month": month_of(local_date(invoice["issued_at"])), "invoiced_tiyin": invoice["amount_tiyin"],
        "paid_tiyin": 0, "refunded_tiyin": 0, "state": invoice["state"], "version": application_events.stored_version(fact)})
    payment = fact.get("payment")
    if payment is not None and event_type == application_events.PAID:
        uow.read_model.add_money(invoice["invoice_number"], paid=payment["amount_tiyin"])
    elif payment is not None and event_type == application_events.REFUNDED:
        uow.read_model.add_money(invoice["invoice_number"], refunded=payment["amount_tiyin"])


def _snapshot(fact):
    """The application's row as this event describes it."""
    return {
        "tracking_number": fact["tracking_number"],
        "service_code": fact["service_code"],
        "agency": fact["agency"],
        "district": fact["district"],
        "centre": fact["centre"],
        "channel": fact["channel"],
        "status": fact["status"],
        "is_open": fact["open"],
        "submitted_at": fact["submitted_at"],
        "submitted_day": local_date(fact["submitted_at"]),
        "due_date": fact["due_date"],
        "clock_paused": fact["clock_paused"],
        "changed_at": fact["changed_at"],
        "version": application_events.stored_version(fact),
    }


def _decide(uow, state, fact):
    decided_at = fact["changed_at"]
    state.decision = fact["status"]
    state.decided_at = decided_at
    state.decided_day = local_date(decided_at)
    state.decided_on_time = fact["decided_on_time"] if fact["decided_on_time"] is not None else state.decided_day <= state.due_date
    state.processing_seconds = (decided_at - state.submitted_at).total_seconds()
    deltas = {
        "approved": int(state.decision == "approved"),
        "rejected": int(state.decision == "rejected"),
        "on_time": int(state.decided_on_time),
        "late": int(not state.decided_on_time),
    }
    row = {column: getattr(state, column) for column in _DIMENSION_COLUMN.values()}
    uow.read_model.count_decision(state.decided_day, {dimension: _value(row, dimension) for dimension in DECISION_DIMENSIONS},
                                  deltas)


def _value(row, dimension):
    """The bucket of `row` (the application's columns) in `dimension`."""
    return "" if dimension == "all" else row[_DIMENSION_COLUMN[dimension]]
