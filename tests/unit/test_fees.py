"""Fees in plain Python: the catalogue's amounts in tiyin from the base calculation amount, the fee in
force on a day, invoice numbers, and the workflow's payment steps."""
from datetime import date

import pytest

from services.catalogue.domain import fee_in_tiyin, fee_schedule
from services.intake.domain import (
    ApplicationWorkflow, Status, TransitionNotAllowed, fee_on, invoice_number, invoiced_at_filing,
)
from services.intake.exceptions import ServiceNotAvailable

BASE_AMOUNTS = [(date(2024, 10, 1), 37_500_000), (date(2025, 8, 1), 41_200_000)]


def test_fees_are_whole_tiyin_without_float_rounding_loss():
    assert fee_in_tiyin({"free": False, "bca_multiple": 0.002}, 41_200_000) == 82_400
    assert fee_in_tiyin({"free": False, "bca_multiple": 0.15}, 41_200_000) == 6_180_000
    # 0.1 + 0.2 is not 0.3 in binary floating point; the multiple is read as its decimal text.
    assert fee_in_tiyin({"free": False, "bca_multiple": 0.0003}, 33_000_001) == 9_900  # 9 900.0003 -> 9 900
    assert fee_in_tiyin({"free": False, "bca_multiple": 0.0005}, 1_000_001) == 500  # 500.0005 rounds half up to 500
    assert fee_in_tiyin({"free": False, "fixed_tiyin": 500_000}, 41_200_000) == 500_000
    assert fee_in_tiyin({"free": True}, 41_200_000) is None


def test_the_schedule_gives_the_fee_from_each_change_of_the_base_amount():
    schedule = fee_schedule({"free": False, "bca_multiple": 0.2}, BASE_AMOUNTS)
    assert schedule == [{"effective_from": "2024-10-01", "amount_tiyin": 7_500_000},
                        {"effective_from": "2025-08-01", "amount_tiyin": 8_240_000}]
    definition = {"code": "apostille", "fee": {"free": False, "bca_multiple": 0.2}, "fee_amounts": schedule}
    assert fee_on(definition, date(2025, 7, 31)) == 7_500_000
    assert fee_on(definition, date(2025, 8, 1)) == 8_240_000
    with pytest.raises(ServiceNotAvailable):
        fee_on(definition, date(2024, 9, 30))
    assert fee_on({"code": "x", "fee": {"free": True}, "fee_amounts": []}, date(2025, 8, 1)) is None


def test_office_services_are_sold_at_the_desk_not_invoiced():
    assert invoiced_at_filing({"fee": {"free": False, "bca_multiple": 0.2}})
    assert not invoiced_at_filing({"fee": {"free": False, "bca_multiple": 0.002, "collection": "desk"}})
    assert not invoiced_at_filing({"fee": {"free": True}})


def test_invoice_numbers_are_digits_of_region_year_and_sequence():
    assert invoice_number(4, "JI-2026-000123") == "042026000123"


def test_payment_moves_an_application_on_and_a_reversal_back():
    workflow = ApplicationWorkflow(Status.AWAITING_PAYMENT)
    assert workflow.allowed == ["withdrawn"]
    with pytest.raises(TransitionNotAllowed):
        workflow.transition(Status.ACCEPTED)
    assert workflow.pay() is Status.AWAITING_PAYMENT and workflow.status is Status.SUBMITTED
    with pytest.raises(TransitionNotAllowed):
        workflow.pay()
    assert workflow.payment_reversed() is Status.SUBMITTED and workflow.status is Status.AWAITING_PAYMENT


@pytest.mark.parametrize("language", ["uz", "ru", "en"])
def test_citizens_are_told_the_invoice_and_the_payment_in_their_language(language):
    from services.notifications.messages import TemplateBook
    from services.notifications.use_cases import citizen_values, so_m

    assert so_m(8_240_000) == "82\u00a0400" and so_m(125_050) == "1\u00a0250,50"
    invoice = {"invoice_number": "042026000123", "amount_tiyin": 8_240_000, "currency": "UZS", "due_date": date(2026, 12, 11),
               "state": "issued", "pay_url": "https://checkout.paycom.uz/bT0x"}
    fact = {"tracking_number": "JI-2026-000123", "service_code": "apostille", "service_name": {language: "Apostil"},
            "status": "awaiting_payment", "previous_status": None, "reason": None, "open": False,
            "due_date": date(2026, 12, 20), "status_code": "ABCD-EFGH", "invoice": invoice, "payment": None}
    book = TemplateBook()
    filed = book.render("application.submitted", language, **citizen_values(fact, language))
    assert "82\u00a0400" in filed.body and "042026000123" in filed.body and invoice["pay_url"] in filed.body
    paid = {**fact, "status": "submitted", "invoice": {**invoice, "state": "paid", "pay_url": None},
            "payment": {"amount_tiyin": 8_240_000, "method": "cash", "receipt_number": "R-77", "reason": None}}
    message = book.render("application.paid", language, **citizen_values(paid, language))
    assert "82\u00a0400" in message.body and "R-77" in message.body and "JI-2026-000123" in message.subject
    refunded = {**paid, "reason": "withdrawn", "payment": {**paid["payment"], "reason": "withdrawn"}}
    assert "82\u00a0400" in book.render("application.refunded", language, **citizen_values(refunded, language)).body


def test_every_status_has_an_open311_note():
    from services.intake.open311.mapping import STATUS_NOTES, open311_status

    assert set(STATUS_NOTES) == set(Status)
    assert open311_status(Status.AWAITING_PAYMENT) == "open"
