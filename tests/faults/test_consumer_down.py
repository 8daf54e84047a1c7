"""Consumers down for a stretch of traffic, then back: regional reporting and notifications catch up
on what piled up in their queues, and their figures and deliveries are exact - nothing lost,
nothing doubled - and no applicant's PINFL, phone or name reaches a log or a metric meanwhile."""
import random
import time
from collections import Counter

import pytest
import requests
from eventlet.greenpool import GreenPool
from sqlalchemy import create_engine, text

from oss_common.regions import get_region
from tests.conftest import wait_for
from tests.integration.conftest import auth, pay_at_the_desk, post, valid_submission
from tests.integration.personal_data import assert_no_personal_data, personal_values, unique_applicant
from tests.integration.test_notifications import SmsGatewayDouble
from tests.integration.test_reporting import PATHS, as_counts, direct_figures, offered_services

REGION = "jizzakh"
# The demo files about one application a second per region: ten minutes' worth.
SUBMISSIONS = 600
ANALYST = auth("analyst")


@pytest.fixture
def gateway():
    double = SmsGatewayDouble().start()
    yield double
    double.stop()


def file_traffic(url, rng, count):
    """`count` submissions by applicants who each have their own PINFL, phone and name, each then
    moved along one of the workflow paths; returns the applicants."""
    area = get_region(REGION)
    templates = [valid_submission(REGION, code) for code in offered_services()]
    operator, officer = auth("operator", REGION), auth("officer", REGION, subject="backlog")
    cases = []
    for _ in range(count):
        centre = rng.choice(area.centres)
        applicant = unique_applicant(rng, channel=rng.choice(["sms", "sms", "none"]))
        cases.append((dict(rng.choice(templates), district=centre.district, centre=centre.code, applicant=applicant),
                      rng.choice(PATHS)))

    def file_one(case):
        body, path = case
        response = post(f"{url}/api/v1/applications", body, **operator)
        assert response.status_code == 201, response.text
        number = response.json()["tracking_number"]
        pay_at_the_desk(url, response.json(), operator)
        for status in path:
            moved = post(f"{url}/api/v1/applications/{number}/transitions", {"to": status, "reason": "backlog"}, **officer)
            assert moved.status_code == 200, moved.text
        return body["applicant"]

    return list(GreenPool(30).imap(file_one, cases))


def reported(process, path):
    response = requests.get(f"{process.url}/api/v1/reports/{path}", headers=ANALYST, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def rows(database_url, query):
    engine = create_engine(database_url)
    with engine.connect() as connection:
        result = connection.execute(text(query)).all()
    engine.dispose()
    return result


def test_reporting_and_notifications_down_for_600_submissions_catch_up_exactly(fault_stack, gateway):
    intake_db = fault_stack.databases.new(f"intake-{REGION}")
    reporting_db = fault_stack.databases.new(f"reporting-{REGION}")
    notifications_db = fault_stack.databases.new(f"notifications-{REGION}")
    channels = {"SMS_GATEWAY_URL": gateway.url, "SMS_GATEWAY_TOKEN": "test-token", "SMS_SENDER": "4546",
                "SEND_TIMEOUT_SECONDS": 3, "RETRY_BASE_SECONDS": 0.2, "DEADLINE_CHECK_SECONDS": 3600}
    intake = fault_stack.start("intake", region=REGION, database_url=intake_db)
    # Both consumers run once, so their durable queues exist and keep what arrives while they are down.
    fault_stack.start("reporting", region=REGION, database_url=reporting_db).stop()
    fault_stack.start("notifications", region=REGION, database_url=notifications_db, **channels).stop()

    started = time.monotonic()
    applicants = file_traffic(intake.url, random.Random(20260601), SUBMISSIONS)
    filed = time.monotonic() - started
    expected = direct_figures(intake_db)
    assert expected["total"] == SUBMISSIONS

    reporting = fault_stack.start("reporting", region=REGION, database_url=reporting_db)
    notifications = fault_stack.start("notifications", region=REGION, database_url=notifications_db, **channels)
    back = time.monotonic()

    def caught_up():
        summary = reported(reporting, "summary")
        return summary["totals"]["applications"] == expected["total"] and \
            as_counts(summary["by_status"], "status") == expected["counts"]["status"]

    wait_for(caught_up, 120, "reporting catching up", interval=0.5)
    reporting_seconds = time.monotonic() - back

    # Reporting's figures are exactly a direct count over intake's database.
    time.sleep(1.0)  # anything doubled would arrive now
    summary = reported(reporting, "summary")
    assert summary["totals"] == {"applications": expected["total"], "open": expected["open"]}
    for name, key in (("service", "service_code"), ("district", "district"), ("centre", "centre"),
                      ("channel", "channel"), ("status", "status")):
        assert as_counts(summary[f"by_{name}"], key) == expected["counts"][name], name
    sla = reported(reporting, "sla")
    assert {row["service_code"]: {"on_time": row["on_time"], "late": row["late"]} for row in sla["by_service"]} == \
        expected["decisions"]["service"]
    assert {row["district"]: {"on_time": row["on_time"], "late": row["late"]} for row in sla["by_district"]} == \
        expected["decisions"]["district"]

    # Notifications: one delivery per event and channel, every SMS sent once.
    events = {row.event_id: row for row in rows(intake_db, "SELECT event_id, event_type FROM outbox")}
    changes = rows(intake_db, "SELECT count(*) FROM status_changes")[0][0]
    assert len(events) == changes, "every status change has its event"

    def delivered():
        return rows(notifications_db, "SELECT count(*) FROM deliveries WHERE audience = 'citizen' "
                                      "AND status IN ('sent', 'skipped')")[0][0] >= len(events)

    wait_for(delivered, 120, "notifications catching up", interval=0.5)
    time.sleep(1.0)
    deliveries = rows(notifications_db, "SELECT event_id, channel, status FROM deliveries WHERE audience = 'citizen'")
    assert Counter((row.event_id, row.channel) for row in deliveries).most_common(1)[0][1] == 1
    assert {row.event_id for row in deliveries} == set(events), "one delivery per event, none lost"
    assert {row.status for row in deliveries} <= {"sent", "skipped"}
    sms_events = Counter(row.tracking_number for row in rows(
        intake_db, "SELECT a.tracking_number FROM status_changes s JOIN applications a ON a.id = s.application_id "
                   "WHERE a.channel = 'sms'"))
    sent = Counter()
    numbers = {row.applicant_phone[1:]: row.tracking_number for row in rows(
        intake_db, "SELECT tracking_number, applicant_phone FROM applications")}
    for phone, _message, _authorization in gateway.accepted:
        sent[numbers[phone]] += 1
    assert sent == sms_events, "each SMS sent exactly once"

    # Nothing personal in any log or metric of the processes that carried all this.
    values = [value for applicant in applicants for value in personal_values(applicant)]
    assert assert_no_personal_data(fault_stack.processes, values) >= 6
    print(f"{SUBMISSIONS} submissions with {len(events)} events filed in {filed:.1f}s while the consumers were down; "
          f"reporting caught up {reporting_seconds:.1f}s after its start")
    notifications.stop()
    reporting.stop()
