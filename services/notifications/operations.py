"""Notifications' deliveries: keep the deadline watch's copy of an application current, deliver a
citizen's message for an application event, and the protocol every delivery follows (deadlines.py
sends agencies' notices with it; views.py answers questions about deliveries).

A delivery is tried so that no message can go out twice:
  1. its row, unique per (event id, channel), is committed as pending;
  2. the attempt is claimed (attempts + 1, `attempt_started_at`) and committed before anything is sent;
  3. the channel sends; the outcome is committed and the claim released.
A row still claimed after an attempt could have lasted was left mid-send (a crash): it is failed as
"outcome unknown" rather than sent again. No transaction stays open while a channel sends.
"""
import functools
from datetime import timedelta, timezone

from sqlalchemy import and_, case, select, update
from sqlalchemy.dialects import postgresql, sqlite

from oss_common import application_events
from oss_common.events import utc_now
from oss_common.failures import retry_delay
from oss_common.schemas import localized
from services.notifications.domain import (
    CITIZEN, CITIZEN_EVENTS, FAILED, FINISHED, NONE, PENDING, SENT, SKIPPED,
    choose_channel, delivery_key, message_language,
)
from services.notifications.exceptions import (
    DeliveryDeferred, DeliveryFailed, PermanentFailure, TemplateProblem, TemporaryFailure,
)
from services.notifications.models import Delivery, WatchedApplication
from services.notifications.unit_of_work import Notifier

BATCH_SIZE = 200
LEFT_MID_SEND = "outcome unknown: an attempt stopped while sending; not repeated so that it cannot arrive twice"
MAX_ERROR_LENGTH = 300


def _insert(session):
    return postgresql.insert if session.connection().dialect.name == "postgresql" else sqlite.insert


# The deadline watch's copy of applications


def watch(session, region, fact):
    """Bring the application's row up to this event (in the caller's transaction) unless one of a
    higher version was seen; a new due date starts its deadline notices afresh."""
    changed_at = fact["changed_at"].astimezone(timezone.utc)
    values = {
        "tracking_number": fact["tracking_number"],
        "region": region,
        "service_code": fact["service_code"],
        "service_name": fact["service_name"],
        "agency": fact["agency"],
        "status": fact["status"],
        "is_open": fact["open"],
        "due_date": fact["due_date"],
        "changed_at": changed_at,
        "version": application_events.stored_version(fact),
    }
    table = WatchedApplication.__table__
    inserted = session.connection().execute(
        _insert(session)(table).values(**values).on_conflict_do_nothing(index_elements=[table.c.tracking_number])
    ).rowcount
    if inserted:
        return
    updates = {key: values[key] for key in ("status", "is_open", "due_date", "changed_at", "version")}
    if values["service_name"] is not None:
        updates["service_name"] = values["service_name"]
    updates["deadline_notice"] = case((table.c.due_date == values["due_date"], table.c.deadline_notice), else_=None)
    # application_events.supersedes, as SQL: by version, or by changed_at between version-2 bodies.
    newer = (table.c.version < values["version"]) if values["version"] else and_(
        table.c.version == 0, table.c.changed_at < changed_at)
    session.connection().execute(
        update(table).where(table.c.tracking_number == values["tracking_number"], newer).values(**updates)
    )


# Deliveries


def open_delivery(session, **values):
    """The delivery of (event_id, channel), created pending (or as given) if there is none yet;
    returns (delivery, created). Two workers racing here end with one row."""
    now = utc_now()
    row = {"status": PENDING, "attempts": 0, "created_at": now, "updated_at": now, **values}
    table = Delivery.__table__
    created = session.connection().execute(
        _insert(session)(table).values(**row).on_conflict_do_nothing(index_elements=[table.c.event_id, table.c.channel])
    ).rowcount == 1
    delivery = session.scalar(
        select(Delivery).where(Delivery.event_id == values["event_id"], Delivery.channel == values["channel"])
        .execution_options(populate_existing=True)
    )
    return delivery, created


def notify_citizen(notifier: Notifier, envelope: dict):
    """Tell the applicant about an application event by the channel they chose, at most once.

    Raises marshmallow.ValidationError for a malformed body, DeliveryFailed when the message failed
    for good (recorded, `notification.failed` raised), DeliveryDeferred when it must be tried again.
    """
    if envelope["type"] not in CITIZEN_EVENTS:
        return None
    fact = application_events.load(envelope)
    recipient = choose_channel(fact["channel"], fact["contact"])
    language = message_language(fact["language"])
    with notifier.unit_of_work() as uow:
        watch(uow.session, envelope["region"], fact)
        delivery, created = open_delivery(
            uow.session, tracking_number=fact["tracking_number"], region=envelope["region"],
            event_id=envelope["event_id"], event_type=envelope["type"], audience=CITIZEN, channel=recipient.channel,
            language=language, status=SKIPPED if recipient.channel == NONE else PENDING,
        )
        uow.commit()
    if recipient.channel == NONE:
        if created:
            notifier.observe.finished(delivery)
        return delivery
    compose = functools.partial(notifier.templates.render, envelope["type"], language, **citizen_values(fact, language))
    return attempt(notifier, delivery, recipient.address, compose)


def citizen_values(fact, language):
    """What a citizen's template may use."""
    return {
        "tracking_number": fact["tracking_number"],
        "service_code": fact["service_code"],
        "service_name": localized(fact["service_name"] or {}, language) or fact["service_code"],
        "status": fact["status"],
        "previous_status": fact["previous_status"],
        "reason": fact["reason"],
        "is_open": fact["open"],
        "due_date": fact["due_date"].strftime("%d.%m.%Y"),
        "due_date_iso": fact["due_date"].isoformat(),
        "status_code": fact["status_code"],
    }


def attempt(notifier: Notifier, delivery: Delivery, address: str | None, compose, now=None) -> Delivery:
    """Try a pending delivery once; see the module's docstring. Returns the delivery when it is
    settled (sent now or before, skipped); raises DeliveryDeferred or DeliveryFailed otherwise."""
    policy, observe = notifier.policy, notifier.observe
    now = now or utc_now()
    if delivery.status != PENDING:
        return delivery
    try:
        if delivery.attempt_started_at is not None:
            if now - delivery.attempt_started_at < policy.abandon_after:
                raise DeliveryDeferred("an earlier attempt at this delivery may still be under way", delivery)
            raise PermanentFailure(LEFT_MID_SEND)
        message = compose()
        if not _claim(notifier, delivery, now):
            if delivery.status in FINISHED:
                return delivery
            raise DeliveryDeferred("another worker is trying this delivery", delivery)
        try:
            notifier.channels.send(delivery.channel, address, message, delivery_key(delivery.event_id, delivery.channel))
        except TemporaryFailure as exc:
            # Tried again for as long as it takes (the gateway or server is away, or no channel is set
            # up yet): a citizen's message is never given up for a failure that passes.
            retry_at = utc_now() + timedelta(seconds=retry_delay(delivery.attempts, policy.retry_base_seconds,
                                                                 policy.retry_ceiling_seconds))
            _settle(notifier, delivery, PENDING, error=str(exc), next_attempt_at=retry_at)
            observe.retried(delivery)
            raise DeliveryDeferred(str(exc), delivery) from None
    except (PermanentFailure, TemplateProblem) as exc:
        if fail(notifier, delivery, str(exc)):
            raise DeliveryFailed(str(exc)) from None
        return delivery
    _settle(notifier, delivery, SENT)
    observe.finished(delivery)
    return delivery


def _claim(notifier, delivery, now):
    """Take the next attempt of a pending delivery; False when another worker holds it or it is settled."""
    with notifier.unit_of_work() as uow:
        claimed = uow.session.execute(
            update(Delivery)
            .where(Delivery.id == delivery.id, Delivery.status == PENDING, Delivery.attempt_started_at.is_(None))
            .values(attempts=Delivery.attempts + 1, attempt_started_at=now, updated_at=now)
            .execution_options(synchronize_session=False)
        ).rowcount == 1
        uow.session.refresh(delivery)
        uow.commit()
    return claimed


def _settle(notifier, delivery, status, error=None, next_attempt_at=None):
    """Record an attempt's outcome and release the claim."""
    now = utc_now()
    values = {"status": status, "last_error": error[:MAX_ERROR_LENGTH] if error else None, "attempt_started_at": None,
              "next_attempt_at": next_attempt_at, "updated_at": now}
    if status == SENT:
        values["sent_at"] = now
    with notifier.unit_of_work() as uow:
        uow.session.execute(
            update(Delivery).where(Delivery.id == delivery.id, Delivery.status == PENDING).values(**values)
            .execution_options(synchronize_session=False)
        )
        uow.session.refresh(delivery)
        uow.commit()


def fail(notifier: Notifier, delivery: Delivery, error: str) -> bool:
    """Mark a pending delivery failed for good and raise `<region>.notification.failed` in the same
    transaction; False when it was already settled (nothing changes then)."""
    error = error[:MAX_ERROR_LENGTH]
    now = utc_now()
    with notifier.unit_of_work() as uow:
        failed = uow.session.execute(
            update(Delivery).where(Delivery.id == delivery.id, Delivery.status == PENDING)
            .values(status=FAILED, last_error=error, attempt_started_at=None, next_attempt_at=None, updated_at=now)
            .execution_options(synchronize_session=False)
        ).rowcount == 1
        uow.session.refresh(delivery)
        if failed:
            uow.emit("notification.failed", {
                "tracking_number": delivery.tracking_number,
                "application_region": delivery.region,
                "event_id": delivery.event_id,
                "event_type": delivery.event_type,
                "audience": delivery.audience,
                "channel": delivery.channel,
                "attempts": delivery.attempts,
                "error": error,
            }, occurred_at=now)
        uow.commit()
    if failed:
        notifier.observe.finished(delivery)
    return failed
