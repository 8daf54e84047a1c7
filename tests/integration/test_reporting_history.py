"""Reporting of a month that has ended, against the real broker and a real reporting process: open
data withholds small cells, late decisions count as late, and the overdue list names open
applications past their due date - figures the live load of test_reporting.py cannot reach, since
everything it files is decided on the day it is filed.

The month's history is published on the bus as intake would have published it (same envelope,
same routing keys), for a region whose reporting reads nothing else in this stack."""
import time
from collections import Counter
from datetime import datetime, time as clock, timedelta, timezone

import pytest
import requests
from kombu import Connection, Producer

from oss_common.calendar import TASHKENT, add_working_days, local_date
from oss_common.events import EVENTS_EXCHANGE, make_event, rfc3339, routing_key, utc_now
from tests.integration.conftest import auth

pytestmark = pytest.mark.integration
REGION = "syrdarya"
ANALYST = auth("analyst")
# (service, district, how many, what became of them): one cell of 3 and one of 4 must be withheld.
HISTORY = [
    ("residence-registration", "1724401", 7, "approved_on_time"),
    ("residence-registration", "1724401", 2, "approved_late"),
    ("photocopying", "1724401", 6, "rejected_on_time"),
    ("photocopying", "1724406", 4, "open_overdue"),
    ("preschool-enrolment", "1724406", 3, "approved_late"),
]


def last_month():
    first_of_this_month = local_date(utc_now()).replace(day=1)
    first = (first_of_this_month - timedelta(days=1)).replace(day=1)
    return first, first_of_this_month - timedelta(days=1)


def envelopes():
    """Submitted on the 2nd of last month at 10:00 Tashkent, due 5 working days later; each then
    decided on its due date (on time), 3 days after it (late), or left open (overdue today)."""
    first, _last = last_month()
    submitted_at = datetime.combine(first + timedelta(days=1), clock(10, 0), tzinfo=TASHKENT).astimezone(timezone.utc)
    due_date = add_working_days(local_date(submitted_at), 5)
    events, number = [], 0
    for service, district, count, outcome in HISTORY:
        for _ in range(count):
            number += 1
            base = {"tracking_number": f"SI-{first.year}-{number:06d}", "service_code": service, "agency": "khokimiyat",
                    "district": district, "centre": f"centre-{district}", "channel": "sms",
                    "submitted_at": rfc3339(submitted_at), "due_date": due_date.isoformat()}
            events.append(make_event("application.submitted", REGION, "intake_syrdarya",
                                     {**base, "status": "submitted", "version": 1, "changed_at": rfc3339(submitted_at)}))
            if outcome == "open_overdue":
                continue
            decided_day = due_date if outcome.endswith("on_time") else due_date + timedelta(days=3)
            decided_at = datetime.combine(decided_day, clock(12, 0), tzinfo=TASHKENT).astimezone(timezone.utc)
            events.append(make_event("application.status_changed", REGION, "intake_syrdarya",
                                     {**base, "status": outcome.split("_")[0], "version": 2, "changed_at": rfc3339(decided_at)},
                                     occurred_at=decided_at))
    return events


@pytest.fixture(scope="module")
def history(stack):
    process = stack.start("reporting", region=REGION, database_url=stack.databases.new(f"reporting-{REGION}"))
    sent = envelopes()
    with Connection(stack.amqp_uri, transport_options={"confirm_publish": True}) as connection:
        producer = Producer(connection.channel(), exchange=EVENTS_EXCHANGE, serializer="json")
        for envelope in [*sent, *sent[::3]]:  # a third of them twice
            producer.publish(envelope, routing_key=routing_key(envelope), delivery_mode=2)
    total = sum(count for _service, _district, count, _outcome in HISTORY)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if get(process, "/api/v1/reports/summary", headers=ANALYST)["totals"]["applications"] == total:
            break
        time.sleep(0.3)
    yield process
    process.stop()


def get(process, path, **kwargs):
    response = requests.get(f"{process.url}{path}", timeout=30, **kwargs)
    assert response.status_code == 200, response.text
    return response.json()


def expected_cells(index):
    counts = Counter()
    for row in HISTORY:
        counts[row[index]] += row[2]
    return counts


def test_open_data_of_last_month_withholds_every_cell_under_five(history):
    first, last = last_month()
    body = get(history, "/api/v1/open-data/summary")  # no token: public
    assert (body["month"], body["from"], body["to"]) == (first.strftime("%Y-%m"), first.isoformat(), last.isoformat())
    assert body["totals"]["applications"] == 22
    by_service = {row["service_code"]: row for row in body["by_service"]}
    # preschool-enrolment (3) is withheld, and with it the next smallest, residence-registration (9):
    # the published total less the other cells would give a lone withheld cell away.
    assert by_service["photocopying"] == {"service_code": "photocopying", "applications": 10, "suppressed": False}
    assert by_service["preschool-enrolment"] == {"service_code": "preschool-enrolment", "applications": None,
                                                 "suppressed": True}
    assert by_service["residence-registration"]["suppressed"] and by_service["residence-registration"]["applications"] is None
    assert {row["district"]: row["applications"] for row in body["by_district"]} == dict(expected_cells(1))
    by_status = {row["status"]: row for row in body["by_status"]}
    # approved 12, rejected 6 shown; submitted 4 withheld, and with it the next smallest (rejected),
    # since the total less the others would give a lone withheld cell away.
    assert by_status["approved"]["applications"] == 12
    assert by_status["submitted"]["suppressed"] and by_status["rejected"]["suppressed"]
    for dimension in ("service", "district", "channel", "status"):
        for row in body[f"by_{dimension}"]:
            assert row["applications"] is None or row["applications"] >= 5, row
    assert get(history, "/api/v1/open-data/summary", params={"month": first.strftime("%Y-%m")}) == body


def test_late_decisions_count_as_late_per_service_and_district(history):
    first, last = last_month()
    sla = get(history, "/api/v1/reports/sla", headers=ANALYST,
              params={"from": first.isoformat(), "to": (last + timedelta(days=40)).isoformat()})
    by_service = {row["service_code"]: row for row in sla["by_service"]}
    assert (by_service["residence-registration"]["on_time"], by_service["residence-registration"]["late"]) == (7, 2)
    assert (by_service["photocopying"]["on_time"], by_service["photocopying"]["late"]) == (6, 0)
    assert (by_service["preschool-enrolment"]["on_time"], by_service["preschool-enrolment"]["late"]) == (0, 3)
    assert sla["totals"]["on_time"] == 13 and sla["totals"]["late"] == 5
    assert sla["totals"]["compliance"] == pytest.approx(13 / 18, abs=0.001)
    by_district = {row["district"]: row for row in sla["by_district"]}
    assert (by_district["1724401"]["on_time"], by_district["1724401"]["late"]) == (13, 2)
    assert (by_district["1724406"]["on_time"], by_district["1724406"]["late"]) == (0, 3)


def test_the_overdue_list_names_open_applications_past_due_and_nothing_personal(history):
    overdue = get(history, "/api/v1/reports/overdue", headers=ANALYST)
    today = local_date(utc_now())
    assert overdue["as_of"] == today.isoformat()
    assert overdue["overdue"] == 4 and overdue["open_backlog"] == 4
    assert {item["service_code"] for item in overdue["items"]} == {"photocopying"}
    for item in overdue["items"]:
        assert set(item) == {"tracking_number", "service_code", "district", "centre", "status", "due_date", "days_overdue"}
        assert item["days_overdue"] == (today - datetime.fromisoformat(item["due_date"]).date()).days > 0


def test_a_period_narrows_the_summary_to_the_applications_filed_in_it(history):
    first, last = last_month()
    inside = get(history, "/api/v1/reports/summary", headers=ANALYST, params={"from": first.isoformat(), "to": last.isoformat()})
    assert inside["totals"]["applications"] == 22
    assert {row["district"]: row["applications"] for row in inside["by_district"]} == dict(expected_cells(1))
    before = get(history, "/api/v1/reports/summary", headers=ANALYST,
                 params={"to": (first - timedelta(days=1)).isoformat()})
    assert before["totals"]["applications"] == 0
    after = get(history, "/api/v1/reports/summary", headers=ANALYST, params={"from": (last + timedelta(days=1)).isoformat()})
    assert after["totals"]["applications"] == 0
