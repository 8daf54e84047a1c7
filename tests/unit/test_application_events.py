"""The application events' contract (oss_common.application_events): what intake dumps, every consumer
loads; where an application stands travels in the event, and version 1 bodies still load."""
from datetime import date, datetime, timezone
from types import SimpleNamespace

import pytest
from marshmallow import ValidationError

from oss_common import application_events
from oss_common.events import make_event
from services.intake.domain import AWAITING_DECISION, DECISIONS, FINAL, Status
from services.intake.events import event_data

SUBMITTED_AT = datetime(2026, 12, 14, 6, 0, tzinfo=timezone.utc)


def application(status, decided_at=None, version=2):
    return SimpleNamespace(version=version,
        tracking_number="JI-2026-000001", service_code="photocopying", service_version=3, agency="oss-centre",
        district="1708401", centre="jizzakh-city", status=status, submitted_at=SUBMITTED_AT,
        updated_at=decided_at or SUBMITTED_AT, decided_at=decided_at, due_date=date(2026, 12, 16), language="ru",
        channel="sms", applicant_phone="+998901234567", applicant_email=None, applicant_pinfl="31234567890123",
        applicant_name="A B", clock_paused_on=None, working_days_left=None, extensions=0)


def envelope(data, version=application_events.VERSION):
    return make_event(application_events.STATUS_CHANGED, "jizzakh", "intake_jizzakh", data, schema_version=version)


@pytest.mark.parametrize("status", list(Status))
def test_every_status_says_where_the_application_stands(status):
    fact = application_events.load(envelope(event_data(application(status), None, "officer:f", "in_review")))
    assert fact["open"] == (status in AWAITING_DECISION)
    assert fact["decided"] == (status in DECISIONS)
    assert fact["final"] == (status in FINAL)
    assert fact["previous_status"] == "in_review" and fact["status"] == status


def test_the_wire_form_is_plain_json_without_personal_data():
    decided = datetime(2026, 12, 17, 6, 0, tzinfo=timezone.utc)
    body = event_data(application("rejected", decided), {"names": {"uz": "Nusxa"}}, "officer:f")
    assert body["submitted_at"] == "2026-12-14T06:00:00.000000Z" and body["due_date"] == "2026-12-16"
    assert body["decided_on_time"] is False and body["service_name"] == {"uz": "Nusxa"}
    assert "applicant_pinfl" not in body and "31234567890123" not in str(body) and "A B" not in str(body)
    assert body["contact"] == {"phone": "+998901234567", "email": None}


@pytest.mark.parametrize("status,open_,decided,final", [
    ("submitted", True, False, False), ("resubmitted", True, False, False), ("approved", False, True, False),
    ("rejected", False, True, False), ("issued", False, False, True), ("withdrawn", False, False, True),
])
def test_a_version_1_body_is_read_by_the_statuses_version_1_knew(status, open_, decided, final):
    body = {key: value for key, value in event_data(application(status), None, "x").items()
            if key not in ("open", "decided", "final")}
    fact = application_events.load(envelope(body, version=1))
    assert (fact["open"], fact["decided"], fact["final"]) == (open_, decided, final)


def test_a_version_2_body_that_does_not_say_where_it_stands_is_malformed():
    body = {key: value for key, value in event_data(application("submitted"), None, "x").items() if key != "open"}
    with pytest.raises(ValidationError) as malformed:
        application_events.load(envelope(body))
    assert "open" in malformed.value.messages


def test_fields_a_later_version_adds_are_ignored_by_this_one():
    body = {**event_data(application("submitted"), None, "x"), "added_later": 1}
    assert "added_later" not in application_events.load(envelope(body))


def test_the_application_version_travels_and_orders_events_without_clocks():
    body = event_data(application("approved", version=4), None, "officer:f")
    assert body["version"] == 4
    fact = application_events.load(envelope(body))
    earlier_clock = SUBMITTED_AT.replace(year=2020)
    assert application_events.supersedes(fact, 3, SUBMITTED_AT.replace(year=2030))  # a later clock, an older version
    assert not application_events.supersedes(fact, 4, earlier_clock) and application_events.stored_version(fact) == 4


def test_version_2_bodies_without_an_application_version_keep_their_order_among_themselves():
    body = {key: value for key, value in event_data(application("approved"), None, "x").items() if key != "version"}
    fact = application_events.load(envelope(body, version=2))
    assert fact["version"] is None and application_events.stored_version(fact) == 0
    assert application_events.supersedes(fact, 0, SUBMITTED_AT.replace(year=2020))
    assert not application_events.supersedes(fact, 0, SUBMITTED_AT.replace(year=2030))
    assert not application_events.supersedes(fact, 1, SUBMITTED_AT.replace(year=2020)), "a versioned state is newer"
