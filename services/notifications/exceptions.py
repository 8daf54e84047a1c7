"""Why a message did not go out. Their texts name no address and quote no message, so they may be
logged, stored as a delivery's last error and carried in events."""
from oss_common.failures import RetryLater


class ChannelFailure(Exception):
    """A channel could not deliver a message."""


class TemporaryFailure(ChannelFailure):
    """The gateway or mail server is down or busy (connection refused, 5xx, SMTP 4xx): try again later."""


class ChannelNotConfigured(TemporaryFailure):
    """The channel has no server or gateway configured: its messages are held (retried with back-off)
    until it is, never failed for it."""


class PermanentFailure(ChannelFailure):
    """Trying again cannot help (a refused number or address, a missing setting) or could send the
    message twice (the server took it but never answered)."""


class TemplateProblem(Exception):
    """No template for an event, or one that does not render."""


class DeliveryFailed(Exception):
    """A delivery was recorded as failed (and `notification.failed` raised) and is not retried."""


class DeliveryDeferred(RetryLater):
    """A delivery is still pending and must be tried again later: its event waits out a back-off
    (oss_common.consumers) and comes back, for as long as it takes."""

    def __init__(self, reason, delivery=None):
        super().__init__(reason)
        self.delivery = delivery
