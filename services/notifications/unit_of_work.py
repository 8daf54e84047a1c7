"""Notifications' unit of work: the worker's session and repositories (deliveries, the watched
applications), with what a delivery needs from outside (channels, templates, the delivery policy and the
delivery metrics, `observe`: `finished(delivery)`, `retried(delivery)`), wired once per worker.

A delivery takes several blocks of it by design (recorded pending, then claimed, then settled), so that
no transaction stays open while a channel sends; each block commits once, and the `notification.failed`
event a failure raises is written to the outbox in the failure's commit.
"""
from sqlalchemy.orm import Session

from oss_common.unit_of_work import SqlUnitOfWork
from services.notifications.channels import ChannelSet
from services.notifications.domain import DeliveryPolicy
from services.notifications.messages import TemplateBook
from services.notifications.models import OutboxEvent
from services.notifications.repository import Deliveries, WatchedApplications


class NotificationsUnitOfWork(SqlUnitOfWork):
    def __init__(self, session: Session, policy: DeliveryPolicy, channels: ChannelSet | None = None,
                 templates: TemplateBook | None = None, observe: object = None):
        super().__init__(session, OutboxEvent, policy.region, policy.producer)
        self.policy = policy
        self.channels = channels
        self.templates = templates
        self.observe = observe
        self.deliveries = Deliveries(session)
        self.watched = WatchedApplications(session)
