"""Unpaid invoices expire, with a fake unit of work: past its due date (a Tashkent date, the last day
to pay) an outstanding invoice is cancelled and its application withdrawn with the reason, announced
once; paying it afterwards is refused at the desk (409 naming the field) and by Payme (-31051)."""
from datetime import date, datetime, timezone

import pytest

from oss_common import application_events
from oss_common.regions import get_region
from services.intake import payme, use_cases
from services.intake.commands import ExpireUnpaidInvoices, PayAtDesk
from services.intake.exceptions import InvoiceExpired, InvoicePaid
from tests.unit.test_intake_use_cases import FakeUnitOfWork, body, submit
from tests.unit.test_services_with_worker_factory import DEFINITION

FEE = 8_240_000
PAID = {**DEFINITION, "code": "apostille", "fee": {"free": False, "bca_multiple": 0.2},
        "fee_amounts": [{"effective_from": "2025-08-01", "amount_tiyin": FEE}]}
DUE = date(2026, 12, 21)  # filed Monday 14 December: five working days to pay


def at(day, hour_utc=6):
    return datetime(day.year, day.month, day.day, hour_utc, tzinfo=timezone.utc)


class FakeInvoices:
    def __init__(self, applications):
        self.applications = applications
        self.paying = set()  # invoice numbers with a Payme transaction under way

    def _all(self):
        return [a.invoice for a in self.applications.stored.values() if a.invoice is not None]

    def of_application(self, tracking_number, for_update=False):
        application = self.applications.get(tracking_number)
        return application.invoice if application is not None else None

    def by_number(self, number, for_update=False):
        return next((invoice for invoice in self._all() if invoice.invoice_number == number), None)

    def unpaid_before(self, day, limit):
        return [invoice for invoice in self._all() if invoice.state == "issued" and invoice.due_date < day][:limit]

    def active_transaction(self, number):
        return object() if number in self.paying else None

    def receipt_taken(self, centre, receipt_number):
        return False


def filed():
    uow = FakeUnitOfWork(get_region("jizzakh"), PAID)
    uow.invoices = FakeInvoices(uow.applications)
    application, _ = submit(uow, submission=body(service_code="apostille"))
    uow.published.clear()
    return uow, application


def expire(uow, day, hour_utc=6):
    return use_cases.expire_unpaid_invoices(uow.again(), ExpireUnpaidInvoices(at=at(day, hour_utc)))


def test_an_unpaid_invoice_expires_the_day_after_its_due_date_and_its_application_is_withdrawn():
    uow, application = filed()
    assert application.status == "awaiting_payment" and application.invoice.due_date == DUE
    assert expire(uow, DUE, hour_utc=18) == []  # 23:00 in Tashkent on the due date: still payable
    assert application.invoice.state == "issued" and uow.published == []

    assert expire(uow, date(2026, 12, 22), hour_utc=0) == [application.tracking_number]  # 05:00 the next day
    assert application.status == "withdrawn" and application.invoice.state == "cancelled"
    change = application.history[-1]
    assert (change.from_status, change.to_status, change.actor) == ("awaiting_payment", "withdrawn", use_cases.EXPIRY_ACTOR)
    assert "21.12.2026" in change.reason
    (event,) = uow.published
    fact = application_events.load(event)
    assert event["type"] == "application.status_changed"
    assert (fact["status"], fact["previous_status"], fact["final"]) == ("withdrawn", "awaiting_payment", True)
    assert fact["invoice"]["state"] == "cancelled" and fact["invoice"]["pay_url"] is None
    assert "31234567890123" not in str(event)

    assert expire(uow, date(2026, 12, 23)) == [] and len(uow.published) == 1  # once


def test_an_invoice_payme_is_paying_waits_for_that_transaction():
    uow, application = filed()
    uow.invoices.paying.add(application.invoice.invoice_number)
    assert expire(uow, date(2026, 12, 22)) == [] and application.status == "awaiting_payment"
    uow.invoices.paying.clear()
    assert expire(uow, date(2026, 12, 22)) == [application.tracking_number]


@pytest.mark.parametrize("run_first", [False, True], ids=["before-the-job", "after-the-job"])
def test_an_expired_invoice_is_not_paid_at_the_desk_nor_by_payme(run_first):
    uow, application = filed()
    if run_first:
        expire(uow, date(2026, 12, 22))
    status = application.status
    with pytest.raises(InvoicePaid if run_first else InvoiceExpired) as refused:
        use_cases.pay_at_desk(uow.again(), PayAtDesk(application.tracking_number, "cash", "R-1", FEE, "operator:o",
                                                     at=at(date(2026, 12, 22))))
    assert refused.value.status == 409 and "invoice_number" in refused.value.fields
    assert application.status == status and application.invoice.state != "paid"

    def new_uow():
        return uow.again()

    now_ms = int(at(date(2026, 12, 22)).timestamp() * 1000)
    check = {"amount": FEE, "account": {"invoice": application.invoice.invoice_number}}
    with pytest.raises(payme.PaymeError) as error:
        payme.check_perform_transaction(new_uow, check, now_ms)
    assert error.value.code == -31051 and error.value.data == "invoice"
    # the day before, the same invoice was payable (when the job had not cancelled it)
    if not run_first:
        assert payme.check_perform_transaction(new_uow, check, int(at(DUE).timestamp() * 1000)) == {"allow": True}


@pytest.mark.parametrize("language,words", [("uz", "bekor qilindi"), ("ru", "отменён"), ("en", "nothing is owed")])
def test_the_citizen_is_told_the_invoice_is_cancelled_in_their_language(language, words):
    from services.notifications.messages import TemplateBook
    from services.notifications.use_cases import citizen_values

    invoice = {"invoice_number": "042026000123", "amount_tiyin": FEE, "currency": "UZS", "due_date": DUE,
               "state": "cancelled", "pay_url": None}
    fact = {"tracking_number": "JI-2026-000123", "service_code": "apostille", "service_name": {language: "Apostil"},
            "status": "withdrawn", "previous_status": "awaiting_payment", "open": False, "due_date": date(2026, 12, 20),
            "reason": "the fee was not paid by 21.12.2026: invoice 042026000123 cancelled", "status_code": None,
            "invoice": invoice, "payment": None}
    message = TemplateBook().render("application.status_changed", language, **citizen_values(fact, language))
    assert words in message.body and "042026000123" in message.body and "82\u00a0400" in message.body
    unpaid = {**fact, "status": "submitted", "invoice": {**invoice, "state": "paid"}}
    assert words not in TemplateBook().render("application.status_changed", language, **citizen_values(unpaid, language)).body
