"""Notifications' read side: an application's deliveries and the pending ones by channel."""
from sqlalchemy.orm import Session

from oss_common.events import rfc3339
from services.notifications.repository import Deliveries


def deliveries_of(session: Session, tracking_number: str) -> dict:
    """A tracking number's deliveries, oldest first."""
    rows = Deliveries(session).of(tracking_number)
    session.rollback()
    return {"tracking_number": tracking_number, "items": [delivery_view(row) for row in rows]}


def delivery_view(delivery) -> dict:
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


def pending_by_channel(session: Session) -> dict[str, int]:
    """Deliveries waiting to be sent, by channel."""
    counts = Deliveries(session).pending_by_channel()
    session.rollback()
    return counts
