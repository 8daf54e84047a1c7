"""The legal clock against the real stack (SQLite and PostgreSQL): an application returned twice, extended once
and moved by a closure day of its centre ends with the due date computed by hand below, every step is in its
history, and reporting's overdue list and on-time figure use the net time.

Each day of the story is an intake process of Jizzakh whose clock (CLOCK_OFFSET_SECONDS) stands at 11:00 in
Tashkent on that day of 2026; they share the region's database, as a region's processes do."""
import time
from datetime import date, datetime, timezone

import pytest
import requests

from tests.integration.conftest import auth, seed_service, valid_submission

pytestmark = pytest.mark.integration
REGION = "jizzakh"
SERVICE = "agro-subsidy-application"  # 15 working days; extended by at most 10, once; offered in Jizzakh only
OFFICER, OPERATOR, ANALYST = auth("officer", REGION), auth("operator", REGION), auth("analyst")
DAYS = {
    "filed": date(2026, 3, 2),          # Mon
    "returned": date(2026, 3, 5),       # Thu
    "resubmitted": date(2026, 3, 11),   # Wed, after Women's Day (Sun 8, observed Mon 9)
    "returned_again": date(2026, 3, 16),  # Mon
    "resubmitted_again": date(2026, 3, 24),  # Tue, after Eid al-Fitr (Fri 20) and Navruz (Sat 21, observed Mon 23)
    "decided": date(2026, 4, 13),       # Mon
}
# By hand, over Uzbekistan's 2026 calendar:
# filed Mon 2 March, 15 working days: 3 4 5 6 | 10 11 12 13 | 16 17 18 19 | 24 25 26 -> Thu 26 March (gross)
# returned Thu 5 March: 3, 4 and 5 used, 12 left
# resubmitted Wed 11 March: 12 13 | 16 17 18 19 | 24 25 26 27 | 30 31 -> Tue 31 March
# returned again Mon 16 March: left are 17 18 19 24 25 26 27 30 31 = 9
# resubmitted again Tue 24 March: 25 26 27 | 30 31 1 2 3 | 6 -> Mon 6 April
# extended the same day by 4: 7 8 9 10 -> Fri 10 April
# the centre closed on Thu 26 March (a power cut): one working day back -> Mon 13 April
DUE_GROSS, DUE_RESUMED, DUE_RESUMED_AGAIN = date(2026, 3, 26), date(2026, 3, 31), date(2026, 4, 6)
DUE_EXTENDED, DUE_FINAL = date(2026, 4, 10), date(2026, 4, 13)


def at_eleven(day):
    return datetime(day.year, day.month, day.day, 6, 0, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def story(stack):
    """An intake process per day of the story and a reporting process of Jizzakh, on this backend."""
    reporting = stack.start("reporting", region=REGION, database_url=stack.databases.new("reporting-clock"), wait=False)
    started = {}
    for name, day in DAYS.items():
        offset = (at_eleven(day) - datetime.now(timezone.utc)).total_seconds()
        started[name] = stack.start("intake", region=REGION, database_url=stack.intake_db[REGION], migrate=False,
                                    wait=False, CLOCK_OFFSET_SECONDS=offset)
    for process in (reporting, *started.values()):
        process.wait_healthy()
    yield {name: process.url for name, process in started.items()}, reporting.url
    for process in (reporting, *started.values()):
        process.stop()


def move(url, number, to, reason=None):
    answer = requests.post(f"{url}/api/v1/applications/{number}/transitions", json={"to": to, "reason": reason},
                           headers=OFFICER, timeout=30)
    assert answer.status_code == 200, answer.text
    return answer.json()


def extend(url, number, working_days, reason="the water authority's opinion is awaited"):
    return requests.post(f"{url}/api/v1/applications/{number}/extensions",
                         json={"working_days": working_days, "reason": reason}, headers=OFFICER, timeout=30)


def overdue_numbers(reporting_url):
    answer = requests.get(f"{reporting_url}/api/v1/reports/overdue", headers=ANALYST, timeout=30)
    assert answer.status_code == 200, answer.text
    return {item["tracking_number"]: item["due_date"] for item in answer.json()["items"]}


def wait_until(check, what, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_returned_twice_extended_once_and_a_closure_day_end_on_the_due_date_computed_by_hand(story):
    intakes, reporting_url = story
    body = valid_submission(REGION, SERVICE)
    body["applicant"] = dict(body["applicant"], channel="none")
    filed = requests.post(f"{intakes['filed']}/api/v1/applications", json=body, headers=OPERATOR, timeout=30)
    assert filed.status_code == 201, filed.text
    number, centre, code = filed.json()["tracking_number"], filed.json()["centre"], filed.json()["status_code"]
    assert filed.json()["due_date"] == DUE_GROSS.isoformat()
    # In December 2026 it is long overdue, and reporting says so...
    wait_until(lambda: overdue_numbers(reporting_url).get(number) == DUE_GROSS.isoformat(), "the filing in reporting")

    returned = move(intakes["returned"], number, "returned_for_correction", "the land lease contract is unsigned")
    assert returned["clock"] == {"paused": True, "working_days_left": 12, "started_on": "2026-03-02", "extensions": 0}
    # ...but not while its clock is stopped: the citizen has it, and the status page says so.
    wait_until(lambda: number not in overdue_numbers(reporting_url), "the pause in reporting")
    status = requests.post(f"{intakes['returned']}/api/v1/status/{number}", json={"code": code}, timeout=30)
    assert status.status_code == 200 and status.json()["clock_paused"] is True, status.text

    assert move(intakes["resubmitted"], number, "resubmitted")["due_date"] == DUE_RESUMED.isoformat()
    wait_until(lambda: overdue_numbers(reporting_url).get(number) == DUE_RESUMED.isoformat(), "the resumption in reporting")
    assert move(intakes["returned_again"], number, "returned_for_correction", "the area differs from the cadastre")[
        "clock"]["working_days_left"] == 9
    resubmitted = move(intakes["resubmitted_again"], number, "resubmitted")
    assert resubmitted["due_date"] == DUE_RESUMED_AGAIN.isoformat() and not resubmitted["clock"]["paused"]

    # An extension beyond the service's 10 working days, or without a reason, is refused and changes nothing.
    too_long = extend(intakes["resubmitted_again"], number, 11)
    assert too_long.status_code == 422 and "working_days" in too_long.json()["fields"], too_long.text
    no_reason = extend(intakes["resubmitted_again"], number, 4, reason="  ")
    assert no_reason.status_code == 422 and "reason" in no_reason.json()["fields"], no_reason.text
    extended = extend(intakes["resubmitted_again"], number, 4)
    assert extended.status_code == 200, extended.text
    assert extended.json()["due_date"] == DUE_EXTENDED.isoformat() and extended.json()["clock"]["extensions"] == 1
    again = extend(intakes["resubmitted_again"], number, 1)
    assert again.status_code == 409 and "extensions" in again.json()["fields"], again.text

    closure = requests.post(f"{intakes['resubmitted_again']}/api/v1/centres/{centre}/closures",
                            json={"day": "2026-03-26", "reason": "power cut"}, headers=auth("region-admin", REGION),
                            timeout=30)
    assert closure.status_code == 201, closure.text
    assert closure.json()["applications_moved"] == 1 and closure.json()["declared_by"] == "region-admin:test-region-admin"
    twice = requests.post(f"{intakes['resubmitted_again']}/api/v1/centres/{centre}/closures",
                          json={"day": "2026-03-26", "reason": "power cut"}, headers=auth("region-admin", REGION), timeout=30)
    assert twice.status_code == 409 and "day" in twice.json()["fields"]
    other_head = requests.post(f"{intakes['resubmitted_again']}/api/v1/centres/{centre}/closures",
                               json={"day": "2026-03-27", "reason": "power cut"},
                               headers=auth("centre-head", REGION, centres=["no-such-centre"]), timeout=30)
    assert other_head.status_code == 403 and "centre" in other_head.json()["fields"]

    for status in ("accepted", "in_review", "approved"):
        decided = move(intakes["decided"], number, status)
    assert decided["due_date"] == DUE_FINAL.isoformat()
    history = [(entry["to"], entry["clock"], entry["working_days"], entry["due_date"]) for entry in decided["history"]]
    assert history == [
        ("submitted", "started", 15, "2026-03-26"),
        ("returned_for_correction", "paused", 12, "2026-03-26"),
        ("resubmitted", "resumed", None, "2026-03-31"),
        ("returned_for_correction", "paused", 9, "2026-03-31"),
        ("resubmitted", "resumed", None, "2026-04-06"),
        ("resubmitted", "extended", 4, "2026-04-10"),
        ("resubmitted", "closure", None, "2026-04-13"),
        ("accepted", None, None, "2026-04-13"),
        ("in_review", None, None, "2026-04-13"),
        ("approved", None, None, "2026-04-13"),
    ]
    assert decided["history"][5]["actor"] == "officer:test-officer"
    assert decided["history"][5]["reason"] == "the water authority's opinion is awaited"
    assert decided["history"][6]["reason"] == "power cut"
    status = requests.post(f"{intakes['decided']}/api/v1/status/{number}", json={"code": code}, timeout=30).json()
    assert status["clock_paused"] is False and status["due_date"] == DUE_FINAL.isoformat()
    assert [entry["status"] for entry in status["history"]] == [  # an extension or a closure is no status change
        "submitted", "returned_for_correction", "resubmitted", "returned_for_correction", "resubmitted", "accepted",
        "in_review", "approved"]

    # Decided on Mon 13 April: on time by the net clock (the gross due date was 26 March).
    def sla():
        answer = requests.get(f"{reporting_url}/api/v1/reports/sla", params={"from": "2026-04-13", "to": "2026-04-13"},
                              headers=ANALYST, timeout=30)
        assert answer.status_code == 200, answer.text
        return next((row for row in answer.json()["by_service"] if row["service_code"] == SERVICE), None)

    row = wait_until(sla, "the decision in reporting")
    assert (row["on_time"], row["late"], row["compliance"]) == (1, 0, 1.0)
    assert number not in overdue_numbers(reporting_url)
    closures = requests.get(f"{intakes['decided']}/api/v1/closures", params={"from": "2026-03-01", "to": "2026-03-31"},
                            headers=auth("centre-head", REGION, centres=[centre]), timeout=30)
    assert closures.status_code == 200 and [(item["centre"], item["day"]) for item in closures.json()["items"]] == [
        (centre, "2026-03-26")]


def test_the_catalogue_serves_each_services_clock_and_refuses_a_bad_one_naming_the_field(stack):
    served = requests.get(f"{stack.urls['catalogue']}/api/v1/services/{SERVICE}", headers=ANALYST, timeout=30)
    assert served.status_code == 200
    assert served.json()["clock"] == {"stops_on_return": True, "extension_working_days": 10, "max_extensions": 1}
    definition = {key: value for key, value in seed_service(SERVICE).items() if key != "state"}
    bad = dict(definition, clock={"stops_on_return": True, "extension_working_days": -1, "max_extensions": 1})
    refused = requests.put(f"{stack.urls['catalogue']}/api/v1/services/{SERVICE}", json=bad,
                           headers=auth("catalogue-admin"), timeout=30)
    assert refused.status_code in (400, 422) and "clock" in str(refused.json()["fields"]), refused.text
    again = requests.get(f"{stack.urls['catalogue']}/api/v1/services/{SERVICE}", headers=ANALYST, timeout=30).json()
    assert again["version"] == served.json()["version"]
