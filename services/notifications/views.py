"""Notifications' read side: an application's deliveries and the pending ones by channel."""
from sqlalchemy import func, select

from oss_common.events import rfc3339
from services.notifications.domain import PENDING
from services.notifications.models import Delivery


def deliveries_of(session, tracking_number: str) -> dict:
    """A tracking number's deliveries, oldest first."""
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
