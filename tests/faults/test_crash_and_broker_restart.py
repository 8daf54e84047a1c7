"""Nothing is lost: `kill -9` of intake and a broker restart in the middle of a load."""
import subprocess
import time
import uuid

import eventlet
import pytest
import requests
from kombu import Connection, Queue, binding
from sqlalchemy import create_engine, text

from oss_common.events import EVENTS_EXCHANGE
from tests.conftest import as_caller, free_port
from tests.conftest import wait_for
from tests.faults.test_consumer_down import reported
from tests.integration.conftest import auth, valid_submission
from tests.integration.personal_data import assert_no_personal_data, personal_values, unique_applicant
from tests.integration.test_reporting import as_counts, direct_figures

CLIENTS = 8
PER_CLIENT = 250  # 2,000 submissions in all


def durable_listener(amqp_uri, pattern):
    queue = Queue(f"test-faults-{uuid.uuid4().hex[:8]}", bindings=[binding(EVENTS_EXCHANGE, routing_key=pattern)],
                  durable=True, auto_delete=False, queue_arguments={"x-queue-type": "quorum"})
    with Connection(amqp_uri) as connection:
        queue(connection.channel()).declare()
    return queue


def drain(amqp_uri, queue, expected, timeout=90):
    """Event ids and tracking numbers that arrived (a deduplicating consumer keeps one per event id)."""
    events = {}
    deliveries = 0
    deadline = time.monotonic() + timeout
    with Connection(amqp_uri) as connection:
        bound = queue(connection.channel())
        while time.monotonic() < deadline and len(set(events.values())) < expected:
            message = bound.get(no_ack=False)
            if message is None:
                time.sleep(0.1)
                continue
            body = message.decode()
            events.setdefault(body["event_id"], body["data"]["tracking_number"])
            deliveries += 1
            message.ack()
        bound.delete()
    return events, deliveries


def submissions(keys):
    """A submission per key, each by an applicant of their own (so a leak of one is found)."""
    return {key: valid_submission("jizzakh", applicant=unique_applicant()) for key in keys}


def load(url_of, bodies, acknowledged):
    """Clients that retry with the same Idempotency-Key and body until they get an answer, as a desk would."""
    keys = list(bodies)

    def client(batch):
        with requests.Session() as http:
            for key in batch:
                while True:
                    try:
                        response = http.post(url_of(), json=bodies[key],
                                             headers={"Idempotency-Key": key, **auth("operator", "jizzakh")}, timeout=10)
                    except requests.RequestException:
                        eventlet.sleep(0.2)
                        continue
                    if response.status_code in (200, 201):
                        acknowledged[key] = response.json()["tracking_number"]
                        break
                    assert response.status_code >= 500, response.text  # only outages are retried
                    eventlet.sleep(0.2)

    pool = eventlet.GreenPool(CLIENTS)
    for index in range(CLIENTS):
        pool.spawn(client, keys[index::CLIENTS])
    return pool


def stored(database_url):
    engine = create_engine(database_url)
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT idempotency_key, tracking_number FROM applications")).all()
    engine.dispose()
    return rows


def assert_outbox_drained(database_url):
    engine = create_engine(database_url)
    with engine.connect() as connection:
        unsent = connection.execute(text("SELECT count(*) FROM outbox WHERE sent_at IS NULL")).scalar_one()
    engine.dispose()
    assert unsent == 0, f"{unsent} events still waiting in intake's outbox"


def assert_reporting_counts_each_once(reporting, intake_db):
    """Regional reporting, a real consumer that restarts and reconnects like any other, ends with
    exactly the figures a direct count over intake's database gives: nothing lost, nothing doubled."""
    expected = direct_figures(intake_db)

    def caught_up():
        return reported(reporting, "summary")["totals"]["applications"] >= expected["total"]

    wait_for(caught_up, 120, "reporting counting every stored application", interval=0.5)
    time.sleep(1.0)  # a doubled event would arrive now
    summary = reported(reporting, "summary")
    assert summary["totals"] == {"applications": expected["total"], "open": expected["open"]}
    assert as_counts(summary["by_status"], "status") == expected["counts"]["status"]
    assert as_counts(summary["by_centre"], "centre") == expected["counts"]["centre"]


def assert_exactly_once(rows, keys, acknowledged, events):
    assert len(rows) == len(keys), "every submission is stored once"
    assert len({row.idempotency_key for row in rows}) == len(keys)
    by_key = {row.idempotency_key: row.tracking_number for row in rows}
    assert all(by_key[key] == number for key, number in acknowledged.items()), "acknowledged means stored"
    assert len(acknowledged) == len(keys)
    numbers = list(events.values())
    assert sorted(numbers) == sorted(by_key.values()), "each stored application's event arrives once"


def test_kill_9_in_the_middle_of_2000_submissions_loses_and_doubles_nothing(fault_stack):
    port = free_port()
    database_url = fault_stack.databases.new("intake-jizzakh")
    queue = durable_listener(fault_stack.amqp_uri, "jizzakh.application.submitted")
    reporting = fault_stack.start("reporting", region="jizzakh", database_url=fault_stack.databases.new("reporting-jizzakh"))
    intake = fault_stack.start("intake", region="jizzakh", database_url=database_url, HTTP_PORT=port)
    keys = [str(uuid.uuid4()) for _ in range(CLIENTS * PER_CLIENT)]
    bodies = submissions(keys)
    acknowledged = {}
    pool = load(lambda: f"http://127.0.0.1:{port}/api/v1/applications", bodies, acknowledged)
    while len(acknowledged) < len(keys) // 3:
        eventlet.sleep(0.05)
    intake.kill()  # SIGKILL: no clean shutdown, workers and relay die mid-flight
    eventlet.sleep(1.0)
    fault_stack.start("intake", region="jizzakh", database_url=database_url, HTTP_PORT=port)
    pool.waitall()
    events, _ = drain(fault_stack.amqp_uri, queue, expected=len(keys))
    assert_exactly_once(stored(database_url), keys, acknowledged, events)
    assert_reporting_counts_each_once(reporting, database_url)
    assert_outbox_drained(database_url)
    assert_no_personal_data(fault_stack.processes, [value for body in bodies.values()
                                                    for value in personal_values(body["applicant"])])


@pytest.mark.broker_restart
@pytest.mark.usefixtures("rabbitmqctl_available")
def test_broker_restart_in_the_middle_of_a_load_loses_and_doubles_nothing(fault_stack):
    database_url = fault_stack.databases.new("intake-jizzakh")
    queue = durable_listener(fault_stack.amqp_uri, "jizzakh.application.submitted")
    reporting = fault_stack.start("reporting", region="jizzakh", database_url=fault_stack.databases.new("reporting-jizzakh"))
    intake = fault_stack.start("intake", region="jizzakh", database_url=database_url)
    keys = [str(uuid.uuid4()) for _ in range(CLIENTS * 100)]
    bodies = submissions(keys)
    acknowledged = {}
    pool = load(lambda: f"{intake.url}/api/v1/applications", bodies, acknowledged)
    while len(acknowledged) < len(keys) // 3:
        eventlet.sleep(0.05)
    subprocess.run(["rabbitmqctl", "stop_app"], check=True, capture_output=True, timeout=120)
    try:
        eventlet.sleep(2.0)  # submissions go on; the relay keeps their events
    finally:
        subprocess.run(["rabbitmqctl", "start_app"], check=True, capture_output=True, timeout=120)
    pool.waitall()
    events, _ = drain(fault_stack.amqp_uri, queue, expected=len(keys))
    assert_exactly_once(stored(database_url), keys, acknowledged, events)
    # Both reconnected by themselves: intake's relay drained its outbox, reporting's consumer counted
    # the events published after the restart, and intake's RPC answers again.
    assert_outbox_drained(database_url)
    assert_reporting_counts_each_once(reporting, database_url)
    with fault_stack.rpc(caller=as_caller("officer", "jizzakh")) as cluster:
        assert cluster.intake_jizzakh.get_application(acknowledged[keys[0]])["tracking_number"] == acknowledged[keys[0]]
    assert_no_personal_data(fault_stack.processes, [value for body in bodies.values()
                                                    for value in personal_values(body["applicant"])])
