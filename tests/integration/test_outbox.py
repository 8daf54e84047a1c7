"""The outbox: an event committed while the broker is down is delivered once it is back; one no queue
is bound for stays unsent until one is; confirms settle exactly the tags they name."""
import logging
import subprocess
import time

import pytest
import requests
from kombu import Connection, Queue, binding
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from oss_common.config import PROJECT_ROOT
from oss_common.database import upgrade
from oss_common.events import EVENTS_EXCHANGE, make_event
from oss_common.metrics import OUTBOX_RETURNED, OUTBOX_UNROUTABLE
from oss_common.outbox import OutboxRelay, outbox_row
from services.intake.models import OutboxEvent
from tests.conftest import fresh_vhost
from tests.integration.conftest import auth, valid_submission


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
@pytest.mark.usefixtures("rabbitmqctl_available")
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


class _Container:
    """What OutboxRelay.setup reads of its nameko container."""

    service_name = "intake_jizzakh"

    def __init__(self, amqp_uri, database_url):
        self.config = {"AMQP_URI": amqp_uri, "DATABASE_URL": database_url, "REGION": "jizzakh"}


@pytest.fixture
def relay(databases):
    database_url = databases.new("outbox-relay")
    upgrade(PROJECT_ROOT / "services" / "intake" / "migrations", database_url)
    with fresh_vhost("relay") as amqp_uri:
        provider = OutboxRelay(OutboxEvent, linger=0)
        provider.container = _Container(amqp_uri, database_url)
        provider.setup()
        yield provider
        provider._close()
        provider.engine.dispose()


def _outbox_rows(relay):

    table = relay.model.__table__
    with relay.engine.connect() as connection:
        return {row.event_id: row for row in connection.execute(select(table)).all()}


def test_an_event_no_queue_is_bound_for_stays_in_the_outbox_until_one_is(relay, caplog):
    caplog.set_level(logging.WARNING, logger="oss_common.outbox")
    returned_before = OUTBOX_RETURNED.labels("intake_jizzakh", "jizzakh")._value.get()
    unroutable = make_event("application.submitted", "jizzakh", "intake_jizzakh", {"n": 1})
    with Session(relay.engine) as session:
        session.add(relay.model(**outbox_row(unroutable)))
        session.commit()
    relay.relay_batch()
    row = _outbox_rows(relay)[unroutable["event_id"]]
    assert row.sent_at is None and row.returns == 1 and row.retry_at is not None, "a returned event must stay unsent"
    assert OUTBOX_RETURNED.labels("intake_jizzakh", "jizzakh")._value.get() == returned_before + 1
    with relay.engine.connect() as connection:
        relay._count_backlog(connection)
    assert OUTBOX_UNROUTABLE.labels("intake_jizzakh", "jizzakh")._value.get() == 1

    relay.relay_batch()  # held: not published again before its retry time
    assert _outbox_rows(relay)[unroutable["event_id"]].returns == 1
    with Session(relay.engine) as session:  # its hold over, still no queue: returned again, held longer
        session.execute(update(relay.model).values(retry_at=None))
        session.commit()
    relay.relay_batch()
    again = _outbox_rows(relay)[unroutable["event_id"]]
    assert again.sent_at is None and again.returns == 2
    # An error the first time, a warning when it comes back again (the alert keeps saying it).
    said = [(record.levelno, record.getMessage()) for record in caplog.records if "unroutable" in record.getMessage()
            or " again " in record.getMessage()]
    assert [level for level, _ in said] == [logging.ERROR, logging.WARNING], said
    assert all("jizzakh.application.submitted" in message for _, message in said)

    queue = Queue("late-consumer", bindings=[binding(EVENTS_EXCHANGE, routing_key="jizzakh.application.*")],
                  durable=True, auto_delete=False)
    routable = make_event("application.submitted", "jizzakh", "intake_jizzakh", {"n": 2})
    with Connection(relay.amqp_uri) as connection:
        queue(connection.channel()).declare()
    with Session(relay.engine) as session:
        session.add(relay.model(**outbox_row(routable)))
        session.execute(update(relay.model).values(retry_at=None))
        session.commit()
    relay.relay_batch()
    rows = _outbox_rows(relay)
    assert rows[unroutable["event_id"]].sent_at is not None and rows[routable["event_id"]].sent_at is not None
    with Connection(relay.amqp_uri) as connection:
        bound = queue(connection.channel())
        received = []
        for _ in range(2):
            message = bound.get(no_ack=True)
            received.append(message.decode()["event_id"])
    assert received == [unroutable["event_id"], routable["event_id"]]


def test_acks_and_nacks_settle_their_own_tags_or_every_one_up_to_theirs(relay):
    relay._unconfirmed = {1: "a", 2: "b", 3: "c", 4: "d", 5: "e"}
    relay._nacked = set()
    relay._on_ack(3, False)  # out of order, not multiple: only tag 3
    assert sorted(relay._unconfirmed) == [1, 2, 4, 5]
    relay._on_ack(2, True)  # multiple: 1 and 2
    assert sorted(relay._unconfirmed) == [4, 5]
    relay._on_nack(5, False)
    assert relay._nacked == {"e"} and sorted(relay._unconfirmed) == [4]
    relay._on_ack(9, True)  # a confirm of tags no longer waited for changes nothing else
    assert relay._unconfirmed == {} and relay._nacked == {"e"}


def test_an_event_the_broker_nacks_stays_unsent_and_goes_once_the_broker_takes_it(relay):
    """A real nack: the only queue bound for the event is full and refuses publishes (reject-publish),
    so the broker nacks it. The relay raises (its loop closes the channel and backs off), the row
    stays unsent; once the queue takes messages again the next batch sends it, and marks it sent."""
    event = make_event("application.submitted", "jizzakh", "intake_jizzakh", {"n": 3})
    full = Queue("full-consumer", bindings=[binding(EVENTS_EXCHANGE, routing_key="jizzakh.application.*")],
                 durable=True, auto_delete=False, queue_arguments={"x-max-length": 0, "x-overflow": "reject-publish"})
    with Connection(relay.amqp_uri) as connection:
        full(connection.channel()).declare()
    with Session(relay.engine) as session:
        session.add(relay.model(**outbox_row(event)))
        session.commit()
    with pytest.raises(RuntimeError, match="nacked"):
        relay.relay_batch()
    relay._close()  # as the relay's loop does after any failure
    row = _outbox_rows(relay)[event["event_id"]]
    assert row.sent_at is None and row.returns == 0, "a nacked event must stay unsent (and is not an unroutable one)"

    taking = Queue("taking-consumer", bindings=[binding(EVENTS_EXCHANGE, routing_key="jizzakh.application.*")],
                   durable=True, auto_delete=False)
    with Connection(relay.amqp_uri) as connection:
        full(connection.channel()).delete()
        taking(connection.channel()).declare()
    relay.relay_batch()
    assert _outbox_rows(relay)[event["event_id"]].sent_at is not None
    with Connection(relay.amqp_uri) as connection:
        bound = taking(connection.channel())
        assert bound.get(no_ack=True).decode()["event_id"] == event["event_id"]
        assert bound.get(no_ack=True) is None
