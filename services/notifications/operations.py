"""Notifications' units of work: keep the deadline watch current, deliver a citizen's message for an
application event, send agencies their deadline notices, show a tracking number's deliveries.

A delivery is tried so that no message can go out twice:
  1. its row, unique per (event id, channel), is committed as pending;
  2. the attempt is claimed (attempts + 1, `attempt_started_at`) and committed before anything is sent;
  3. the channel sends; the outcome is committed and the claim released.
A row still claimed after an attempt could have lasted was left mid-send (a crash): it is failed as
"outcome unknown" rather than sent again. No transaction stays open while a channel sends.
"""
import functools
from datetime import timedelta, timezone

from sqlalchemy import and_, case, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from oss_common import application_events
from oss_common.calendar import add_working_days, local_date, working_days_between
from oss_common.config import ConfigurationError
from oss_common.events import make_event, rfc3339, utc_now
from oss_common.regions import get_region
from oss_common.schemas import localized
from services.notifications.domain import (
    AGENCY, CITIZEN, CITIZEN_EVENTS, DUE_SOON, EMAIL, FAILED, FINISHED, NONE, PENDING, SENT, SKIPPED,
    choose_channel, deadline_notice_id, deadline_threshold, delivery_key, message_language, needs_notice, retry_delay,
)
from services.notifications.exceptions import (
    DeliveryDeferred, DeliveryFailed, PermanentFailure, TemplateProblem, TemporaryFailure,
)
from services.notifications.models import Delivery, WatchedApplication

BATCH_SIZE = 200
LEFT_MID_SEND = "outcome unknown: an attempt stopped while sending; not repeated so that it cannot arrive twice"
MAX_ERROR_LENGTH = 300


def _insert(session):
    return postgresql.insert if session.connection().dialect.name == "postgresql" else sqlite.insert


# The deadline watch's copy of applications


def watch(session, region, fact):
    """Bring the application's row up to this event (in the caller's transaction) unless a newer one
    was seen; a new due date starts its deadline notices afresh."""
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
    }
    table = WatchedApplication.__table__
    inserted = session.connection().execute(
        _insert(session)(table).values(**values).on_conflict_do_nothing(index_elements=[table.c.tracking_number])
    ).rowcount
    if inserted:
        return
    updates = {key: values[key] for key in ("status", "is_open", "due_date", "changed_at")}
    if values["service_name"] is not None:
        updates["service_name"] = values["service_name"]
    updates["deadline_notice"] = case((table.c.due_date == values["due_date"], table.c.deadline_notice), else_=None)
    session.connection().execute(
        update(table).where(table.c.tracking_number == values["tracking_number"], table.c.changed_at < changed_at)
        .values(**updates)
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


def notify_citizen(session, record, channels, templates, policy, observe, envelope):
    """Tell the applicant about an application event by the channel they chose, at most once.

    Raises marshmallow.ValidationError for a malformed body, DeliveryFailed when the message failed
    for good (recorded, `notification.failed` raised), DeliveryDeferred when it must be tried again.
    """
    if envelope["type"] not in CITIZEN_EVENTS:
        return None
    fact = application_events.load(envelope)
    watch(session, envelope["region"], fact)
    recipient = choose_channel(fact["channel"], fact["contact"])
    language = message_language(fact["language"])
    delivery, created = open_delivery(
        session, tracking_number=fact["tracking_number"], region=envelope["region"], event_id=envelope["event_id"],
        event_type=envelope["type"], audience=CITIZEN, channel=recipient.channel, language=language,
        status=SKIPPED if recipient.channel == NONE else PENDING,
    )
    session.commit()
    if recipient.channel == NONE:
        if created:
            observe.finished(delivery)
        return delivery
    compose = functools.partial(templates.render, envelope["type"], language, **citizen_values(fact, language))
    return attempt(session, record, channels, policy, observe, delivery, recipient.address, compose)


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


def attempt(session, record, channels, policy, observe, delivery, address, compose, now=None):
    """Try a pending delivery once; see the module's docstring. Returns the delivery when it is
    settled (sent now or before, skipped); raises DeliveryDeferred or DeliveryFailed otherwise."""
    now = now or utc_now()
    if delivery.status != PENDING:
        return delivery
    try:
        if delivery.attempt_started_at is not None:
            if now - delivery.attempt_started_at < policy.abandon_after:
                raise DeliveryDeferred("an earlier attempt at this delivery may still be under way", delivery)
            raise PermanentFailure(LEFT_MID_SEND)
        message = compose()
        if not _claim(session, delivery, now):
            if delivery.status in FINISHED:
                return delivery
            raise DeliveryDeferred("another worker is trying this delivery", delivery)
        try:
            channels.send(delivery.channel, address, message, delivery_key(delivery.event_id, delivery.channel))
        except TemporaryFailure as exc:
            if delivery.attempts >= policy.max_attempts:
                raise PermanentFailure(f"{exc}; gave up after {delivery.attempts} attempts") from None
            retry_at = utc_now() + timedelta(seconds=retry_delay(delivery.attempts, policy.retry_base_seconds))
            _settle(session, delivery, PENDING, error=str(exc), next_attempt_at=retry_at)
            observe.retried(delivery)
            raise DeliveryDeferred(str(exc), delivery) from None
    except (PermanentFailure, TemplateProblem) as exc:
        if fail(session, record, policy, observe, delivery, str(exc)):
            raise DeliveryFailed(str(exc)) from None
        return delivery
    _settle(session, delivery, SENT)
    observe.finished(delivery)
    return delivery


def _claim(session, delivery, now):
    """Take the next attempt of a pending delivery; False when another worker holds it or it is settled."""
    claimed = session.execute(
        update(Delivery)
        .where(Delivery.id == delivery.id, Delivery.status == PENDING, Delivery.attempt_started_at.is_(None))
        .values(attempts=Delivery.attempts + 1, attempt_started_at=now, updated_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount == 1
    session.refresh(delivery)
    session.commit()
    return claimed


def _settle(session, delivery, status, error=None, next_attempt_at=None):
    """Record an attempt's outcome and release the claim."""
    now = utc_now()
    values = {"status": status, "last_error": error[:MAX_ERROR_LENGTH] if error else None, "attempt_started_at": None,
              "next_attempt_at": next_attempt_at, "updated_at": now}
    if status == SENT:
        values["sent_at"] = now
    session.execute(
        update(Delivery).where(Delivery.id == delivery.id, Delivery.status == PENDING).values(**values)
        .execution_options(synchronize_session=False)
    )
    session.refresh(delivery)
    session.commit()


def fail(session, record, policy, observe, delivery, error, unclaimed_only=False):
    """Mark a pending delivery failed for good and raise `<region>.notification.failed` in the same
    transaction; False when it was already settled (nothing changes then), or, with `unclaimed_only`,
    while an attempt holds it."""
    error = error[:MAX_ERROR_LENGTH]
    now = utc_now()
    conditions = [Delivery.id == delivery.id, Delivery.status == PENDING]
    if unclaimed_only:
        conditions.append(Delivery.attempt_started_at.is_(None))
    failed = session.execute(
        update(Delivery).where(*conditions)
        .values(status=FAILED, last_error=error, attempt_started_at=None, next_attempt_at=None, updated_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount == 1
    session.refresh(delivery)
    if failed:
        record(session, make_event("notification.failed", policy.region, policy.producer, {
            "tracking_number": delivery.tracking_number,
            "application_region": delivery.region,
            "event_id": delivery.event_id,
            "event_type": delivery.event_type,
            "audience": delivery.audience,
            "channel": delivery.channel,
            "attempts": delivery.attempts,
            "error": error,
        }, occurred_at=now))
    session.commit()
    if failed:
        observe.finished(delivery)
    return failed


# The deadline watch


def watch_deadlines(session, record, channels, templates, policy, observe, now=None):
    """One round: make the notices newly due, fail attempts left mid-send, send what is due."""
    now = now or utc_now()
    today = local_date(now)
    make_deadline_notices(session, policy, observe, today)
    abandon_stale_attempts(session, record, policy, observe, now)
    send_agency_notices(session, record, channels, templates, policy, observe, today, now)


def make_deadline_notices(session, policy, observe, today):
    """A notice for each open application whose due date is at most one working day away or past,
    once per application, threshold and due date; `none` (skipped) when its agency has no address."""
    horizon = add_working_days(today, 1)
    while True:
        applications = session.scalars(
            select(WatchedApplication).where(
                WatchedApplication.is_open.is_(True),
                WatchedApplication.due_date <= horizon,
                or_(WatchedApplication.deadline_notice.is_(None),
                    and_(WatchedApplication.deadline_notice == DUE_SOON, WatchedApplication.due_date < today)),
            ).order_by(WatchedApplication.due_date, WatchedApplication.tracking_number).limit(BATCH_SIZE)
        ).all()
        made, skipped = 0, []
        for application in applications:
            threshold = deadline_threshold(today, application.due_date)
            if not needs_notice(application.deadline_notice, threshold):
                continue
            made += 1
            address = policy.agency_address(application.agency)
            delivery, created = open_delivery(
                session, tracking_number=application.tracking_number, region=application.region,
                event_id=deadline_notice_id(application.tracking_number, threshold, application.due_date),
                event_type=f"deadline.{threshold}", audience=AGENCY, channel=EMAIL if address else NONE,
                language=policy.agency_language, status=PENDING if address else SKIPPED,
                last_error=None if address else f"no address configured for agency {application.agency}",
            )
            application.deadline_notice = threshold
            if created and delivery.status == SKIPPED:
                skipped.append(delivery)
        session.commit()
        for delivery in skipped:
            observe.finished(delivery)
        if len(applications) < BATCH_SIZE or not made:
            return


def abandon_stale_attempts(session, record, policy, observe, now):
    """Fail deliveries whose attempt stopped mid-send (a crash) and whose event no longer comes back."""
    stale = session.scalars(
        select(Delivery).where(Delivery.status == PENDING, Delivery.attempt_started_at < now - policy.abandon_after)
        .order_by(Delivery.id).limit(BATCH_SIZE)
    ).all()
    session.commit()
    for delivery in stale:
        fail(session, record, policy, observe, delivery, LEFT_MID_SEND)


def send_agency_notices(session, record, channels, templates, policy, observe, today, now):
    """Try each pending agency notice whose back-off has passed."""
    due = session.scalars(
        select(Delivery).where(
            Delivery.audience == AGENCY, Delivery.status == PENDING, Delivery.attempt_started_at.is_(None),
            or_(Delivery.next_attempt_at.is_(None), Delivery.next_attempt_at <= now),
        ).order_by(Delivery.id).limit(BATCH_SIZE)
    ).all()
    for delivery in due:
        application = session.get(WatchedApplication, delivery.tracking_number)
        compose = functools.partial(templates.render, delivery.event_type, delivery.language,
                                    **agency_values(application, delivery.language, today))
        try:
            attempt(session, record, channels, policy, observe, delivery, policy.agency_address(application.agency), compose)
        except (DeliveryFailed, DeliveryDeferred):
            continue
    session.commit()


def agency_values(application, language, today):
    """What an agency's deadline template may use."""
    return {
        "tracking_number": application.tracking_number,
        "service_code": application.service_code,
        "service_name": localized(application.service_name or {}, language) or application.service_code,
        "status": application.status,
        "region": application.region,
        "region_name": region_name(application.region, language),
        "agency": application.agency,
        "due_date": application.due_date.strftime("%d.%m.%Y"),
        "due_date_iso": application.due_date.isoformat(),
        "working_days_overdue": max(0, working_days_between(application.due_date, today)),
    }


def region_name(slug, language):
    try:
        return localized(get_region(slug).names, language)
    except ConfigurationError:
        return slug


# Questions


def deliveries_of(session, tracking_number):
    rows = session.scalars(select(Delivery).where(Delivery.tracking_number == tracking_number).order_by(Delivery.id)).all()
    session.rollback()
    return {"tracking_number": tracking_number, "items": [delivery_view(row) for row in rows]}


def delivery_view(delivery):
    """A delivery as callers see it: no address, no message text."""
    return {
        "event_id": delivery.event_id,
        "event_type": delivery.event_type,
        "audience": delivery.audience,
        "channel": delivery.channel,
        "language": delivery.language,
        "status": delivery.status,
        "attempts": delivery.attempts,
        "last_error": delivery.last_error,
        "created_at": rfc3339(delivery.created_at),
        "updated_at": rfc3339(delivery.updated_at),
        "sent_at": rfc3339(delivery.sent_at) if delivery.sent_at else None,
    }


def pending_by_channel(session):
    """Deliveries waiting to be sent, by channel."""
    counts = dict(session.execute(
        select(Delivery.channel, func.count()).where(Delivery.status == PENDING).group_by(Delivery.channel)
    ).all())
    session.rollback()
    return counts
