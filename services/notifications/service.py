"""Notifications' nameko service: `notifications_<region>` (HTTP on 8200 + n), or one national
`notifications` (8200) when its binding (NOTIFICATION_BINDINGS=*.application.*) says so."""
from marshmallow import ValidationError
from nameko.rpc import rpc

from oss_common.auth import OFFICER, OPERATOR, Forbidden
from oss_common.callers import RpcCaller
from oss_common.consumers import DeadLetter, event_handler
from oss_common.database import Database
from oss_common.http import HealthCheck, api, principal, query_params
from oss_common.metrics import Metrics
from oss_common.openapi import OpenApiDocs
from oss_common.outbox import OutboxRelay
from oss_common.regions import get_region
from services.notifications import use_cases, views
from services.notifications.commands import WatchDeadlines, citizen_notice
from services.notifications.dependencies import Channels, DeliveryMetrics, Policy, Templates
from services.notifications.entrypoints import configured_timer
from services.notifications.exceptions import DeliveryDeferred, DeliveryFailed
from services.notifications.models import OutboxEvent
from services.notifications.schemas import DeliveryListSchema, DeliveryQuerySchema
from services.notifications.unit_of_work import NotificationsUnitOfWork

DELIVERY_QUERY = DeliveryQuerySchema()
DEFAULT_DEADLINE_CHECK_SECONDS = 300


class NotificationService(HealthCheck, OpenApiDocs):
    """Runs once per region (the runner names it `notifications_<slug>`), or once nationally."""

    name = "notifications"

    db = Database()
    outbox_relay = OutboxRelay(OutboxEvent)
    channels = Channels()
    templates = Templates()
    policy = Policy()
    deliveries = DeliveryMetrics()
    metrics = Metrics()
    caller = RpcCaller()

    # Events

    @event_handler("{region}.application.*", queue_suffix="applications", bindings_config_key="NOTIFICATION_BINDINGS",
                   expected_exceptions=(DeadLetter, DeliveryDeferred))
    def on_application_event(self, event):
        try:
            command = citizen_notice(event)
        except ValidationError as exc:
            raise DeadLetter(f"application event body invalid: {', '.join(sorted(exc.messages))}") from None
        if command is None:
            return
        try:
            use_cases.notify_citizen(self.unit_of_work(), command)
        except DeliveryFailed as exc:
            raise DeadLetter(f"delivery failed: {exc}") from None

    # Timer

    @configured_timer("DEADLINE_CHECK_SECONDS", DEFAULT_DEADLINE_CHECK_SECONDS)
    def watch_deadlines(self):
        use_cases.watch_deadlines(self.unit_of_work(), WatchDeadlines())

    # RPC

    @rpc
    def list_deliveries(self, tracking_number):
        query = DELIVERY_QUERY.load({"tracking": tracking_number})
        return self._deliveries(self.caller.require(OPERATOR, OFFICER), query["tracking"])

    # HTTP

    @api("GET", "/api/v1/deliveries", summary="Deliveries of one application's notifications", query=DeliveryQuerySchema,
         response=DeliveryListSchema, roles=(OPERATOR, OFFICER))
    def http_deliveries(self, request):
        return self._deliveries(principal(request), query_params(request, DELIVERY_QUERY)["tracking"])

    def _deliveries(self, caller, tracking):
        # A national instance serves every region: staff see only their own region's applications.
        if not tracking.startswith(get_region(caller.region).prefix + "-"):
            raise Forbidden(f"{tracking} is not an application of {caller.region}",
                            fields={"tracking": [f"not an application of {caller.region}"]})
        return views.deliveries_of(self.db, tracking)

    def unit_of_work(self):
        """This worker's unit of work: its session, channels, templates, policy and delivery metrics."""
        return NotificationsUnitOfWork(self.db, self.policy, self.channels, self.templates, self.deliveries)
