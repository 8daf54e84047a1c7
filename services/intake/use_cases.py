"""What intake does, one function per use case of `(unit of work, command)`: no SQL, no bus, no HTTP.
Every face (RPC, the HTTP API, Open311, the desk) calls these; over 300 lines because filing, the workflow
and the fee (invoice, payment, refund) are each a handful of short use cases of one application."""
import hashlib
import json
import secrets

from datetime import date

from oss_common.auth import REGION_ADMIN, Forbidden
from oss_common.calendar import add_working_days, local_date
from oss_common.events import utc_now
from services.intake import events
from services.intake.commands import (
    DeclareClosure, ExpireUnpaidInvoices, ExtendDeadline, PayAtDesk, RefundFee, ReissueStatusCode, SellOfficeService,
    SubmitApplication, Transition,
)
from services.intake.domain import (
    AWAITING_DECISION, CLOSURE, CURRENCY, DECISIONS, EXTENDED, INVOICE_DUE_WORKING_DAYS, PAUSED, RESUMED, STARTED,
    WORK_NOT_STARTED, ApplicationWorkflow, ClockRules, ExtensionRefused, InvoiceState, LegalClock, ReasonRequired,
    Status, TransitionNotAllowed, check_against_catalogue, fee_on, invoice_number, invoiced_at_filing, new_status_code,
    status_code_digest, tracking_number,
)
from services.intake.events import invoice_data
from services.intake.exceptions import (
    ApplicationInvalid, ClosureExists, ExtensionInvalid, ExtensionNotAllowed, IdempotencyKeyReused, InvoiceExpired,
    InvoicePaid,    NoInvoice, RefundRefused, ServiceNotAvailable, TransitionRejected, UnknownCentre, application_not_found,
)
from services.intake.metrics import count_decision, count_fee, count_submission
from services.intake.repository import IdempotencyKeyTaken
from services.intake.scope import filing_centre, require_centre, require_scope
from services.intake.unit_of_work import IntakeUnitOfWork


def submit(uow: IntakeUnitOfWork, command: SubmitApplication):
    """File an application; returns (application, created). Nothing is written when it fails; the
    same Idempotency-Key with the same body gives the application it first created. A created
    application carries its citizen's `status_code`, which nothing can show again."""
    submission, key = command.submission, command.idempotency_key
    fingerprint = request_fingerprint(submission)
    with uow:
        centre = filing_centre(uow.region, submission["centre"], command.caller)
        if command.caller is not None and uow.region.centre(centre) is not None:  # an unknown one is a 422 below
            require_centre(command.caller, centre)
        if key and uow.applications.key_taken(key):
            return _replay(uow.applications.by_idempotency_key(key), fingerprint), False
        definition = uow.catalogue.get(submission["service_code"])
        attributes = check_against_catalogue(uow.region, definition, submission, centre)
        now = command.submitted_at or utc_now()
        actor = command.actor or f"centre:{centre}"
        year = local_date(now).year
        number = tracking_number(uow.region.prefix, year, uow.tracking_numbers.take(year))
        status_code = new_status_code()
        invoice = _invoice_values(uow, definition, number, centre, now) if invoiced_at_filing(definition) else None
        status = Status.AWAITING_PAYMENT if invoice else Status.SUBMITTED
        filed_on = local_date(now)
        # A paid service's clock starts again when it is paid (mark_paid); until then this is the date it would have.
        clock = LegalClock.start(filed_on, definition["deadline_working_days"], uow.closures.after(centre, filed_on))
        application = uow.applications.add(
            {**_application_values(submission, definition, centre, attributes, number, key, fingerprint, now, clock),
             "status": status.value, "status_code_digest": status_code_digest(number, status_code)},
            {"from_status": None, "to_status": status.value, "actor": actor, "reason": None, "occurred_at": now,
             "clock": STARTED, "working_days": definition["deadline_working_days"], "due_date": clock.due_date},
            invoice,
        )
        # The code travels to notifications, which sends it with the first message (in the body, as the contact does).
        uow.emit(events.SUBMITTED, events.event_data(application, definition, actor=actor, status_code=status_code,
                                                     invoice=_priced(uow, application.invoice)), now, events.VERSION)
        try:
            uow.commit()
        except IdempotencyKeyTaken:
            return _replay(uow.applications.by_idempotency_key(key), fingerprint), False
    count_submission(uow.region.slug, application)
    if application.invoice is not None:
        count_fee(uow.region.slug, application.service_code, "invoiced", application.invoice.amount_tiyin)
    application.status_code = status_code
    return application, True


def transition(uow: IntakeUnitOfWork, command: Transition):
    """Move an application on (409 when the workflow does not allow it, 422 without a reason it needs).
    Returning it for correction stops its clock when its service says so; resubmission starts it again."""
    with uow:
        application = _in_scope(uow, command.tracking_number, command.caller)
        workflow = ApplicationWorkflow(application.status)
        previous = _move(workflow, command.to, command.reason)
        now = command.at or utc_now()
        definition = uow.catalogue.get(application.service_code)
        clock = _clock_of(uow, application)
        clock_change = None
        if workflow.status == Status.RETURNED_FOR_CORRECTION and ClockRules.of(definition).stops_on_return:
            clock, clock_change = clock.pause(local_date(now)), PAUSED
        elif workflow.status == Status.RESUBMITTED and clock.paused:
            clock, clock_change = clock.resume(local_date(now)), RESUMED
        _keep_clock(application, clock)
        application.status = workflow.status.value
        application.updated_at = now
        application.version += 1  # under the row's lock: the order of this application's events
        if workflow.status in DECISIONS:
            application.decided_at = now
        uow.applications.append_history(application, from_status=previous.value, to_status=workflow.status.value,
                                        actor=command.actor, reason=command.reason, occurred_at=now, clock=clock_change,
                                        working_days=clock.working_days_left if clock_change == PAUSED else None,
                                        due_date=application.due_date)
        invoice = uow.invoices.of_application(application.tracking_number, for_update=True)
        refund = None
        if invoice is not None and workflow.status is Status.WITHDRAWN:
            if invoice.state == InvoiceState.ISSUED:
                invoice.state = InvoiceState.CANCELLED.value  # withdrawn before it was paid: nothing is owed
            elif invoice.state == InvoiceState.PAID and previous in WORK_NOT_STARTED:
                refund = invoice
        data = events.event_data(application, definition, command.actor, previous.value, command.reason,
                                 invoice=_priced(uow, invoice), clock_change=clock_change)
        uow.emit(events.STATUS_CHANGED, data, now, events.VERSION)
        if refund is not None:
            _refund(uow, application, refund, definition, f"withdrawn before work started: {command.reason}",
                    command.actor, now)
        uow.commit()
    count_decision(uow.region.slug, application)
    if refund is not None:
        count_fee(uow.region.slug, application.service_code, "refunded", refund.amount_tiyin)
    return application


def extend_deadline(uow: IntakeUnitOfWork, command: ExtendDeadline):
    """Give an open application more working days, within its service's limits (422 naming
    `working_days` or `reason`, 409 naming `extensions` or `status`); it is in the history and an
    `application.deadline_extended` event with who and why."""
    if not (command.reason or "").strip():
        raise ApplicationInvalid("an extension needs a reason", fields={"reason": ["required"]})
    with uow:
        application = _in_scope(uow, command.tracking_number, command.caller)
        if application.status not in AWAITING_DECISION:
            raise ExtensionNotAllowed(f"an application that is {application.status} has no deadline to extend",
                                      fields={"status": [f"{application.status}: not awaiting a decision"]})
        definition = uow.catalogue.get(application.service_code)
        try:
            clock = _clock_of(uow, application).extend(command.working_days, ClockRules.of(definition))
        except ExtensionRefused as exc:
            refusal = ExtensionInvalid if exc.field == "working_days" else ExtensionNotAllowed
            raise refusal(str(exc), fields={exc.field: [str(exc)]}) from exc
        now = command.at or utc_now()
        _keep_clock(application, clock)
        application.updated_at = now
        application.version += 1
        uow.applications.append_history(application, from_status=application.status, to_status=application.status,
                                        actor=command.actor, reason=command.reason, occurred_at=now, clock=EXTENDED,
                                        working_days=command.working_days, due_date=application.due_date)
        data = events.event_data(application, definition, command.actor, application.status, command.reason,
                                 invoice=_priced(uow, uow.invoices.of_application(application.tracking_number)),
                                 clock_change=EXTENDED, extended_by=command.working_days)
        uow.emit(events.DEADLINE_EXTENDED, data, now, events.VERSION)
        uow.commit()
    return application


def declare_closure(uow: IntakeUnitOfWork, command: DeclareClosure):
    """Record that a centre could not work on a day (a region administrator's, or its head's, word) and
    give its open applications' clocks that day back (each moved one is in its history and an
    `application.due_date_moved` event). Returns (the closure, how many applications moved)."""
    centre = command.centre
    if uow.region.centre(centre) is None:
        raise UnknownCentre(f"no OSS centre {centre!r} in {uow.region.slug}", fields={"centre": [f"not an OSS centre of {uow.region.slug}"]})
    if command.caller is not None and command.caller.role != REGION_ADMIN and centre not in command.caller.centres:
        raise Forbidden(f"only a region administrator or the head of centre {centre} declares its closures",
                        fields={"centre": [f"not one of the caller's centres: {', '.join(command.caller.centres)}"]})
    now = command.at or utc_now()
    with uow:
        if uow.closures.get(centre, command.day) is not None:
            raise ClosureExists(f"{centre} is already closed on {command.day.isoformat()}", fields={"day": ["already declared"]})
        closed = uow.closures.after(centre, date.min)
        closure = uow.closures.add(centre=centre, day=command.day, reason=command.reason, declared_by=command.actor,
                                   declared_at=now)
        moved = 0
        for application in uow.applications.open_at(centre, command.day):
            before = _clock_of(uow, application, closed)
            clock = before.close(command.day)
            if (clock.due_date, clock.working_days_left) == (before.due_date, before.working_days_left):
                continue
            moved += 1
            _keep_clock(application, clock)
            application.updated_at = now
            application.version += 1
            uow.applications.append_history(application, from_status=application.status, to_status=application.status,
                                            actor=command.actor, reason=command.reason, occurred_at=now, clock=CLOSURE,
                                            working_days=None, due_date=application.due_date)
            data = events.event_data(application, uow.catalogue.get(application.service_code), command.actor,
                                     application.status, command.reason, clock_change=CLOSURE,
                                     invoice=_priced(uow, uow.invoices.of_application(application.tracking_number)))
            uow.emit(events.DUE_DATE_MOVED, data, now, events.VERSION)
        uow.commit()
    return closure, moved


def _clock_of(uow, application, closed=None) -> LegalClock:
    """The application's clock over its centre's closure days (those given, else read)."""
    started_on = application.clock_started_on or local_date(application.submitted_at)
    if closed is None:
        closed = uow.closures.after(application.centre, started_on)
    return LegalClock(due_date=application.due_date, started_on=started_on, paused_on=application.clock_paused_on,
                      working_days_left=application.working_days_left, extensions=application.extensions, closed=closed)


def _keep_clock(application, clock: LegalClock) -> None:
    application.due_date = clock.due_date
    application.clock_started_on = clock.started_on
    application.clock_paused_on = clock.paused_on
    application.working_days_left = clock.working_days_left
    application.extensions = clock.extensions


def pay_at_desk(uow: IntakeUnitOfWork, command: PayAtDesk):
    """The desk records an application's fee paid in cash or by card (its receipt number); returns
    the application and its invoice. An invoice is paid once (409), for its exact amount (422)."""
    with uow:
        application = _in_scope(uow, command.tracking_number, command.caller)
        invoice = _invoice_of(uow, application)
        if invoice.amount_tiyin != command.amount_tiyin:
            raise ApplicationInvalid(f"the invoice is for {invoice.amount_tiyin} tiyin",
                                     fields={"amount_tiyin": [f"must be {invoice.amount_tiyin}"]})
        now = command.at or utc_now()
        if invoice.state == InvoiceState.ISSUED and is_expired(invoice, now):
            raise InvoiceExpired(f"invoice {invoice.invoice_number} was due by {invoice.due_date.isoformat()}; it is not paid now",
                                 fields={"invoice_number": [f"expired after {invoice.due_date.isoformat()}"]})
        if invoice.state == InvoiceState.ISSUED and uow.invoices.receipt_taken(invoice.centre, command.receipt_number):
            raise ApplicationInvalid("this receipt number was already recorded at the centre",
                                     fields={"receipt_number": ["already recorded at this centre"]})
        mark_paid(uow, application, invoice, command.method, command.receipt_number, command.actor, now)
        uow.commit()
    count_fee(uow.region.slug, application.service_code, "paid", invoice.amount_tiyin)
    return application, invoice


def refund_fee(uow: IntakeUnitOfWork, command: RefundFee):
    """Refund the fee of a refusal the agency got wrong (the application was rejected); returns the
    application and its invoice. 409 when there is nothing paid to refund or it was not refused."""
    with uow:
        application = _in_scope(uow, command.tracking_number, command.caller)
        invoice = _invoice_of(uow, application)
        refused = any(change.to_status == Status.REJECTED for change in application.history)
        if not refused:
            raise RefundRefused("only a refused application's fee is refunded this way (a withdrawal refunds its own)",
                                fields={"tracking_number": [f"not refused (status {application.status})"]})
        if invoice.state != InvoiceState.PAID:
            raise RefundRefused(f"the invoice is {invoice.state}, not paid", fields={"tracking_number": [f"invoice {invoice.state}"]})
        if not (command.reason or "").strip():
            raise ApplicationInvalid("a reason is required for a refund", fields={"reason": ["required"]})
        definition = uow.catalogue.get(application.service_code)
        _refund(uow, application, invoice, definition, command.reason, command.actor, command.at or utc_now())
        uow.commit()
    count_fee(uow.region.slug, application.service_code, "refunded", invoice.amount_tiyin)
    return application, invoice


def sell_office_service(uow: IntakeUnitOfWork, command: SellOfficeService):
    """Sell one of the centre's office services (photocopying, printing, computer use): the fee in
    force today times the quantity, a receipt; no applicant."""
    with uow:
        centre = filing_centre(uow.region, command.centre, command.caller)
        if uow.region.centre(centre) is None:
            raise ApplicationInvalid(f"not an OSS centre of {uow.region.slug}", fields={"centre": [f"not an OSS centre of {uow.region.slug}"]})
        if command.caller is not None:
            require_centre(command.caller, centre)
        definition = uow.catalogue.get(command.service_code)
        if (definition is None or definition["state"] != "published" or uow.region.slug not in definition["regions"]
                or (definition.get("fee") or {}).get("collection") != "desk"):
            raise ServiceNotAvailable(f"{command.service_code!r} is not an office service sold at this region's desks",
                                      fields={"service_code": ["not an office service sold at the desk"]})
        now = command.at or utc_now()
        day = local_date(now)
        unit = fee_on(definition, day)
        sale = uow.office_sales.add(
            receipt_number=f"{uow.region.prefix}-{day:%Y%m%d}-{secrets.token_hex(4).upper()}", centre=centre,
            service_code=command.service_code, quantity=command.quantity, unit_tiyin=unit,
            amount_tiyin=unit * command.quantity, method=command.method, sold_at=now, day=day, actor=command.actor)
        uow.commit()
    count_fee(uow.region.slug, sale.service_code, "sold", sale.amount_tiyin)
    return sale


EXPIRY_ACTOR = "intake:invoice-expiry"


def is_expired(invoice, now) -> bool:
    """Whether an outstanding invoice is past its due date (a Tashkent date, the last day to pay)."""
    return invoice.due_date < local_date(now)


def expire_unpaid_invoices(uow: IntakeUnitOfWork, command: ExpireUnpaidInvoices) -> list[str]:
    """Invoices still unpaid after their due date are cancelled and their applications withdrawn
    (`application.status_changed` to withdrawn with the reason, the invoice `cancelled` in it: the
    citizen is told). An invoice Payme is paying right now (a created transaction) waits for that
    transaction to end. Returns the tracking numbers withdrawn."""
    now = command.at or utc_now()
    withdrawn = []
    with uow:
        for invoice in uow.invoices.unpaid_before(local_date(now), command.batch):
            if uow.invoices.active_transaction(invoice.invoice_number) is not None:
                continue
            application = uow.applications.get(invoice.tracking_number, for_update=True)
            if application is None or application.status != Status.AWAITING_PAYMENT:
                continue
            reason = f"the fee was not paid by {invoice.due_date.strftime('%d.%m.%Y')}: invoice {invoice.invoice_number} cancelled"
            workflow = ApplicationWorkflow(application.status)
            previous = workflow.transition(Status.WITHDRAWN, reason)
            invoice.state = InvoiceState.CANCELLED.value
            application.status = workflow.status.value
            application.updated_at = now
            application.version += 1
            uow.applications.append_history(application, from_status=previous.value, to_status=workflow.status.value,
                                            actor=EXPIRY_ACTOR, reason=reason, occurred_at=now)
            definition = uow.catalogue.get(application.service_code)
            uow.emit(events.STATUS_CHANGED, events.event_data(application, definition, EXPIRY_ACTOR, previous.value, reason,
                                                              invoice=_priced(uow, invoice)), now, events.VERSION)
            withdrawn.append(application.tracking_number)
        uow.commit()
    return withdrawn


def mark_paid(uow, application, invoice, method, receipt_number, actor, now):
    """The invoice is paid (by the desk or the payment provider): the application leaves
    `awaiting_payment` and its legal clock starts today. 409 when the invoice is not outstanding."""
    if invoice.state != InvoiceState.ISSUED:
        raise InvoicePaid(f"invoice {invoice.invoice_number} is {invoice.state}; it is not paid again",
                          fields={"invoice_number": [f"already {invoice.state}"]})
    workflow = ApplicationWorkflow(application.status)
    previous = workflow.pay()
    definition = uow.catalogue.get(application.service_code)
    invoice.state, invoice.method, invoice.receipt_number = InvoiceState.PAID.value, method, receipt_number
    invoice.paid_at, invoice.paid_by = now, actor
    application.status = workflow.status.value
    application.updated_at = now
    application.version += 1
    paid_on = local_date(now)
    working_days = definition["deadline_working_days"] if definition is not None else None
    if working_days is not None:
        _keep_clock(application, LegalClock.start(paid_on, working_days, uow.closures.after(application.centre, paid_on)))
    uow.applications.append_history(application, from_status=previous.value, to_status=workflow.status.value,
                                    actor=actor, reason=f"fee paid ({method}, receipt {receipt_number})", occurred_at=now,
                                    clock=STARTED if working_days is not None else None, working_days=working_days,
                                    due_date=application.due_date)
    payment = {"amount_tiyin": invoice.amount_tiyin, "method": method, "receipt_number": receipt_number, "reason": None,
               "at": now}
    uow.emit(events.PAID, events.event_data(application, definition, actor, previous.value, None,
                                            invoice=_priced(uow, invoice), payment=payment), now, events.VERSION)


def reverse_payment(uow, application, invoice, reason, actor, now):
    """The payment provider took a payment back before work started: the fee is refunded and the
    application waits for payment again (its invoice outstanding)."""
    workflow = ApplicationWorkflow(application.status)
    previous = workflow.payment_reversed()
    application.status = workflow.status.value
    uow.applications.append_history(application, from_status=previous.value, to_status=workflow.status.value,
                                    actor=actor, reason=reason, occurred_at=now)
    _refund(uow, application, invoice, uow.catalogue.get(application.service_code), reason, actor, now, reopen=True)


def _refund(uow, application, invoice, definition, reason, actor, now, reopen=False):
    """The fee goes back: `application.refunded` with the payment it undoes."""
    payment = {"amount_tiyin": invoice.amount_tiyin, "method": invoice.method, "receipt_number": invoice.receipt_number,
               "reason": reason, "at": now}
    if reopen:
        invoice.state, invoice.method, invoice.receipt_number, invoice.paid_at, invoice.paid_by = (
            InvoiceState.ISSUED.value, None, None, None, None)
    else:
        invoice.state = InvoiceState.REFUNDED.value
    invoice.refunded_at, invoice.refund_reason = now, reason
    application.updated_at = now
    application.version += 1
    uow.emit(events.REFUNDED, events.event_data(application, definition, actor, None, reason,
                                                invoice=_priced(uow, invoice), payment=payment), now, events.VERSION)


def _invoice_of(uow, application):
    invoice = uow.invoices.of_application(application.tracking_number, for_update=True)
    if invoice is None:
        raise NoInvoice("this application has no invoice (its service is free or sold at the desk)",
                        fields={"tracking_number": ["no invoice"]})
    return invoice


def _invoice_values(uow, definition, number, centre, now):
    """A paid service's invoice at filing: the fee in force on the day, due in a few working days."""
    day = local_date(now)
    return {"invoice_number": invoice_number(uow.region.n, number), "tracking_number": number,
            "service_code": definition["code"], "centre": centre, "amount_tiyin": fee_on(definition, day),
            "currency": CURRENCY, "issued_at": now, "due_date": add_working_days(day, INVOICE_DUE_WORKING_DAYS),
            "state": InvoiceState.ISSUED.value}


def _priced(uow, invoice):
    """The invoice as events carry it, with where to pay it online while it is outstanding."""
    if invoice is None:
        return None
    data = invoice_data(invoice)
    if invoice.state == InvoiceState.ISSUED:
        data["pay_url"] = uow.pay_url(invoice)
    return data


def reissue_status_code(uow: IntakeUnitOfWork, command: ReissueStatusCode) -> str:
    """Replace an application's status code; returns the new code, which only this answer shows."""
    with uow:
        application = _in_scope(uow, command.tracking_number, command.caller)
        code = new_status_code()
        application.status_code_digest = status_code_digest(application.tracking_number, code)
        uow.commit()
    return code


def copy_catalogue_change(uow: IntakeUnitOfWork, envelope: dict) -> None:
    """Keep the region's copy of a catalogue service current (a `national.catalogue.*` event), once per event."""
    with uow:
        if uow.processed_events.first_delivery(envelope):
            uow.catalogue_copy.keep(envelope["data"])
        uow.commit()


def _in_scope(uow, tracking_number, caller):
    """The application, locked for the change, once the caller (None over RPC) may change it; 404 or 403 otherwise."""
    application = uow.applications.get(tracking_number, for_update=True)
    if application is None:
        raise application_not_found(tracking_number)
    if caller is not None:
        require_scope(caller, application)
    return application


def request_fingerprint(submission: dict) -> str:
    """What tells a replay (the same body again) from a different application under the same key."""
    return hashlib.sha256(json.dumps(submission, sort_keys=True, default=str).encode()).hexdigest()


def _replay(existing, fingerprint):
    if existing.request_fingerprint != fingerprint:
        raise IdempotencyKeyReused("this Idempotency-Key was used for a different application",
                                   fields={"idempotency_key": ["already used with a different body"]})
    return existing


def _move(workflow, target, reason):
    """The workflow's step, its refusals as the API's errors (naming the field); returns the status left."""
    try:
        return workflow.transition(target, reason)
    except TransitionNotAllowed as exc:
        allowed = ", ".join(ApplicationWorkflow(exc.current).allowed) or "none"
        raise TransitionRejected(str(exc), fields={"to": [f"allowed from {exc.current}: {allowed}"]}) from exc
    except ReasonRequired as exc:
        raise ApplicationInvalid(str(exc), fields={"reason": [f"required for {exc.target}"]}) from exc


def _application_values(submission, definition, centre, attributes, number, key, fingerprint, now, clock):
    applicant = submission["applicant"]
    return {
        "tracking_number": number,
        "idempotency_key": key,
        "request_fingerprint": fingerprint,
        "service_code": definition["code"],
        "service_version": definition["version"],
        "agency": definition["agency"]["code"],
        "district": submission["district"],
        "centre": centre,
        "status": Status.SUBMITTED.value,
        "applicant_pinfl": applicant["pinfl"],
        "applicant_name": applicant["full_name"],
        "applicant_phone": applicant["phone"],
        "applicant_email": applicant.get("email"),
        "language": applicant["language"],
        "channel": applicant["channel"],
        "documents": sorted(set(submission["documents"])),
        "attributes": attributes,
        "submitted_at": now,
        "due_date": clock.due_date,
        "updated_at": now,
        "decided_at": None,
        "version": 1,
        "clock_started_on": clock.started_on,
        "clock_paused_on": None,
        "working_days_left": None,
        "extensions": 0,
    }
