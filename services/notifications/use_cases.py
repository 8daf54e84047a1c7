"""What notifications does, one function per use case of `(unit of work, command)`: tell a citizen about an
application event, and watch deadlines for the agencies. Each delivery follows delivery.py's protocol; no
SQL, no nameko here."""
import functools

from oss_common.calendar import add_working_days, local_date, working_days_between
from oss_common.config import ConfigurationError
from oss_common.events import utc_now
from oss_common.regions import get_region
from oss_common.schemas import localized
from services.notifications.commands import NotifyCitizen, WatchDeadlines
from services.notifications.delivery import LEFT_MID_SEND, attempt, fail
from services.notifications.domain import (
    AGENCY, CITIZEN, EMAIL, NONE, PENDING, SKIPPED, choose_channel, citizen_template, deadline_notice_id,
    deadline_threshold, message_language, needs_notice,
)
from services.notifications.exceptions import DeliveryDeferred, DeliveryFailed
from services.notifications.unit_of_work import NotificationsUnitOfWork

BATCH_SIZE = 200


def notify_citizen(uow: NotificationsUnitOfWork, command: NotifyCitizen):
    """Tell the applicant about an application event by the channel they chose, at most once; the deadline
    watch's copy of the application is brought up to the event in the same commit as the delivery's row.

    Returns the delivery; raises DeliveryFailed when the message failed for good (recorded,
    `notification.failed` raised), DeliveryDeferred when it must be tried again.
    """
    fact = command.fact
    if not command.tell_citizen:
        with uow:
            uow.watched.keep(command.region, fact)
            uow.commit()
        return None
    recipient = choose_channel(fact["channel"], fact["contact"])
    language = message_language(fact["language"])
    with uow:
        uow.watched.keep(command.region, fact)
        delivery, created = uow.deliveries.open(
            tracking_number=fact["tracking_number"], region=command.region, event_id=command.event_id,
            event_type=command.event_type, audience=CITIZEN, channel=recipient.channel, language=language,
            status=SKIPPED if recipient.channel == NONE else PENDING,
        )
        uow.commit()
    if recipient.channel == NONE:
        if created:
            uow.observe.finished(delivery)
        return delivery
    template = citizen_template(command.event_type, fact.get("clock_change"))
    compose = functools.partial(uow.templates.render, template, language, **citizen_values(fact, language))
    return attempt(uow, delivery, recipient.address, compose)


def watch_deadlines(uow: NotificationsUnitOfWork, command: WatchDeadlines) -> None:
    """One round: make the notices newly due, fail attempts left mid-send, send what is due."""
    now = command.now or utc_now()
    today = local_date(now)
    make_deadline_notices(uow, today)
    abandon_stale_attempts(uow, now)
    send_agency_notices(uow, today, now)


def make_deadline_notices(uow: NotificationsUnitOfWork, today) -> None:
    """A notice for each open application whose (net) due date is at most one working day away or past,
    unless its clock is stopped (returned for correction),
    once per application, threshold and due date; `none` (skipped) when its agency has no address.
    A batch at a time, each its own commit."""
    horizon = add_working_days(today, 1)
    while True:
        with uow:
            applications = uow.watched.needing_notice(today, horizon, BATCH_SIZE)
            made, skipped = _make_notices(uow, applications, today)
            uow.commit()
        for delivery in skipped:
            uow.observe.finished(delivery)
        if len(applications) < BATCH_SIZE or not made:
            return


def _make_notices(uow, applications, today):
    """Returns how many notices were made and the deliveries made skipped."""
    made, skipped = 0, []
    for application in applications:
        threshold = deadline_threshold(today, application.due_date)
        if not needs_notice(application.deadline_notice, threshold):
            continue
        made += 1
        address = uow.policy.agency_address(application.agency)
        delivery, created = uow.deliveries.open(
            tracking_number=application.tracking_number, region=application.region,
            event_id=deadline_notice_id(application.tracking_number, threshold, application.due_date),
            event_type=f"deadline.{threshold}", audience=AGENCY, channel=EMAIL if address else NONE,
            language=uow.policy.agency_language, status=PENDING if address else SKIPPED,
            last_error=None if address else f"no address configured for agency {application.agency}",
        )
        application.deadline_notice = threshold
        if created and delivery.status == SKIPPED:
            skipped.append(delivery)
    return made, skipped


def abandon_stale_attempts(uow: NotificationsUnitOfWork, now) -> None:
    """Fail deliveries whose attempt stopped mid-send (a crash) and whose event no longer comes back."""
    with uow:  # reads only: left without a commit
        stale = uow.deliveries.stale(now - uow.policy.abandon_after, BATCH_SIZE)
    for delivery in stale:  # each failure a commit of its own
        fail(uow, delivery, LEFT_MID_SEND)


def send_agency_notices(uow: NotificationsUnitOfWork, today, now) -> None:
    """Try each pending agency notice whose back-off has passed."""
    with uow:  # reads only: left without a commit
        due = [(delivery, uow.watched.get(delivery.tracking_number))
               for delivery in uow.deliveries.due_agency_notices(now, BATCH_SIZE)]
    for delivery, application in due:
        compose = functools.partial(uow.templates.render, delivery.event_type, delivery.language,
                                    **agency_values(application, delivery.language, today))
        try:
            attempt(uow, delivery, uow.policy.agency_address(application.agency), compose)
        except (DeliveryFailed, DeliveryDeferred):
            continue


def citizen_values(fact: dict, language: str) -> dict:
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
        "working_days_left": fact.get("working_days_left"),
        "extended_by": fact.get("extended_by"),
        **fee_values(fact),
    }


def so_m(tiyin: int) -> str:
    """An amount in tiyin as citizens read it: so'm with thin groups, tiyin only when there are any (82 400,
    1 250,50); integer arithmetic, no float."""
    whole, part = divmod(int(tiyin), 100)
    grouped = f"{whole:,}".replace(",", "\u00a0")
    return f"{grouped},{part:02d}" if part else grouped


def fee_values(fact: dict) -> dict:
    """A paid application's invoice and payment for the templates: `invoice` (number, amount, due date,
    pay_url: Payme's checkout) and `payment` (amount, method, receipt), or None."""
    invoice, payment = fact.get("invoice"), fact.get("payment")
    return {
        "invoice": None if invoice is None else {
            "number": invoice["invoice_number"], "amount": so_m(invoice["amount_tiyin"]), "currency": invoice["currency"],
            "due_date": invoice["due_date"].strftime("%d.%m.%Y"), "pay_url": invoice["pay_url"], "state": invoice["state"]},
        "payment": None if payment is None else {
            "amount": so_m(payment["amount_tiyin"]), "method": payment["method"], "receipt_number": payment["receipt_number"],
            "reason": payment["reason"]},
    }


def agency_values(application, language: str, today) -> dict:
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


def region_name(slug: str, language: str) -> str:
    try:
        return localized(get_region(slug).names, language)
    except ConfigurationError:
        return slug
