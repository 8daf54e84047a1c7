"""Notifications' read side: an application's deliveries and the pending ones by channel."""
from sqlalchemy.orm import Session

from services.notifications.repository import Deliveries
from services.notifications.schemas import DeliveryListSchema

DELIVERY_LIST = DeliveryListSchema()


def deliveries_of(session: Session, tracking_number: str) -> dict:
    """A tracking number's deliveries, oldest first, as DeliveryListSchema shows them: no address, no message text."""
    view = DELIVERY_LIST.dump({"tracking_number": tracking_number, "items": Deliveries(session).of(tracking_number)})
    session.rollback()
    return view


def pending_by_channel(session: Session) -> dict[str, int]:
    """Deliveries waiting to be sent, by channel."""
    counts = Deliveries(session).pending_by_channel()
    session.rollback()
    return counts
