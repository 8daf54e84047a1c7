"""The outbox: an event committed while the broker is down is delivered once it is back."""
import subprocess
import time

import pytest
import requests
from kombu import Connection, Queue, binding

from oss_common.events import EVENTS_EXCHANGE
from tests.integration.conftest import auth, valid_submission

pytestmark = pytest.mark.usefixtures("rabbitmqctl_available")


def rabbitmqctl(*args):
    subprocess.run(["rabbitmqctl", *args], check=True, capture_output=True, timeout=120)


def broker_up(uri, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with Connection(uri, connect_timeout=2) as connection:
                connection.ensure_connection(max_retries=1)
                return True
        except Exception:  # noqa: BLE001
            time.sleep(0.5)
    return False


@pytest.mark.broker_restart
def test_event_committed_while_broker_is_down_arrives_exactly_once(stack):
    queue_name = f"test-dedup-{time.monotonic_ns()}"
    queue = Queue(queue_name, bindings=[binding(EVENTS_EXCHANGE, routing_key="fergana.application.submitted")],
                  durable=True, auto_delete=False)
    with Connection(stack.amqp_uri) as connection:
        queue(connection.channel()).declare()
    rabbitmqctl("stop_app")
    try:
        response = requests.post(f"{stack.urls['fergana']}/api/v1/applications", json=valid_submission("fergana"), timeout=30,
                                 headers=auth("operator", "fergana"))
        assert response.status_code == 201, "intake must accept applications while the broker is down"
        number = response.json()["tracking_number"]
        time.sleep(2)  # the relay tries, fails and backs off
    finally:
        rabbitmqctl("start_app")
    assert broker_up(stack.amqp_uri)
    applied = {}  # event_id -> tracking number: what a deduplicating consumer keeps
    first_seen = None
    deadline = time.monotonic() + 60
    with Connection(stack.amqp_uri) as connection:
        bound = queue(connection.channel())
        # After the first arrival, wait a little longer for a re-send that would have to be absorbed.
        while time.monotonic() < deadline and (first_seen is None or time.monotonic() - first_seen < 2.0):
            message = bound.get(no_ack=False)
            if message is None:
                time.sleep(0.1)
                continue
            event = message.decode()
            applied.setdefault(event["event_id"], event["data"]["tracking_number"])
            if event["data"]["tracking_number"] == number and first_seen is None:
                first_seen = time.monotonic()
            message.ack()
        bound.delete()
    assert list(applied.values()).count(number) == 1, "the event must arrive, and be one event"
