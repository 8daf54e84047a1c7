"""An ack or requeue on a connection the broker has just dropped must not kill the service."""
from types import SimpleNamespace

import pytest
from nameko.messaging import QueueConsumer

from oss_common.consumers import tolerate_dropped_connections


class Message:
    """Looks alive to nameko (its channel has a connection) until the socket write fails."""

    def __init__(self, error):
        self.channel = SimpleNamespace(connection=object())
        self.error = error

    def ack(self):
        raise self.error

    requeue = ack


@pytest.mark.parametrize("error", [ConnectionResetError(104, "Connection reset by peer"), BrokenPipeError(32, "Broken pipe")])
def test_a_socket_error_on_ack_or_requeue_is_let_go(error):
    tolerate_dropped_connections()
    tolerate_dropped_connections()  # once is enough; a second call wraps nothing twice
    consumer = QueueConsumer()
    consumer.ack_message(Message(error))
    consumer.requeue_message(Message(error))


def test_any_other_error_still_surfaces():
    tolerate_dropped_connections()
    with pytest.raises(ValueError):
        QueueConsumer().ack_message(Message(ValueError("a bug, not a lost connection")))
