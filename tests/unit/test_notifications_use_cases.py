"""Notifications' use cases with a fake unit of work (as cosmicpython tests its handlers): no database, no
broker, no gateway. The worker tests (test_notifications_service.py) run the same on a real SQLite session."""
from datetime import date, datetime, timedelta, timezone
from types import SimpleNamespace

import pytest
from marshmallow import ValidationError
from sqlalchemy.exc import OperationalError

from oss_common import application_events
from oss_common.events import make_event
from oss_common.unit_of_work import UnitOfWork
from services.notifications import use_cases
from services.notifications.commands import WatchDeadlines, citizen_notice
from services.notifications.domain import FAILED, PENDING, SENT, DeliveryPolicy
from services.notifications.exceptions import DeliveryDeferred, DeliveryFailed, PermanentFailure, TemporaryFailure
from services.notifications.messages import TemplateBook
from tests.unit.test_notifications_service import FakeChannels, Observer, application_event

MONDAY = datetime(2026, 12, 14, 6, 0, tzinfo=timezone.utc)


class FakeDeliveries:
    def __init__(self):
        self.rows = {}

    def open(self, **values):
        key = (values["event_id"], values["channel"])
        created = key not in self.rows
        if created:
            self.rows[key] = SimpleNamespace(**{"status": PENDING, "attempts": 0, "attempt_started_at": None,
                                                "next_attempt_at": None, "last_error": None, **values})
        return self.rows[key], created

    def claim(self, delivery, now):
        if delivery.status != PENDING or delivery.attempt_started_at is not None:
            return False
        delivery.attempts += 1
        delivery.attempt_started_at = now
        return True

    def settle(self, delivery, status, error=None, next_attempt_at=None):
        delivery.status, delivery.last_error, delivery.next_attempt_at = status, error, next_attempt_at
        delivery.attempt_started_at = None

    def fail(self, delivery, error, now):
        if delivery.status != PENDING:
            return False
        delivery.status, delivery.last_error, delivery.attempt_started_at = FAILED, error, None
        return True

    def stale(self, started_before, limit):
        return [row for row in self.rows.values()
                if row.status == PENDING and row.attempt_started_at and row.attempt_started_at < started_before]

    def due_agency_notices(self, now, limit):
        return [row for row in self.rows.values() if row.audience == "agency" and row.status == PENDING
                and row.attempt_started_at is None and (row.next_attempt_at is None or row.next_attempt_at <= now)]


class FakeWatched:
    def __init__(self):
        self.rows = {}

    def keep(self, region, fact):
        kept = self.rows.get(fact["tracking_number"])
        if kept is None or kept.version < application_events.stored_version(fact):
            self.rows[fact["tracking_number"]] = SimpleNamespace(
                tracking_number=fact["tracking_number"], region=region, service_code=fact["service_code"],
                service_name=fact["service_name"], agency=fact["agency"], status=fact["status"], is_open=fact["open"],
                due_date=fact["due_date"], version=application_events.stored_version(fact), clock_paused=fact["clock_paused"],
                deadline_notice=kept.deadline_notice if kept and kept.due_date == fact["due_date"] else None)

    def get(self, tracking_number):
        return self.rows.get(tracking_number)

    def needing_notice(self, today, horizon, limit):
        return [row for row in self.rows.values() if row.is_open and not row.clock_paused and row.due_date <= horizon
                and (row.deadline_notice is None or (row.deadline_notice == "due_soon" and row.due_date < today))]


class FakeUnitOfWork(UnitOfWork):
    def __init__(self, channels=None, **policy):
        settings = {"region": "jizzakh", "producer": "notifications_jizzakh",
                    "agency_addresses": {"khokimiyat": "hokim@jizzakh.example.uz"}, **policy}
        self.policy = DeliveryPolicy(**settings)
        super().__init__(self.policy.region, self.policy.producer)
        self.channels = channels or FakeChannels()
        self.templates = TemplateBook()
        self.observe = Observer()
        self.deliveries = FakeDeliveries()
        self.watched = FakeWatched()
        self.published = []
        self.commits = 0

    def _commit(self):
        self.published.extend(self.events)
        self.commits += 1

    def _rollback(self):
        pass


def notify(uow, **event):
    return use_cases.notify_citizen(uow, citizen_notice(application_event(**event)))


def test_a_citizen_hears_once_in_their_language_however_often_the_event_comes():
    uow = FakeUnitOfWork()
    event = application_event(language="ru")
    use_cases.notify_citizen(uow, citizen_notice(event))
    delivery = use_cases.notify_citizen(uow, citizen_notice(event))
    [(channel, address, message, _)] = uow.channels.sent
    assert (channel, address, delivery.status, delivery.attempts) == ("sms", "+998901234567", SENT, 1)
    assert message.subject == "Ваша заявка принята: JI-2026-000001"
    assert uow.observe.settled == [("sms", "sent")] and uow.published == []


def test_channel_none_is_recorded_as_skipped_and_nothing_is_sent():
    uow = FakeUnitOfWork()
    delivery = notify(uow, channel="none")
    assert (delivery.channel, delivery.status) == ("none", "skipped") and uow.channels.sent == []


def test_a_failure_that_passes_keeps_the_delivery_pending_until_it_is_sent():
    uow = FakeUnitOfWork(FakeChannels(TemporaryFailure("SMS gateway answered 503")), retry_base_seconds=0.1)
    event = application_event()
    with pytest.raises(DeliveryDeferred):
        use_cases.notify_citizen(uow, citizen_notice(event))
    [delivery] = uow.deliveries.rows.values()
    assert (delivery.status, delivery.attempts, delivery.last_error) == (PENDING, 1, "SMS gateway answered 503")
    assert delivery.next_attempt_at is not None and uow.observe.retries == 1
    use_cases.notify_citizen(uow, citizen_notice(event))
    assert (delivery.status, delivery.attempts, len(uow.channels.sent)) == (SENT, 2, 1)


def test_a_refused_message_fails_for_good_and_raises_notification_failed_in_its_commit():
    uow = FakeUnitOfWork(FakeChannels(PermanentFailure("SMS gateway refused the message (400)")))
    with pytest.raises(DeliveryFailed):
        notify(uow)
    [event] = uow.published
    assert event["type"] == "notification.failed" and event["data"]["error"] == "SMS gateway refused the message (400)"
    assert "+998901234567" not in str(event)


def test_an_attempt_cut_off_mid_send_is_failed_by_the_watch_never_repeated():
    uow = FakeUnitOfWork()
    delivery, _ = uow.deliveries.open(tracking_number="JI-2026-000001", region="jizzakh", event_id="e1",
                                      event_type="application.submitted", audience="citizen", channel="sms", language="uz")
    uow.deliveries.claim(delivery, MONDAY - timedelta(minutes=10))
    use_cases.watch_deadlines(uow, WatchDeadlines(now=MONDAY))
    assert delivery.status == FAILED and "outcome unknown" in delivery.last_error and uow.channels.sent == []
    assert [event["type"] for event in uow.published] == ["notification.failed"]


class DatabaseAwayWhileSettling(FakeDeliveries):
    """Recording an outcome meets `failures` (a database that is away) before it goes through."""

    def __init__(self, *failures):
        super().__init__()
        self.failures = list(failures)
        self.settle_tries = 0

    def settle(self, delivery, status, error=None, next_attempt_at=None):
        self.settle_tries += 1
        if self.failures:
            raise self.failures.pop(0)
        super().settle(delivery, status, error, next_attempt_at)


def database_away():
    return OperationalError("UPDATE deliveries", {}, ConnectionRefusedError("connection refused"))


def test_a_sent_message_is_recorded_as_sent_through_a_database_outage_and_never_sent_again():
    uow = FakeUnitOfWork(retry_base_seconds=0.01, retry_ceiling_seconds=0.02, record_outcome_for=timedelta(seconds=30))
    uow.deliveries = DatabaseAwayWhileSettling(database_away(), database_away(), database_away())
    event = application_event()
    delivery = use_cases.notify_citizen(uow, citizen_notice(event))
    assert (delivery.status, delivery.attempts, uow.deliveries.settle_tries) == (SENT, 1, 4)
    use_cases.notify_citizen(uow, citizen_notice(event))  # the event again: nothing more is sent
    assert len(uow.channels.sent) == 1 and uow.observe.settled == [("sms", "sent")]


def test_recording_an_outcome_gives_up_past_its_time_and_at_once_on_what_does_not_pass():
    uow = FakeUnitOfWork(retry_base_seconds=0.01, retry_ceiling_seconds=0.01, record_outcome_for=timedelta(seconds=0.1))
    uow.deliveries = DatabaseAwayWhileSettling(*[database_away() for _ in range(1000)])
    with pytest.raises(OperationalError):
        notify(uow)
    [delivery] = uow.deliveries.rows.values()
    assert delivery.attempt_started_at is not None, "still claimed: the watch decides later, nothing is sent again"
    assert 2 < uow.deliveries.settle_tries < 1000
    bug = FakeUnitOfWork(record_outcome_for=timedelta(seconds=30))
    bug.deliveries = DatabaseAwayWhileSettling(KeyError("status"))
    with pytest.raises(KeyError):
        notify(bug)
    assert bug.deliveries.settle_tries == 1


def test_the_deadline_watch_tells_the_agency_once_per_threshold():
    uow = FakeUnitOfWork()
    notify(uow, number="JI-2026-000010", channel="none", due_date=date(2026, 12, 11))  # overdue on Monday
    notify(uow, number="JI-2026-000011", channel="none", due_date=date(2026, 12, 14))  # due that day
    notify(uow, number="JI-2026-000012", channel="none", due_date=date(2026, 12, 14), agency="cadastre-agency")
    notify(uow, number="JI-2026-000013", channel="none", due_date=date(2026, 12, 31))
    for _ in range(3):
        use_cases.watch_deadlines(uow, WatchDeadlines(now=MONDAY))
    notices = sorted((row.tracking_number, row.event_type, row.channel, row.status)
                     for row in uow.deliveries.rows.values() if row.audience == "agency")
    assert notices == [("JI-2026-000010", "deadline.overdue", "email", "sent"),
                       ("JI-2026-000011", "deadline.due_soon", "email", "sent"),
                       ("JI-2026-000012", "deadline.due_soon", "none", "skipped")]
    assert [address for _, address, _, _ in uow.channels.sent] == ["hokim@jizzakh.example.uz"] * 2


def test_other_application_events_are_no_command_and_a_malformed_body_is_refused():
    assert citizen_notice(make_event("application.comment_added", "jizzakh", "intake_jizzakh", {})) is None
    event = application_event()
    del event["data"]["due_date"]
    with pytest.raises(ValidationError, match="due_date"):
        citizen_notice(event)


def test_the_clock_paused_resumed_and_extended_are_told_and_a_paused_application_is_not_overdue():
    uow = FakeUnitOfWork()
    notify(uow, number="JI-2026-000020", language="en", due_date=date(2026, 12, 11))
    notify(uow, event_type="application.status_changed", number="JI-2026-000020", language="en", version=2,
           status="returned_for_correction", previous_status="submitted", reason="no stamp", due_date=date(2026, 12, 11),
           clock_paused=True, working_days_left=0, clock_change="paused")
    use_cases.watch_deadlines(uow, WatchDeadlines(now=MONDAY))
    assert not [row for row in uow.deliveries.rows.values() if row.audience == "agency"]  # the citizen has it
    notify(uow, event_type="application.status_changed", number="JI-2026-000020", language="en", version=3,
           status="resubmitted", previous_status="returned_for_correction", due_date=date(2026, 12, 14),
           clock_change="resumed")
    notify(uow, event_type="application.deadline_extended", number="JI-2026-000020", language="en", version=4,
           status="resubmitted", reason="expert opinion", due_date=date(2026, 12, 17), extensions=1,
           clock_change="extended", extended_by=3)
    subjects = [message.subject for _, _, message, _ in uow.channels.sent]
    assert subjects[1:] == ["Application JI-2026-000020: returned, time limit paused",
                            "Application JI-2026-000020: resubmitted, time limit running again",
                            "Application JI-2026-000020: time limit extended"]
    assert "0 working day(s) remain" in uow.channels.sent[1][2].body
    assert "extended by 3 working day(s)" in uow.channels.sent[3][2].body and "Reason: expert opinion" in uow.channels.sent[3][2].body


def test_a_due_date_moved_by_a_closure_day_reaches_the_watch_but_not_the_citizen():
    uow = FakeUnitOfWork()
    notify(uow, number="JI-2026-000030", channel="sms", due_date=date(2026, 12, 14))
    assert notify(uow, event_type="application.due_date_moved", number="JI-2026-000030", version=2,
                  due_date=date(2026, 12, 15), clock_change="closure", reason="power cut") is None
    assert uow.watched.get("JI-2026-000030").due_date == date(2026, 12, 15)
    assert len(uow.channels.sent) == 1 and len(uow.deliveries.rows) == 1
