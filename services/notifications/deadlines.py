"""The deadline watch: each round makes the notices newly due to agencies (an application due within a
working day, or overdue), fails attempts left mid-send, and sends what is due, each delivery by the
protocol of operations.py."""
import functools

from sqlalchemy import and_, or_, select

from oss_common.calendar import add_working_days, local_date, working_days_between
from oss_common.config import ConfigurationError
from oss_common.events import utc_now
from oss_common.regions import get_region
from oss_common.schemas import localized
from services.notifications.domain import (
    AGENCY, DUE_SOON, EMAIL, NONE, PENDING, SKIPPED, deadline_notice_id, deadline_threshold, needs_notice,
)
from services.notifications.exceptions import DeliveryDeferred, DeliveryFailed
from services.notifications.models import Delivery, WatchedApplication
from services.notifications.operations import BATCH_SIZE, LEFT_MID_SEND, attempt, fail, open_delivery
from services.notifications.unit_of_work import Notifier


def watch_deadlines(notifier: Notifier, now=None) -> None:
    """One round: make the notices newly due, fail attempts left mid-send, send what is due."""
    now = now or utc_now()
    today = local_date(now)
    make_deadline_notices(notifier, today)
    abandon_stale_attempts(notifier, now)
    send_agency_notices(notifier, today, now)


def make_deadline_notices(notifier: Notifier, today) -> None:
    """A notice for each open application whose due date is at most one working day away or past,
    once per application, threshold and due date; `none` (skipped) when its agency has no address.
    A batch at a time, each its own unit of work."""
    horizon = add_working_days(today, 1)
    while True:
        with notifier.unit_of_work() as uow:
            made, skipped, batch = _make_notices(uow.session, notifier.policy, today, horizon)
            uow.commit()
        for delivery in skipped:
            notifier.observe.finished(delivery)
        if batch < BATCH_SIZE or not made:
            return


def _make_notices(session, policy, today, horizon):
    """One batch; returns how many notices were made, the deliveries skipped, and the batch's size."""
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
    return made, skipped, len(applications)


def abandon_stale_attempts(notifier: Notifier, now) -> None:
    """Fail deliveries whose attempt stopped mid-send (a crash) and whose event no longer comes back."""
    with notifier.unit_of_work() as uow:
        stale = uow.session.scalars(
            select(Delivery).where(Delivery.status == PENDING,
                                   Delivery.attempt_started_at < now - notifier.policy.abandon_after)
            .order_by(Delivery.id).limit(BATCH_SIZE)
        ).all()
        uow.commit()
    for delivery in stale:  # each failure a unit of work of its own
        fail(notifier, delivery, LEFT_MID_SEND)


def send_agency_notices(notifier: Notifier, today, now) -> None:
    """Try each pending agency notice whose back-off has passed."""
    session = notifier.session
    due = session.scalars(
        select(Delivery).where(
            Delivery.audience == AGENCY, Delivery.status == PENDING, Delivery.attempt_started_at.is_(None),
            or_(Delivery.next_attempt_at.is_(None), Delivery.next_attempt_at <= now),
        ).order_by(Delivery.id).limit(BATCH_SIZE)
    ).all()
    for delivery in due:
        application = session.get(WatchedApplication, delivery.tracking_number)
        compose = functools.partial(notifier.templates.render, delivery.event_type, delivery.language,
                                    **agency_values(application, delivery.language, today))
        try:
            attempt(notifier, delivery, notifier.policy.agency_address(application.agency), compose)
        except (DeliveryFailed, DeliveryDeferred):
            continue
    session.rollback()  # only reads are left: each delivery's outcome was committed by its own unit of work


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
