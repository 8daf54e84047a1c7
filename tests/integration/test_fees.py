"""Fees against the real stack (both backends): a paid service's invoice at filing, Payme's merchant
API played step by step by a client as Payme plays it, the desk's cash and card payments and
receipts, refunds, and the centre's office sales and takings. Amounts are integers in tiyin."""
import base64
import time
import uuid
from datetime import timedelta

import pytest
import requests
from sqlalchemy import create_engine, text

from oss_common.auth import OFFICER, OPERATOR
from oss_common.calendar import local_date
from oss_common.events import utc_now
from tests.integration.conftest import PAYME_KEY, auth, event_listener, post, valid_submission

pytestmark = pytest.mark.integration

REGION = "jizzakh"
PAID_SERVICE = "apostille"  # 0.2 of the base calculation amount
BASE_AMOUNT_TIYIN = 41_200_000  # in force since 1 August 2025 (the seed)
FEE = BASE_AMOUNT_TIYIN * 2 // 10  # 8 240 000 tiyin = 82 400 so'm


class PaymeClient:
    """Payme's side of the merchant API: JSON-RPC 2.0 POSTs with Basic auth `Paycom:<key>`."""

    def __init__(self, url, key=PAYME_KEY):
        self.url, self.key, self.next_id = url, key, 0

    def call(self, method, params, key=None):
        self.next_id += 1
        credentials = base64.b64encode(f"Paycom:{key or self.key}".encode()).decode()
        response = requests.post(f"{self.url}/api/v1/payme", json={"id": self.next_id, "method": method, "params": params},
                                 headers={"Authorization": f"Basic {credentials}"}, timeout=30)
        assert response.status_code == 200, response.text  # Payme's protocol: always 200
        body = response.json()
        assert body["id"] == self.next_id
        return body

    def result(self, method, params):
        body = self.call(method, params)
        assert "error" not in body, body
        return body["result"]

    def error(self, method, params, key=None):
        body = self.call(method, params, key)
        assert "result" not in body, body
        assert set(body["error"]["message"]) == {"ru", "uz", "en"}
        return body["error"]["code"]


def now_ms():
    return int(time.time() * 1000)


def file_paid(stack, service=PAID_SERVICE, **overrides):
    answer = post(f"{stack.urls[REGION]}/api/v1/applications", valid_submission(REGION, service, **overrides),
                  **auth(OPERATOR, REGION), **{"Idempotency-Key": uuid.uuid4().hex})
    assert answer.status_code == 201, answer.text
    return answer.json()


def application(stack, tracking):
    answer = requests.get(f"{stack.urls[REGION]}/api/v1/applications/{tracking}", headers=auth(OPERATOR, REGION), timeout=30)
    assert answer.status_code == 200, answer.text
    return answer.json()


def move(stack, tracking, to, reason=None):
    return post(f"{stack.urls[REGION]}/api/v1/applications/{tracking}/transitions", {"to": to, "reason": reason},
                **auth(OFFICER, REGION))


def pay_at_desk(stack, tracking, amount=FEE, method="cash", receipt=None):
    return post(f"{stack.urls[REGION]}/api/v1/applications/{tracking}/payments",
                {"method": method, "receipt_number": receipt or f"R-{uuid.uuid4().hex[:10]}", "amount_tiyin": amount},
                **auth(OPERATOR, REGION))


def test_a_paid_service_is_invoiced_at_filing_and_waits_for_payment(stack):
    with event_listener(stack.amqp_uri, f"{REGION}.application.*") as collect:
        filed = file_paid(stack)
        events = collect(until=lambda got: any(body["data"]["tracking_number"] == filed["tracking_number"] for _, body in got))
    assert filed["status"] == "awaiting_payment" and filed["allowed_transitions"] == ["withdrawn"]
    invoice = filed["invoice"]
    assert invoice["amount_tiyin"] == FEE and isinstance(invoice["amount_tiyin"], int)
    assert invoice["currency"] == "UZS" and invoice["state"] == "issued" and invoice["invoice_number"].isdigit()
    (event,) = [body for _, body in events if body["data"]["tracking_number"] == filed["tracking_number"]]
    assert event["schema_version"] >= 4 and event["data"]["open"] is False  # the invoice came with version 4
    assert event["data"]["invoice"]["amount_tiyin"] == FEE
    assert event["data"]["invoice"]["pay_url"].startswith("https://checkout.paycom.uz/")
    checkout = base64.b64decode(event["data"]["invoice"]["pay_url"].rsplit("/", 1)[1]).decode()
    assert f"ac.invoice={invoice['invoice_number']}" in checkout and f"a={FEE}" in checkout
    assert move(stack, filed["tracking_number"], "accepted").status_code == 409  # not before it is paid
    free = post(f"{stack.urls[REGION]}/api/v1/applications", valid_submission(REGION), **auth(OPERATOR, REGION))
    assert free.json()["status"] == "submitted" and free.json()["invoice"] is None


def test_payme_protocol_step_by_step(stack):
    payme = PaymeClient(stack.urls[REGION])
    filed = file_paid(stack)
    number, tracking = filed["invoice"]["invoice_number"], filed["tracking_number"]
    account = {"invoice": number}

    assert payme.error("CheckPerformTransaction", {"amount": FEE, "account": account}, key="wrong") == -32504
    assert payme.error("CheckPerformTransaction", {"amount": FEE - 1, "account": account}) == -31001
    assert payme.error("CheckPerformTransaction", {"amount": FEE, "account": {"invoice": "99" + number}}) == -31050
    assert payme.error("NoSuchMethod", {}) == -32601
    assert payme.result("CheckPerformTransaction", {"amount": FEE, "account": account}) == {"allow": True}

    first = uuid.uuid4().hex[:24]
    created = payme.result("CreateTransaction", {"id": first, "time": now_ms(), "amount": FEE, "account": account})
    assert created["state"] == 1 and isinstance(created["create_time"], int)
    again = payme.result("CreateTransaction", {"id": first, "time": now_ms(), "amount": FEE, "account": account})
    assert again == created  # idempotent
    busy = payme.error("CreateTransaction", {"id": uuid.uuid4().hex[:24], "time": now_ms(), "amount": FEE, "account": account})
    assert -31099 <= busy <= -31050  # the invoice is being paid by the first transaction

    performed = payme.result("PerformTransaction", {"id": first})
    assert performed["state"] == 2 and performed["perform_time"] >= created["create_time"]
    assert payme.result("PerformTransaction", {"id": first}) == performed  # a duplicate confirmation pays nothing twice
    paid = application(stack, tracking)
    assert paid["status"] == "submitted" and paid["invoice"]["state"] == "paid" and paid["invoice"]["method"] == "payme"
    assert [change["to"] for change in paid["history"]].count("submitted") == 1
    checked = payme.result("CheckTransaction", {"id": first})
    assert (checked["state"], checked["perform_time"], checked["cancel_time"], checked["reason"]) == \
        (2, performed["perform_time"], 0, None)

    # paid twice: refused by the desk and by Payme
    assert pay_at_desk(stack, tracking).status_code == 409
    assert payme.error("CheckPerformTransaction", {"amount": FEE, "account": account}) == -31051

    # refund: Payme cancels the performed transaction before work started
    with event_listener(stack.amqp_uri, f"{REGION}.application.refunded") as collect:
        cancelled = payme.result("CancelTransaction", {"id": first, "reason": 5})
        refunds = collect(until=lambda got: any(body["data"]["tracking_number"] == tracking for _, body in got))
    assert cancelled["state"] == -2 and cancelled["cancel_time"] > 0
    assert payme.result("CancelTransaction", {"id": first, "reason": 5}) == cancelled
    assert payme.error("PerformTransaction", {"id": first}) == -31008
    (refund,) = [body for _, body in refunds if body["data"]["tracking_number"] == tracking]
    assert refund["data"]["payment"]["amount_tiyin"] == FEE and refund["data"]["payment"]["method"] == "payme"
    reopened = application(stack, tracking)
    assert reopened["status"] == "awaiting_payment" and reopened["invoice"]["state"] == "issued"

    # a transaction cancelled before it was performed, and one created too late
    second = uuid.uuid4().hex[:24]
    payme.result("CreateTransaction", {"id": second, "time": now_ms(), "amount": FEE, "account": account})
    assert payme.result("CancelTransaction", {"id": second, "reason": 3})["state"] == -1
    assert payme.error("PerformTransaction", {"id": second}) == -31008
    assert payme.error("CheckTransaction", {"id": "no-such"}) == -31003
    late = now_ms() - 13 * 3600 * 1000
    assert payme.error("CreateTransaction", {"id": uuid.uuid4().hex[:24], "time": late, "amount": FEE,
                                             "account": account}) == -31008

    # paid again, the work starts: Payme may no longer cancel
    third = uuid.uuid4().hex[:24]
    payme.result("CreateTransaction", {"id": third, "time": now_ms(), "amount": FEE, "account": account})
    payme.result("PerformTransaction", {"id": third})
    assert move(stack, tracking, "accepted").status_code == 200
    assert payme.error("CancelTransaction", {"id": third, "reason": 5}) == -31007

    statement = payme.result("GetStatement", {"from": now_ms() - 3600 * 1000, "to": now_ms() + 1000})["transactions"]
    mine = {row["id"]: row for row in statement if row["account"] == account}
    assert {first, second, third} <= set(mine)
    assert (mine[first]["state"], mine[second]["state"], mine[third]["state"]) == (-2, -1, 2)
    assert all(isinstance(row["amount"], int) and row["amount"] == FEE for row in mine.values())


def test_desk_payment_receipt_and_takings(stack):
    filed = file_paid(stack)
    tracking = filed["tracking_number"]
    wrong = pay_at_desk(stack, tracking, amount=FEE - 1)
    assert wrong.status_code == 422 and "amount_tiyin" in wrong.json()["fields"]
    bad = pay_at_desk(stack, tracking, method="cheque")
    assert bad.status_code == 400 and "method" in bad.json()["fields"]
    receipt_number = f"CASH-{uuid.uuid4().hex[:8]}"
    paid = pay_at_desk(stack, tracking, receipt=receipt_number)
    assert paid.status_code == 201, paid.text
    assert paid.json()["status"] == "submitted" and paid.json()["invoice"]["receipt_number"] == receipt_number
    assert pay_at_desk(stack, tracking).status_code == 409
    receipt = requests.get(f"{stack.urls[REGION]}/api/v1/applications/{tracking}/receipt", headers=auth(OPERATOR, REGION),
                           timeout=30).json()
    assert receipt["invoice"]["amount_tiyin"] == FEE and receipt["invoice"]["state"] == "paid"
    centre = paid.json()["centre"]
    takings = requests.get(f"{stack.urls[REGION]}/api/v1/office-sales/takings", params={"centre": centre},
                           headers=auth(OPERATOR, REGION), timeout=30).json()
    fees = {line["method"]: line for line in takings["fees"] if line["service_code"] == PAID_SERVICE}
    assert fees["cash"]["amount_tiyin"] >= FEE


def test_office_service_sold_at_the_desk_in_one_call(stack):
    headers = auth(OPERATOR, REGION)
    before = requests.get(f"{stack.urls[REGION]}/api/v1/office-sales/takings", headers=headers, timeout=30).json()
    sold = post(f"{stack.urls[REGION]}/api/v1/office-sales", {"service_code": "photocopying", "quantity": 12, "method": "cash"},
                **headers)
    assert sold.status_code == 201, sold.text
    sale = sold.json()
    unit = BASE_AMOUNT_TIYIN * 2 // 1000  # 0.002 of the base amount per page: 82 400 tiyin
    assert (sale["unit_tiyin"], sale["amount_tiyin"], sale["currency"]) == (unit, 12 * unit, "UZS")
    assert sale["receipt_number"].startswith("JI-")
    card = post(f"{stack.urls[REGION]}/api/v1/office-sales", {"service_code": "computer-use", "quantity": 1, "method": "card"},
                **headers)
    assert card.status_code == 201, card.text
    refused = post(f"{stack.urls[REGION]}/api/v1/office-sales", {"service_code": PAID_SERVICE, "quantity": 1, "method": "cash"},
                   **headers)
    assert refused.status_code == 422 and "service_code" in refused.json()["fields"]
    after = requests.get(f"{stack.urls[REGION]}/api/v1/office-sales/takings", headers=headers, timeout=30).json()
    assert after["centre"] == sale["centre"]
    assert after["total_tiyin"] - before["total_tiyin"] == 12 * unit + card.json()["amount_tiyin"]


def test_refunds_a_withdrawal_before_work_and_a_wrong_refusal(stack):
    withdrawn = file_paid(stack)["tracking_number"]
    assert pay_at_desk(stack, withdrawn).status_code == 201
    with event_listener(stack.amqp_uri, f"{REGION}.application.refunded") as collect:
        assert move(stack, withdrawn, "withdrawn", "the citizen changed their mind").status_code == 200
        refused = file_paid(stack)["tracking_number"]
        assert pay_at_desk(stack, refused, method="card").status_code == 201
        for step in ("accepted", "in_review"):
            assert move(stack, refused, step).status_code == 200
        assert move(stack, refused, "rejected", "document missing").status_code == 200
        wrongly = post(f"{stack.urls[REGION]}/api/v1/applications/{refused}/refund",
                       {"reason": "the document was in the file"}, **auth(OFFICER, REGION))
        assert wrongly.status_code == 200, wrongly.text
        refunds = collect(until=lambda got: {body["data"]["tracking_number"] for _, body in got} >= {withdrawn, refused})
    assert application(stack, withdrawn)["invoice"]["state"] == "refunded"
    assert wrongly.json()["invoice"]["state"] == "refunded"
    by_number = {body["data"]["tracking_number"]: body["data"] for _, body in refunds}
    assert by_number[withdrawn]["payment"]["amount_tiyin"] == FEE and by_number[refused]["payment"]["method"] == "card"
    again = post(f"{stack.urls[REGION]}/api/v1/applications/{refused}/refund", {"reason": "again"}, **auth(OFFICER, REGION))
    assert again.status_code == 409
    unpaid = file_paid(stack)["tracking_number"]
    assert move(stack, unpaid, "withdrawn", "not needed").status_code == 200
    assert application(stack, unpaid)["invoice"]["state"] == "cancelled"


def test_reporting_counts_invoiced_paid_refunded_and_outstanding_per_centre_service_and_month(stack):
    centre = "yangiobod"  # a centre no other test files at: its figures are this test's alone
    reporting = stack.start("reporting", region=REGION, database_url=stack.databases.new("fees-reporting"))
    try:
        unpaid = file_paid(stack, centre=centre)
        paid = file_paid(stack, centre=centre)
        refunded = file_paid(stack, centre=centre)
        month = paid["submitted_at"][:7]
        assert pay_at_desk(stack, paid["tracking_number"]).status_code == 201
        assert pay_at_desk(stack, refunded["tracking_number"], method="card").status_code == 201
        assert move(stack, refunded["tracking_number"], "withdrawn", "changed their mind").status_code == 200
        assert unpaid["invoice"]["state"] == "issued"
        expected = {"invoices": 3, "invoiced_tiyin": 3 * FEE, "paid_tiyin": 2 * FEE, "refunded_tiyin": FEE,
                    "outstanding_tiyin": FEE}
        deadline, line = time.monotonic() + 60, None
        while time.monotonic() < deadline:
            report = requests.get(f"{reporting.url}/api/v1/reports/fees", headers=auth("analyst"), timeout=30).json()
            line = next((row for row in report["rows"]
                         if (row["month"], row["centre"], row["service_code"]) == (month, centre, PAID_SERVICE)), None)
            if line is not None and {key: line[key] for key in expected} == expected:
                break
            time.sleep(0.5)
        assert line is not None and {key: line[key] for key in expected} == expected, line
        assert all(isinstance(value, int) for value in report["totals"].values())
        csv = requests.get(f"{reporting.url}/api/v1/reports/fees", params={"format": "csv"}, headers=auth("analyst"), timeout=30)
        assert csv.status_code == 200 and f"{month},{centre},{PAID_SERVICE},3,{3 * FEE}" in csv.text
        public = requests.get(f"{reporting.url}/api/v1/open-data/summary", timeout=30).json()  # last month: totals only
        assert set(public["fees"]) == {"invoiced_tiyin", "paid_tiyin", "refunded_tiyin", "outstanding_tiyin"}
        assert "centre" not in str(public["fees"]) and "rows" not in public["fees"]
    finally:
        reporting.stop()


def test_money_is_counted_in_prometheus_by_region_service_and_movement_only(stack):
    filed = file_paid(stack)
    assert pay_at_desk(stack, filed["tracking_number"]).status_code == 201
    page = requests.get(f"http://127.0.0.1:{stack.intakes[REGION].metrics_port}/metrics", timeout=10).text
    lines = [line for line in page.splitlines() if line.startswith("oss_fees_tiyin_total{")]
    assert any('movement="paid"' in line and f'service_code="{PAID_SERVICE}"' in line for line in lines)
    assert filed["tracking_number"] not in page and filed["invoice"]["invoice_number"] not in page


LIMITED_BURST = 5


def test_payme_with_the_merchant_key_is_not_held_to_the_anonymous_rate_limit_but_wrong_keys_are(stack):
    """Payme's servers are few addresses: its authenticated calls pass the per-address limit of
    anonymous callers; calls without or with a wrong key count, so guessing the key is limited."""
    limited = stack.start("intake", region=REGION, database_url=stack.intake_db[REGION], migrate=False,
                          FORWARDED_HOPS=1, ANONYMOUS_RATE_LIMIT=f"{LIMITED_BURST}/3600")
    try:
        number = file_paid(stack)["invoice"]["invoice_number"]
        check = {"amount": FEE, "account": {"invoice": number}}

        def call(address, key):
            headers = {"X-Forwarded-For": address}
            if key is not None:
                headers["Authorization"] = "Basic " + base64.b64encode(f"Paycom:{key}".encode()).decode()
            return requests.post(f"{limited.url}/api/v1/payme", json={"id": 7, "method": "CheckPerformTransaction",
                                                                      "params": check}, headers=headers, timeout=30)

        payme_address = "203.0.113.10"
        answers = [call(payme_address, PAYME_KEY) for _ in range(LIMITED_BURST * 3)]
        assert [answer.status_code for answer in answers] == [200] * (LIMITED_BURST * 3)
        assert all(answer.json() == {"jsonrpc": "2.0", "id": 7, "result": {"allow": True}} for answer in answers)

        guesser = "203.0.113.20"
        guesses = [call(guesser, f"guess-{index}") for index in range(LIMITED_BURST)]
        assert all(guess.status_code == 200 and guess.json()["error"]["code"] == -32504 for guess in guesses)
        refused = call(guesser, "guess-again")
        assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
        anonymous = "203.0.113.30"
        burst = [call(anonymous, None) for _ in range(LIMITED_BURST + 1)]
        assert [answer.status_code for answer in burst] == [200] * LIMITED_BURST + [429]
        assert burst[0].json()["error"]["code"] == -32504

        # Payme's own address still passes with the key even after others used theirs up.
        assert call(payme_address, PAYME_KEY).json()["result"] == {"allow": True}
    finally:
        limited.stop()


def test_an_invoice_unpaid_after_its_due_date_is_cancelled_its_application_withdrawn_and_payment_refused(stack):
    """An invoice issued a week ago and due yesterday (its row is moved back in the database, as if
    time had passed): paying it is refused at the desk (409 naming the field) and by Payme (-31051);
    intake's periodic job cancels it, withdraws the application and announces it."""
    with event_listener(stack.amqp_uri, f"{REGION}.application.*") as collect:
        filed = file_paid(stack)
        number, tracking = filed["invoice"]["invoice_number"], filed["tracking_number"]
        engine = create_engine(stack.intake_db[REGION])
        with engine.begin() as connection:
            connection.execute(text("UPDATE invoices SET due_date = :day WHERE invoice_number = :number"),
                               {"day": local_date(utc_now()) - timedelta(days=1), "number": number})
        engine.dispose()

        refused = pay_at_desk(stack, tracking)
        assert refused.status_code == 409 and "invoice_number" in refused.json()["fields"], refused.text
        payme = PaymeClient(stack.urls[REGION])
        assert payme.error("CheckPerformTransaction", {"amount": FEE, "account": {"invoice": number}}) == -31051
        assert payme.error("CreateTransaction", {"id": uuid.uuid4().hex[:24], "time": now_ms(), "amount": FEE,
                                                 "account": {"invoice": number}}) == -31051
        assert application(stack, tracking)["status"] == "awaiting_payment"  # refusals change nothing

        expiring = stack.start("intake", region=REGION, database_url=stack.intake_db[REGION], migrate=False,
                               INVOICE_EXPIRY_CHECK_SECONDS=1)
        try:
            received = collect(until=lambda got: any(body["data"]["tracking_number"] == tracking
                                                     and body["type"] == "application.status_changed" for _, body in got),
                               timeout=30)
        finally:
            expiring.stop()
    (event,) = [body for _, body in received
                if body["data"]["tracking_number"] == tracking and body["type"] == "application.status_changed"]
    data = event["data"]
    assert (data["status"], data["previous_status"], data["final"]) == ("withdrawn", "awaiting_payment", True)
    assert data["invoice"]["state"] == "cancelled" and data["invoice"]["invoice_number"] == number
    assert "not paid" in data["reason"]
    withdrawn = application(stack, tracking)
    assert withdrawn["status"] == "withdrawn" and withdrawn["invoice"]["state"] == "cancelled"
    assert withdrawn["history"][-1]["reason"] == data["reason"]

    again = pay_at_desk(stack, tracking)
    assert again.status_code == 409 and "invoice_number" in again.json()["fields"]
    assert payme.error("CheckPerformTransaction", {"amount": FEE, "account": {"invoice": number}}) == -31051
