"""Intake's read side: the queries behind lists, one application, the desk's forms, the public status
page, Open311 and the event export; each answers in the shape its marshmallow schema documents."""
import hmac
from datetime import datetime, timedelta, timezone
from datetime import time as clock_time

from sqlalchemy import func, select

from oss_common.calendar import TASHKENT, local_date
from services.intake.domain import CURRENCY, FINAL, ApplicationWorkflow, fee_on, status_code_digest
from oss_common.errors import ApiError
from services.intake.exceptions import application_not_found
from services.intake.models import Application, CatalogueEntry, CentreClosure, Invoice, OfficeSale, OutboxEvent
from services.intake.schemas import (
    ApplicationViewSchema, ClosureViewSchema, InvoiceViewSchema, OfficeSaleViewSchema, PublicStatusSchema, ReceiptSchema,
    TakingsSchema, mask_phone, mask_pinfl,
)

APPLICATION_VIEW = ApplicationViewSchema()
INVOICE_VIEW = InvoiceViewSchema()
CLOSURE_VIEW = ClosureViewSchema()
RECEIPT, SALE, TAKINGS, PUBLIC_STATUS = ReceiptSchema(), OfficeSaleViewSchema(), TakingsSchema(), PublicStatusSchema()


def get_application(session, tracking):
    """The application with this tracking number; 404 naming the field when the region has none."""
    application = session.scalar(select(Application).where(Application.tracking_number == tracking))
    if application is None:
        raise application_not_found(tracking)
    return application


def find_by_key(session, key):
    """The application created under an Idempotency-Key (an Open311 token's), if any."""
    return session.scalar(select(Application).where(Application.idempotency_key == key))


def application_view(application, with_history: bool = True, reveal_personal_data: bool = True) -> dict:
    """An application as ApplicationViewSchema shows it; in lists without its history and with the
    applicant's data masked."""
    return APPLICATION_VIEW.dump(_application_values(application, with_history, reveal_personal_data))


def _application_values(application, with_history=True, reveal_personal_data=True):
    applicant = {
        "pinfl": application.applicant_pinfl if reveal_personal_data else mask_pinfl(application.applicant_pinfl),
        "full_name": application.applicant_name if reveal_personal_data else None,
        "phone": application.applicant_phone if reveal_personal_data else mask_phone(application.applicant_phone),
        "language": application.language,
        "channel": application.channel,
    }
    if reveal_personal_data:
        applicant["email"] = application.applicant_email
    view = {
        "tracking_number": application.tracking_number,
        "service_code": application.service_code,
        "service_version": application.service_version,
        "agency": application.agency,
        "status": application.status,
        "allowed_transitions": ApplicationWorkflow(application.status).allowed,
        "district": application.district,
        "centre": application.centre,
        "applicant": applicant,
        "documents": application.documents,
        "attributes": application.attributes,
        "submitted_at": application.submitted_at,
        "updated_at": application.updated_at,
        "due_date": application.due_date,
        "clock": {
            "paused": application.clock_paused_on is not None,
            "working_days_left": application.working_days_left,
            "started_on": application.clock_started_on or local_date(application.submitted_at),
            "extensions": application.extensions,
        },
    }
    invoice = getattr(application, "invoice", None)
    view["invoice"] = _invoice_values(invoice) if invoice is not None else None
    if with_history:
        view["history"] = application.history
    return view


def invoice_view(invoice) -> dict:
    """An invoice as the API shows it: amounts in tiyin."""
    return INVOICE_VIEW.dump(_invoice_values(invoice))


def _invoice_values(invoice):
    return {
        "invoice_number": invoice.invoice_number, "amount_tiyin": invoice.amount_tiyin, "currency": invoice.currency,
        "due_date": invoice.due_date, "state": invoice.state, "issued_at": invoice.issued_at,
        "method": getattr(invoice, "method", None), "receipt_number": getattr(invoice, "receipt_number", None),
        "paid_at": getattr(invoice, "paid_at", None), "refunded_at": getattr(invoice, "refunded_at", None),
        "refund_reason": getattr(invoice, "refund_reason", None),
    }


def receipt_view(region_slug, application, definition):
    """What the desk prints for an application's fee (no applicant data: the receipt stays with the citizen anyway)."""
    return RECEIPT.dump({"region": region_slug, "tracking_number": application.tracking_number,
                         "service_code": application.service_code,
                         "service_name": definition["names"] if definition is not None else None,
                         "centre": application.centre, "invoice": _invoice_values(application.invoice)})


def sale_view(sale, definition):
    """An office sale as OfficeSaleViewSchema shows it."""
    return SALE.dump({"receipt_number": sale.receipt_number, "centre": sale.centre, "service_code": sale.service_code,
                      "service_name": definition["names"] if definition is not None else None,
                      "quantity": sale.quantity, "unit_tiyin": sale.unit_tiyin, "amount_tiyin": sale.amount_tiyin,
                      "currency": CURRENCY, "method": sale.method, "sold_at": sale.sold_at})


def takings(session, centre, day):
    """A centre's takings of a Tashkent day: its office sales and the application fees its desks took
    (cash and card; Payme pays the region's account, not the till), by service and method, in tiyin."""
    sales = session.execute(
        select(OfficeSale.service_code, OfficeSale.method, func.count(), func.sum(OfficeSale.amount_tiyin))
        .where(OfficeSale.centre == centre, OfficeSale.day == day)
        .group_by(OfficeSale.service_code, OfficeSale.method).order_by(OfficeSale.service_code, OfficeSale.method)
    ).all()
    fees = session.execute(
        select(Invoice.service_code, Invoice.method, func.count(), func.sum(Invoice.amount_tiyin))
        .where(Invoice.centre == centre, Invoice.method.in_(("cash", "card")), Invoice.state.in_(("paid", "refunded")),
               Invoice.paid_at >= _start_of(day), Invoice.paid_at < _start_of(day, days=1))
        .group_by(Invoice.service_code, Invoice.method).order_by(Invoice.service_code, Invoice.method)
    ).all()

    def lines(rows):
        return [{"service_code": code, "method": method, "sales": count, "amount_tiyin": int(total or 0)}
                for code, method, count, total in rows]

    office, paid = lines(sales), lines(fees)
    return TAKINGS.dump({"centre": centre, "day": day, "office_sales": office, "fees": paid,
                         "total_tiyin": sum(line["amount_tiyin"] for line in office + paid)})


def closure_view(closure, applications_moved=None) -> dict:
    """A centre's closure day as ClosureViewSchema shows it (with how many applications it moved, when declared)."""
    view = {"centre": closure.centre, "day": closure.day, "reason": closure.reason,
            "declared_by": closure.declared_by, "declared_at": closure.declared_at}
    if applications_moved is not None:
        view["applications_moved"] = applications_moved
    return CLOSURE_VIEW.dump(view)


def closures(session, centres, start, end):
    """The region's closure days (of `centres`; None: all), by day."""
    query = select(CentreClosure).order_by(CentreClosure.day, CentreClosure.centre)
    if centres is not None:
        query = query.where(CentreClosure.centre.in_(centres))
    if start is not None:
        query = query.where(CentreClosure.day >= start)
    if end is not None:
        query = query.where(CentreClosure.day <= end)
    return [closure_view(closure) for closure in session.scalars(query)]


def filed_view(application, created):
    """The answer to a filing: the application, with the citizen's status code when this call created it."""
    values = _application_values(application)
    if created:
        values["status_code"] = application.status_code
    return APPLICATION_VIEW.dump(values)


def list_applications(session, query):
    conditions = []
    if query["status"]:
        conditions.append(Application.status == query["status"])
    if query["service"]:
        conditions.append(Application.service_code == query["service"])
    if query["district"]:
        conditions.append(Application.district == query["district"])
    if query["centre"]:
        conditions.append(Application.centre == query["centre"])
    if query.get("agency"):
        conditions.append(Application.agency == query["agency"])
    if query.get("active") is not None:
        finished = Application.status.in_([status.value for status in FINAL])
        conditions.append(~finished if query["active"] else finished)
    # The caller's scope: an operator's centres, an officer's agencies (None: no limit, as over RPC).
    if query.get("centres") is not None:
        conditions.append(Application.centre.in_(query["centres"]))
    if query.get("agencies") is not None:
        conditions.append(Application.agency.in_(query["agencies"]))
    if query["submitted_from"]:
        conditions.append(Application.submitted_at >= _start_of(query["submitted_from"]))
    if query["submitted_to"]:
        conditions.append(Application.submitted_at < _start_of(query["submitted_to"], days=1))
    total = session.scalar(select(func.count()).select_from(Application).where(*conditions))
    rows = session.scalars(
        select(Application).where(*conditions)
        .order_by(*((Application.due_date, Application.id) if query.get("order") == "due" else (Application.id.desc(),)))
        .offset((query["page"] - 1) * query["page_size"]).limit(query["page_size"])
    ).all()
    return {
        "items": [application_view(row, with_history=False, reveal_personal_data=False) for row in rows],
        "total": total,
        "page": query["page"],
        "page_size": query["page_size"],
    }


def offered_services(session, region_slug):
    """The published catalogue services the region offers, from its copy, by group and code."""
    rows = session.scalars(select(CatalogueEntry).where(CatalogueEntry.state == "published")).all()
    return sorted((row.definition for row in rows if region_slug in row.definition["regions"]),
                  key=lambda definition: (definition["group"], definition["code"]))


def public_interest_codes(session):
    """Codes of the services the catalogue marks public-interest (from the region's copy, any state)."""
    return {entry.code for entry in session.scalars(select(CatalogueEntry)) if entry.definition.get("public_interest")}


def visible_service_codes(session, partner=None):
    """The service codes whose applications a caller may see on the Open311 face: None for every
    service (a partner given `*`), else a set (the public-interest ones and the partner's)."""
    if partner is not None and partner.all_services:
        return None
    return public_interest_codes(session) | (partner.services if partner is not None else frozenset())


def narrowed(asked, visible):
    """The service codes a query may reach: those asked for (None: any) within those visible (None: any)."""
    if visible is None:
        return asked
    return visible if asked is None else set(asked) & visible


def open311_requests(session, tracking_numbers=None, service_codes=None, statuses=None, start=None, end=None,
                     limit=1000, offset=0):
    """Applications for the Open311 face, newest first: by tracking number, or by service (None:
    any; an empty set: none), status and submission time (aware datetimes, both ends included)."""
    conditions = []
    if tracking_numbers is not None:
        conditions.append(Application.tracking_number.in_(tracking_numbers))
    if service_codes is not None:
        conditions.append(Application.service_code.in_(service_codes))
    if statuses:
        conditions.append(Application.status.in_(statuses))
    if start is not None:
        conditions.append(Application.submitted_at >= start.astimezone(timezone.utc))
    if end is not None:
        conditions.append(Application.submitted_at <= end.astimezone(timezone.utc))
    return session.scalars(
        select(Application).where(*conditions).order_by(Application.submitted_at.desc(), Application.id.desc())
        .offset(offset).limit(limit)
    ).all()


def _start_of(day, days=0):
    return datetime.combine(day + timedelta(days=days), clock_time.min, tzinfo=TASHKENT)


def export_events(session, after_id=0, limit=500):
    """The region's stored events in order, a page at a time (for rebuilding projections)."""
    rows = session.scalars(select(OutboxEvent).where(OutboxEvent.id > after_id).order_by(OutboxEvent.id).limit(limit)).all()
    return {
        "items": [without_status_code(row.payload) for row in rows],
        "next_after_id": rows[-1].id if rows else after_id,
        "more": len(rows) == limit,
    }


def without_status_code(envelope):
    """An event as others may read it again: the citizen's status code was for notifications alone."""
    if "status_code" not in envelope["data"]:
        return envelope
    return {**envelope, "data": {key: value for key, value in envelope["data"].items() if key != "status_code"}}


def service_form(definition):
    """What a desk needs to file an application for a catalogue service: names, agency, deadline,
    fee, the documents to check and the form's attributes in order (fixed ones left out)."""
    attributes = sorted((attribute for attribute in definition["attributes"] if attribute.get("variable", True)),
                        key=lambda attribute: (attribute.get("order", 0), attribute["code"]))
    return {
        "code": definition["code"],
        "version": definition["version"],
        "group": definition["group"],
        "names": definition["names"],
        "agency": definition["agency"],
        "deadline_working_days": definition["deadline_working_days"],
        "fee": definition.get("fee"),
        "fee_today_tiyin": _fee_today(definition),
        "required_documents": [{"code": document["code"], "names": document["names"]}
                               for document in definition["required_documents"]],
        "attributes": [
            {"code": attribute["code"], "datatype": attribute["datatype"], "required": bool(attribute.get("required")),
             "description": attribute.get("description") or {},
             "values": [{"key": value["key"], "name": value.get("name") or {}} for value in attribute.get("values") or []]}
            for attribute in attributes
        ],
    }


def _fee_today(definition):
    try:
        return fee_on(definition, local_date(datetime.now(timezone.utc)))
    except ApiError:
        return None


def application_for_status(session, tracking_number, code):
    """The application whose tracking number and status code these are, or None (an unknown number
    and a wrong code are the same to the caller, and take the same work)."""
    application = session.scalar(select(Application).where(Application.tracking_number == tracking_number))
    stored = application.status_code_digest if application is not None else None
    matches = hmac.compare_digest(status_code_digest(tracking_number, code), stored or "0" * 64)
    return application if matches and stored else None


def public_status(application, definition):
    """Where an application stands, for the citizen holding its tracking number and status code: the service, the status,
    the due date and the dates of its status changes; nothing about the applicant, no officer's
    reason, no actor."""
    return PUBLIC_STATUS.dump({
        "tracking_number": application.tracking_number,
        "service_code": application.service_code,
        "service_name": definition["names"] if definition is not None else None,
        "status": application.status,
        "final": not ApplicationWorkflow(application.status).allowed,
        "submitted_on": local_date(application.submitted_at),
        "due_date": application.due_date,
        "clock_paused": application.clock_paused_on is not None,
        "history": [{"status": change.to_status, "on": local_date(change.occurred_at)}
                    for change in application.history if change.from_status != change.to_status],
    })
