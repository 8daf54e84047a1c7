"""Notifications' delivery metrics. Labels are service, region, channel and outcome, never an address
or a tracking number."""
from prometheus_client import Counter, Gauge

# Settled deliveries by outcome (sent or failed): the alert rules read this one.
NOTIFICATION_DELIVERIES = Counter(
    "oss_notification_deliveries_total", "Notification delivery attempts, by channel and outcome (sent or failed).",
    ["region", "channel", "outcome"],
)
NOTIFICATION_RETRIES = Counter(
    "oss_notification_retries_total", "Delivery attempts that failed for now and will be tried again.",
    ["service", "region", "channel"],
)
NOTIFICATION_PENDING = Gauge(
    "oss_notification_pending_deliveries", "Deliveries waiting to be sent (first try or a retry), counted periodically.",
    ["service", "region", "channel"],
)
