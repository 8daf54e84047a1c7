"""The protocol every delivery follows (a citizen's message, an agency's notice), so that no message can go out twice:
  1. its row, unique per (event id, channel), is committed as pending;
  2. the attempt is claimed (attempts + 1, `attempt_started_at`) and committed before anything is sent;
  3. the channel sends; the outcome is committed and the claim released.
A row still claimed after an attempt could have lasted was left mid-send (a crash): it is failed as
"outcome unknown" rather than sent again. No transaction stays open while a channel sends.

Once the channel has answered, the outcome is known and only has to be written down: a database that
is away then is waited out (capped back-off, for up to the policy's `record_outcome_for`), so that an
outage between sending and recording neither sends twice nor leaves the claim for the watch to call
"outcome unknown".
"""
import logging
import time
from datetime import datetime, timedelta

from oss_common.events import utc_now
from oss_common.failures import is_transient, retry_delay
from services.notifications.domain import FINISHED, PENDING, SENT, delivery_key
from services.notifications.exceptions import (
    DeliveryDeferred, DeliveryFailed, PermanentFailure, TemplateProblem, TemporaryFailure,
)
from services.notifications.models import Delivery
from services.notifications.repository import MAX_ERROR_LENGTH
from services.notifications.unit_of_work import NotificationsUnitOfWork

log = logging.getLogger(__name__)

FAILED_EVENT = "notification.failed"
LEFT_MID_SEND = "outcome unknown: an attempt stopped while sending; not repeated so that it cannot arrive twice"


def attempt(uow: NotificationsUnitOfWork, delivery: Delivery, address: str | None, compose,
            now: datetime | None = None) -> Delivery:
    """Try a pending delivery once (`compose()` makes its message). Returns the delivery when it is settled
    (sent now or before, skipped); raises DeliveryDeferred or DeliveryFailed otherwise."""
    now = now or utc_now()
    if delivery.status != PENDING:
        return delivery
    try:
        if delivery.attempt_started_at is not None:
            if now - delivery.attempt_started_at < uow.policy.abandon_after:
                raise DeliveryDeferred("an earlier attempt at this delivery may still be under way", delivery)
            raise PermanentFailure(LEFT_MID_SEND)
        message = compose()
        if not _claim(uow, delivery, now):
            if delivery.status in FINISHED:
                return delivery
            raise DeliveryDeferred("another worker is trying this delivery", delivery)
        _send(uow, delivery, address, message)
    except (PermanentFailure, TemplateProblem) as exc:
        if fail(uow, delivery, str(exc)):
            raise DeliveryFailed(str(exc)) from None
        return delivery
    _settle(uow, delivery, SENT)
    uow.observe.finished(delivery)
    return delivery


def fail(uow: NotificationsUnitOfWork, delivery: Delivery, error: str) -> bool:
    """Mark a pending delivery failed for good and raise `<region>.notification.failed` in the same
    commit; False when it was already settled (nothing changes then)."""
    now = utc_now()
    with uow:
        failed = uow.deliveries.fail(delivery, error, now)
        if failed:
            uow.emit(FAILED_EVENT, {
                "tracking_number": delivery.tracking_number, "application_region": delivery.region,
                "event_id": delivery.event_id, "event_type": delivery.event_type, "audience": delivery.audience,
                "channel": delivery.channel, "attempts": delivery.attempts, "error": error[:MAX_ERROR_LENGTH],
            }, occurred_at=now)
        uow.commit()
    if failed:
        uow.observe.finished(delivery)
    return failed


def _send(uow, delivery, address, message):
    """Hand the message to its channel; a failure that passes keeps the delivery pending for a later attempt."""
    try:
        uow.channels.send(delivery.channel, address, message, delivery_key(delivery.event_id, delivery.channel))
    except TemporaryFailure as exc:
        # Tried again for as long as it takes (the gateway or server is away, or no channel is set
        # up yet): a citizen's message is never given up for a failure that passes.
        policy = uow.policy
        retry_at = utc_now() + timedelta(seconds=retry_delay(delivery.attempts, policy.retry_base_seconds,
                                                             policy.retry_ceiling_seconds))
        _settle(uow, delivery, PENDING, error=str(exc), next_attempt_at=retry_at)
        uow.observe.retried(delivery)
        raise DeliveryDeferred(str(exc), delivery) from None


def _claim(uow, delivery, now):
    with uow:
        claimed = uow.deliveries.claim(delivery, now)
        uow.commit()
    return claimed


def _settle(uow, delivery, status, error=None, next_attempt_at=None):
    """Record an attempt's outcome (sent, or pending again) and release the claim, waiting out a
    database that is away for up to `record_outcome_for`; raises what the last try raised after that,
    or at once for a failure that does not pass."""
    policy = uow.policy
    deadline = time.monotonic() + policy.record_outcome_for.total_seconds()
    tries = 0
    while True:
        try:
            with uow:
                uow.deliveries.settle(delivery, status, error, next_attempt_at)
                uow.commit()
            return
        except Exception as exc:  # only a failure that passes is waited out
            tries += 1
            if not is_transient(exc) or time.monotonic() >= deadline:
                raise
            delay = retry_delay(tries, policy.retry_base_seconds, policy.retry_ceiling_seconds)
            # (Nothing of the delivery is read here: after the rollback its attributes would load again.)
            log.warning("a delivery's outcome (%s) cannot be recorded yet (%s); trying again in %.1fs",
                        status, type(exc).__name__, delay)
            time.sleep(delay)
