"""Notifications' unit of work, and the collaborators its operations work with, wired once per worker.

A delivery takes several units of work by design (recorded pending, then claimed, then settled), so
that no transaction stays open while a channel sends; each is committed once, and the
`notification.failed` event a failure raises is written to the outbox in the failure's commit.
"""
from dataclasses import dataclass

from sqlalchemy.orm import Session

from oss_common.unit_of_work import SqlUnitOfWork
from services.notifications.channels import ChannelSet
from services.notifications.domain import DeliveryPolicy
from services.notifications.messages import TemplateBook
from services.notifications.models import OutboxEvent


class NotificationsUnitOfWork(SqlUnitOfWork):
    def __init__(self, session: Session, policy: DeliveryPolicy):
        super().__init__(session, OutboxEvent, policy.region, policy.producer)


@dataclass(frozen=True)
class Notifier:
    """The worker's session, channels, templates, delivery policy and delivery metrics (`observe`:
    `finished(delivery)`, `retried(delivery)`)."""

    session: Session
    channels: ChannelSet
    templates: TemplateBook
    policy: DeliveryPolicy
    observe: object

    def unit_of_work(self) -> NotificationsUnitOfWork:
        return NotificationsUnitOfWork(self.session, self.policy)
