"""The notifications service as single workers (worker_factory) on an in-memory SQLite session, with
fake channels: at most one message per event and channel, retries, failures, the deadline watch."""
from datetime import timedelta
from types import SimpleNamespace

import pytest
from marshmallow import ValidationError
from nameko.testing.services import worker_factory
from sqlalchemy import create_engine, select, update
from sqlalchemy.orm import sessionmaker

from oss_common.auth import OPERATOR, Principal
from oss_common.calendar import add_working_days, local_date
from oss_common.config import ConfigurationError
from oss_common.consumers import DeadLetter
from oss_common.events import make_event, rfc3339, utc_now
from services.notifications import use_cases
from services.notifications.commands import WatchDeadlines
from services.notifications.repository import Deliveries
from services.notifications.dependencies import Channels, Policy
from services.notifications.domain import DeliveryPolicy
from services.notifications.exceptions import DeliveryDeferred, PermanentFailure, TemporaryFailure
from services.notifications.messages import TemplateBook
from services.notifications.models import Base, Delivery, OutboxEvent, WatchedApplication
from services.notifications.service import NotificationService
from tests.conftest import CallerAs

PHONE, EMAIL = "+998901234567", "aziza@example.uz"
NAMES = {"uz": "Nusxa ko‘chirish", "ru": "Ксерокопия", "en": "Photocopying"}


class FakeChannels:
    """Sends nothing; each call takes the next planned outcome (an exception, or None: accepted)."""

    def __init__(self, *outcomes):
        self.outcomes = list(outcomes)
        self.sent = []

    def send(self, channel, address, message, key):
        outcome = self.outcomes.pop(0) if self.outcomes else None
        if outcome is not None:
            raise outcome
        self.sent.append((channel, address, message, key))


class Observer:
    """Stands in for the delivery metrics: what was settled, how many retries."""

    def __init__(self):
        self.settled, self.retries = [], 0

    def finished(self, delivery):
        self.settled.append((delivery.channel, delivery.status))

    def retried(self, delivery):
        self.retries += 1


@pytest.fixture
def session():
    engine = create_engine("sqlite://")
    Base.metadata.create_all(engine)
    return sessionmaker(bind=engine, expire_on_commit=False)()


def make_service(session, channels=None, **policy):
    settings = {"region": "jizzakh", "producer": "notifications_jizzakh", "retry_base_seconds": 0.1,
                "agency_addresses": {"khokimiyat": "hokim@jizzakh.example.uz"}}
    settings.update(policy)
    return worker_factory(
        NotificationService, db=session,
        channels=channels or FakeChannels(), templates=TemplateBook(), policy=DeliveryPolicy(**settings),
        deliveries=Observer(),
        caller=CallerAs(Principal("desk", OPERATOR, region="jizzakh", centres=("jizzakh-city",)), region="jizzakh"),
    )


def application_event(event_type="application.submitted", number="JI-2026-000001", channel="sms", language="uz",
                      status="submitted", due_date=None, changed_at=None, agency="khokimiyat", version=None, **extra):
    now = changed_at or utc_now()
    data = {
        "tracking_number": number, "service_code": "photocopying", "service_version": 1, "agency": agency,
        "district": "1708401", "centre": "jizzakh-city", "status": status, "previous_status": None, "reason": None,
        "version": version or (1 if event_type == "application.submitted" else 2),
        "actor": "centre:jizzakh-city", "submitted_at": rfc3339(now), "changed_at": rfc3339(now),
        "due_date": (due_date or add_working_days(local_date(now), 5)).isoformat(), "language": language,
        "channel": channel, "contact": {"phone": PHONE, "email": EMAIL if channel == "email" else None},
        "service_name": NAMES,
    }
    data.update(extra)
    return make_event(event_type, "jizzakh", "intake_jizzakh", data, occurred_at=now)


def deliveries(session):
    session.rollback()
    return session.scalars(select(Delivery).order_by(Delivery.id)).all()


def failed_events(session):
    return [row.payload for row in session.scalars(select(OutboxEvent)) if row.event_type == "notification.failed"]


def test_a_message_goes_once_even_when_the_event_comes_again(session):
    channels = FakeChannels()
    service = make_service(session, channels)
    event = application_event(language="ru")
    service.on_application_event(event)
    service.on_application_event(event)
    assert len(channels.sent) == 1
    channel, address, message, key = channels.sent[0]
    assert (channel, address) == ("sms", PHONE)
    assert message.subject == "Ваша заявка принята: JI-2026-000001" and "«Ксерокопия»" in message.body
    [row] = deliveries(session)
    assert (row.status, row.attempts, row.channel, row.language, row.audience) == ("sent", 1, "sms", "ru", "citizen")
    assert row.attempt_started_at is None and row.sent_at is not None
    assert service.deliveries.settled == [("sms", "sent")]


def test_email_in_the_applicants_language_with_the_reason(session):
    channels = FakeChannels()
    service = make_service(session, channels)
    service.on_application_event(application_event(
        "application.status_changed", channel="email", language="en", status="returned_for_correction",
        previous_status="submitted", reason="the photo is missing"))
    [(channel, address, message, _)] = channels.sent
    assert (channel, address) == ("email", EMAIL)
    assert message.subject == "Application JI-2026-000001: returned for correction"
    assert "Reason: the photo is missing" in message.body and '"Photocopying"' in message.body


def test_channel_none_sends_nothing_and_records_it(session):
    channels = FakeChannels()
    service = make_service(session, channels)
    service.on_application_event(application_event(channel="none"))
    service.on_application_event(application_event(channel="none", number="JI-2026-000002"))
    assert channels.sent == []
    assert [(row.channel, row.status, row.attempts) for row in deliveries(session)] == [("none", "skipped", 0)] * 2


def test_a_temporary_failure_is_retried_and_then_sent_once(session):
    channels = FakeChannels(TemporaryFailure("SMS gateway answered 503"))
    service = make_service(session, channels)
    event = application_event()
    with pytest.raises(DeliveryDeferred):
        service.on_application_event(event)
    [row] = deliveries(session)
    assert (row.status, row.attempts, row.last_error) == ("pending", 1, "SMS gateway answered 503")
    assert row.attempt_started_at is None and row.next_attempt_at is not None
    service.on_application_event(event)
    service.on_application_event(event)
    assert len(channels.sent) == 1 and service.deliveries.retries == 1
    [row] = deliveries(session)
    assert (row.status, row.attempts, row.last_error) == ("sent", 2, None)


def test_a_gateway_that_stays_away_keeps_the_delivery_pending_and_it_goes_once_when_back(session):
    """A failure that passes is never given up on: however many attempts meet it, the delivery stays
    pending (its event waits out a back-off each time) and is sent once the gateway answers."""
    channels = FakeChannels(*[TemporaryFailure("SMS gateway answered 503")] * 12)
    service = make_service(session, channels)
    event = application_event()
    for _ in range(12):
        with pytest.raises(DeliveryDeferred):
            service.on_application_event(event)
    [row] = deliveries(session)
    assert (row.status, row.attempts) == ("pending", 12) and failed_events(session) == []
    service.on_application_event(event)
    service.on_application_event(event)  # a late copy of the event: already sent
    [row] = deliveries(session)
    assert (row.status, row.attempts) == ("sent", 13) and len(channels.sent) == 1
    assert service.deliveries.settled == [("sms", "sent")]


def test_an_unconfigured_channel_holds_the_message_instead_of_failing_it(session):
    from services.notifications.channels import ChannelSet, SmsGateway, SmtpChannel

    service = make_service(session, ChannelSet(email=SmtpChannel(host=""), sms=SmsGateway(url="")))
    with pytest.raises(DeliveryDeferred, match="SMS is not configured"):
        service.on_application_event(application_event())
    [row] = deliveries(session)
    assert row.status == "pending" and failed_events(session) == []


def test_a_refused_number_fails_at_once(session):
    channels = FakeChannels(PermanentFailure("SMS gateway refused the message (400)"))
    service = make_service(session, channels)
    with pytest.raises(DeadLetter, match="refused the message"):
        service.on_application_event(application_event())
    [row] = deliveries(session)
    assert (row.status, row.attempts, row.last_error) == ("failed", 1, "SMS gateway refused the message (400)")
    assert len(failed_events(session)) == 1


def test_other_application_events_are_ignored(session):
    channels = FakeChannels()
    service = make_service(session, channels)
    service.on_application_event(make_event("application.comment_added", "jizzakh", "intake_jizzakh",
                                            {"tracking_number": "JI-2026-000001"}))
    assert channels.sent == [] and deliveries(session) == []


def test_a_malformed_body_is_dead_lettered_and_nothing_stored(session):
    service = make_service(session)
    event = application_event()
    del event["data"]["due_date"]
    with pytest.raises(DeadLetter, match="due_date"):
        service.on_application_event(event)
    assert deliveries(session) == [] and session.scalars(select(WatchedApplication)).all() == []


def test_an_attempt_cut_off_mid_send_is_never_repeated(session):
    channels = FakeChannels()
    service = make_service(session, channels)
    event = application_event()
    delivery, _ = Deliveries(session).open(
        tracking_number="JI-2026-000001", region="jizzakh", event_id=event["event_id"], event_type=event["type"],
        audience="citizen", channel="sms", language="uz")
    session.execute(update(Delivery).values(attempts=1, attempt_started_at=utc_now()))
    session.commit()
    with pytest.raises(DeliveryDeferred):  # perhaps still under way elsewhere: ask again later
        service.on_application_event(event)
    session.execute(update(Delivery).values(attempt_started_at=utc_now() - timedelta(minutes=10)))
    session.commit()
    with pytest.raises(DeadLetter, match="outcome unknown"):
        service.on_application_event(event)
    assert channels.sent == []
    [row] = deliveries(session)
    assert (row.status, row.attempts) == ("failed", 1) and len(failed_events(session)) == 1


def test_a_stale_claim_is_failed_by_the_deadline_watch(session):
    service = make_service(session)
    event = application_event()
    Deliveries(session).open(tracking_number="JI-2026-000001", region="jizzakh", event_id=event["event_id"],
                             event_type=event["type"], audience="citizen", channel="sms", language="uz")
    session.execute(update(Delivery).values(attempts=1, attempt_started_at=utc_now() - timedelta(minutes=10)))
    session.commit()
    service.watch_deadlines()
    [row] = deliveries(session)
    assert row.status == "failed" and "outcome unknown" in row.last_error and len(failed_events(session)) == 1


def test_deliveries_of_a_tracking_number_show_no_address(session):
    service = make_service(session)
    service.on_application_event(application_event(channel="email"))
    answer = service.list_deliveries("JI-2026-000001")
    assert [item["status"] for item in answer["items"]] == ["sent"]
    assert set(answer["items"][0]) == {"event_id", "event_type", "audience", "channel", "language", "status", "attempts",
                                       "last_error", "created_at", "updated_at", "sent_at"}
    assert EMAIL not in str(answer) and PHONE not in str(answer)
    assert service.list_deliveries("JI-2026-999999")["items"] == []
    with pytest.raises(ValidationError):
        service.list_deliveries("+998901234567")


def test_deadline_watch_tells_the_agency_once_per_threshold(session):
    channels = FakeChannels()
    service = make_service(session, channels)
    today = local_date(utc_now())
    overdue = application_event(number="JI-2026-000010", due_date=today - timedelta(days=3))
    due_soon = application_event(number="JI-2026-000011", due_date=today)
    far = application_event(number="JI-2026-000012", due_date=add_working_days(today, 5))
    elsewhere = application_event(number="JI-2026-000013", due_date=today, agency="cadastre-agency")
    decided = application_event(number="JI-2026-000014", due_date=today)
    for event in (overdue, due_soon, far, elsewhere, decided):
        service.on_application_event(event)
    service.on_application_event(application_event("application.status_changed", number="JI-2026-000014",
                                                   due_date=today, status="approved",
                                                   changed_at=utc_now() + timedelta(seconds=1), version=2))
    channels.sent.clear()
    for _ in range(3):
        service.watch_deadlines()
    notices = sorted((message.subject.split(":")[0], address) for _, address, message, _ in channels.sent)
    assert notices == [("Muddat o‘tdi", "hokim@jizzakh.example.uz"), ("Muddat yaqinlashmoqda", "hokim@jizzakh.example.uz")]
    agency_rows = [row for row in deliveries(session) if row.audience == "agency"]
    assert sorted((row.tracking_number, row.event_type, row.channel, row.status) for row in agency_rows) == [
        ("JI-2026-000010", "deadline.overdue", "email", "sent"),
        ("JI-2026-000011", "deadline.due_soon", "email", "sent"),
        ("JI-2026-000013", "deadline.due_soon", "none", "skipped"),
    ]
    # A month on (well past five working days, whatever holidays fall between), the one due today and
    # the far one are overdue: one notice each (the far one straight to overdue); the decided one never gets any.
    later = utc_now() + timedelta(days=30)
    for _ in range(2):
        use_cases.watch_deadlines(service.unit_of_work(), WatchDeadlines(now=later))
    assert sorted(message.subject for _, _, message, _ in channels.sent[2:]) == [
        f"Muddat o‘tdi: JI-2026-000011 ({today.strftime('%d.%m.%Y')})",
        f"Muddat o‘tdi: JI-2026-000012 ({add_working_days(today, 5).strftime('%d.%m.%Y')})",
    ]
    assert "JI-2026-000014" not in {row.tracking_number for row in deliveries(session) if row.audience == "agency"}


def test_an_agency_notice_is_retried_with_back_off(session):
    channels = FakeChannels(TemporaryFailure("SMTP server unreachable (ConnectionRefusedError)"))
    service = make_service(session, channels, retry_base_seconds=30)
    service.on_application_event(application_event(number="JI-2026-000020", channel="none", due_date=local_date(utc_now())))
    service.watch_deadlines()
    [notice] = [row for row in deliveries(session) if row.audience == "agency"]
    assert (notice.status, notice.attempts) == ("pending", 1)
    service.watch_deadlines()  # within the back-off: not tried again yet
    assert channels.sent == [] and deliveries(session)[-1].attempts == 1
    use_cases.watch_deadlines(service.unit_of_work(), WatchDeadlines(now=utc_now() + timedelta(seconds=31)))
    [notice] = [row for row in deliveries(session) if row.audience == "agency"]
    assert (notice.status, notice.attempts) == ("sent", 2) and len(channels.sent) == 1


def test_an_older_event_does_not_undo_a_newer_one_whatever_its_clock(session):
    service = make_service(session)
    # The newer (version 3) was stamped by a host whose clock runs behind the older one's.
    newer = application_event("application.status_changed", status="approved", changed_at=utc_now() - timedelta(hours=1),
                              version=3)
    older = application_event("application.status_changed", status="accepted", changed_at=utc_now(), version=2)
    service.on_application_event(newer)
    service.on_application_event(older)
    session.rollback()
    watched = session.get(WatchedApplication, "JI-2026-000001")
    assert (watched.status, watched.is_open) == ("approved", False)


def configured(provider, **config):
    provider.container = SimpleNamespace(config={"REGION": "fergana", **config}, service_name="notifications_fergana")
    provider.setup()
    return provider.get_dependency(None)


def test_policy_from_settings():
    policy = configured(Policy(), RETRY_CEILING_SECONDS="7", RETRY_BASE_SECONDS="0.25", SEND_TIMEOUT_SECONDS="5",
                        AGENCY_EMAILS="khokimiyat=hokim@fergana.example.uz", AGENCY_EMAIL_DEFAULT="oss@fergana.example.uz",
                        AGENCY_LANGUAGE="ru")
    assert (policy.region, policy.producer, policy.retry_ceiling_seconds, policy.retry_base_seconds) == (
        "fergana", "notifications_fergana", 7, 0.25)
    assert policy.record_outcome_for == timedelta(seconds=600)  # the default
    assert policy.abandon_after == timedelta(seconds=6 * 5 + 600) and policy.agency_language == "ru"
    assert configured(Policy(), OUTCOME_RECORD_SECONDS="90").abandon_after == timedelta(seconds=6 * 10 + 90)
    assert policy.agency_address("khokimiyat") == "hokim@fergana.example.uz"
    assert policy.agency_address("cadastre-agency") == "oss@fergana.example.uz"
    assert configured(Policy(), REGION="").region == "national"


@pytest.mark.parametrize("provider,config,complaint", [
    (Policy, {"AGENCY_EMAILS": "khokimiyat"}, "AGENCY_EMAILS"),
    (Policy, {"AGENCY_LANGUAGE": "de"}, "AGENCY_LANGUAGE"),
    (Policy, {"RETRY_CEILING_SECONDS": "many"}, "RETRY_CEILING_SECONDS"),
    (Channels, {"SMTP_SECURITY": "maybe"}, "SMTP security"),
    (Channels, {"SMS_PAYLOAD": "carrier-pigeon"}, "SMS payload"),
])
def test_bad_settings_stop_the_service_with_a_reason(provider, config, complaint):
    with pytest.raises(ConfigurationError, match=complaint):
        configured(provider(), **config)


def test_channels_from_settings():
    channels = configured(Channels(), SMTP_HOST="smtp.fergana.example.uz", SMTP_PORT="587", SMTP_SECURITY="starttls",
                          SMS_GATEWAY_URL="https://notify.eskiz.uz/api/message/sms/send", SMS_PAYLOAD="playmobile",
                          SMS_AUTH="basic", SMS_GATEWAY_TOKEN="login:password", SMS_SENDER=3700)
    email, sms = channels.by_channel["email"], channels.by_channel["sms"]
    assert (email.host, email.port, email.security) == ("smtp.fergana.example.uz", 587, "starttls")
    assert (sms.auth, sms.sender, sms.payload.__name__) == ("basic", "3700", "playmobile_payload")
