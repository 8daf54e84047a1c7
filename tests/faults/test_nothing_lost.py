"""Failures that pass delay work and never drop it, and read models never depend on clocks.

One region's whole pipeline (catalogue, intake, reporting, notifications with an SMS gateway on
loopback) against the real broker and database, its queues declared as `oss broker definitions`
declares them. Four desks file applications at a steady pace while, one after another, intake's
database goes away, the catalogue stops while reporting's and notifications' databases are away,
and the SMS gateway answers 503, each for OSS_FAULT_SECONDS. Afterwards every
citizen got exactly one SMS, reporting counts what intake holds, and nothing is dead-lettered. In a
second test the region's notifications starts OSS_FAULT_NOTIFICATIONS_LATE_SECONDS after intake,
and sends everything filed meanwhile.

`make test` runs them shorter than the issue's figures, to keep the suite's time (20 s faults, 120
applications, notifications 30 s late). `make test-faults-full` (CI's own step) runs the issue's on
PostgreSQL: OSS_FAULT_SECONDS=60, OSS_FAULT_APPLICATIONS=500 and OSS_FAULT_NOTIFICATIONS_LATE_SECONDS=600.
"""
import os
import threading
import time
import uuid
from collections import Counter

import requests
from kombu import Connection
from sqlalchemy import create_engine, text

from oss_common.cli import deployment_event_topology
from oss_common.dead_letters import DeadLetters
from oss_common.events import dead_letter_queue, event_queue, retry_queue
from oss_common.regions import deployment_regions
from tests.conftest import as_caller, free_port, wait_for
from tests.faults.test_poison_and_database import DatabaseOutage
from tests.integration.conftest import auth, valid_submission
from tests.integration.test_metrics import samples, scrape
from tests.integration.test_notifications import SmsGatewayDouble

OUTAGE_SECONDS = float(os.environ.get("OSS_FAULT_SECONDS", "20"))
APPLICATIONS = int(os.environ.get("OSS_FAULT_APPLICATIONS", "120"))
NOTIFICATIONS_LATE_SECONDS = float(os.environ.get("OSS_FAULT_NOTIFICATIONS_LATE_SECONDS", "30"))
RETRY = {"RETRY_BASE_SECONDS": 0.2, "RETRY_CEILING_SECONDS": 2, "QUEUE_DEPTH_SECONDS": 1}
REGION = "jizzakh"


def declare_deployment_queues(amqp_uri, region):
    """What importing `oss broker definitions` does for the region's consumers: their queues exist
    and are bound before any consumer runs."""
    topology = deployment_event_topology(deployment_regions(region))
    with Connection(amqp_uri) as connection:
        channel = connection.channel()
        for name, patterns in topology:
            for queue in (event_queue(name, patterns), dead_letter_queue(name), retry_queue(name)):
                queue(channel).declare()
    return [name for name, _ in topology]


def waiting_for_notifications(amqp_uri):
    with Connection(amqp_uri) as connection:
        return connection.channel().queue_declare(f"notifications_{REGION}.applications", passive=True).message_count


class Desk:
    """A desk's client: the same request with the same Idempotency-Key until it is created, and a
    record of what the desk saw (503s while the database is away, when each one was created)."""

    def __init__(self, url):
        self.url = url
        self.created, self.refused, self.lock = [], 0, threading.Lock()

    def file(self, body):
        key = uuid.uuid4().hex
        while True:
            try:
                response = requests.post(self.url, json=body, headers={**auth("operator", REGION),
                                                                        "Idempotency-Key": key}, timeout=30)
                if response.status_code in (200, 201):
                    with self.lock:
                        self.created.append((time.monotonic(), response.json()["tracking_number"]))
                    return
                assert response.status_code == 503, response.text  # the database away: anything else is a defect
                with self.lock:
                    self.refused += 1
            except requests.ConnectionError:
                pass
            time.sleep(0.5)

    def run(self, count, interval, start):
        """`count` applications, the k-th due at start + k * interval (a queue at the desk catches up
        after an outage)."""
        for k in range(count):
            time.sleep(max(0.0, start + k * interval - time.monotonic()))
            self.file(valid_submission(REGION))

    @property
    def numbers(self):
        with self.lock:
            return [number for _, number in self.created]

    def filed_between(self, since, until):
        with self.lock:
            return [number for at, number in self.created if since <= at <= until]


def retried(process, queue):
    """How many times `process` put an event of `queue` aside to try again (its metrics, every reason)."""
    return sum(samples(scrape(process), "oss_events_retried_total", queue=queue))


def assert_each_citizen_one_sms_reporting_exact_nothing_dead(fault_stack, gateway, intake, numbers, queues):
    wait_for(lambda: len(gateway.accepted) >= len(numbers), 300, "an SMS per application")
    time.sleep(3)  # a duplicate would arrive about now
    sent = Counter(number for _, text, _ in list(gateway.accepted) for number in numbers if number in text)
    assert sorted(sent) == sorted(numbers) and set(sent.values()) == {1}, "each citizen exactly one SMS"
    listed = requests.get(f"{intake.url}/api/v1/applications", params={"page_size": 1},
                          headers=auth("operator", REGION), timeout=30).json()
    assert listed["total"] == len(numbers)
    with fault_stack.rpc(caller=as_caller("analyst")) as cluster:
        counted = wait_for(lambda: (lambda total: total if total == len(numbers) else None)(
            cluster.reporting_jizzakh.summary()["totals"]["applications"]), 120, "reporting to count every one")
    assert counted == listed["total"]
    with DeadLetters(fault_stack.amqp_uri) as dead_letters:
        assert {queue: dead_letters.summary(queue).messages for queue in queues} == dict.fromkeys(queues, 0)
    return counted


def test_outages_delay_notifications_and_reports_but_lose_and_duplicate_nothing(fault_stack, databases):
    queues = declare_deployment_queues(fault_stack.amqp_uri, REGION)
    outages = {name: DatabaseOutage(databases, f"{name}-jizzakh") for name in ("intake", "reporting", "notifications")}
    gateway = SmsGatewayDouble().start()
    catalogue = fault_stack.running("catalogue")
    try:
        intake = fault_stack.start("intake", region=REGION, database_url=outages["intake"].url, CATALOGUE_CACHE_TTL=1,
                                   **RETRY, **outages["intake"].settings)
        reporting = fault_stack.start("reporting", region=REGION, database_url=outages["reporting"].url,
                                      **RETRY, **outages["reporting"].settings)
        notifications = fault_stack.start("notifications", region=REGION, database_url=outages["notifications"].url,
                                          SMS_GATEWAY_URL=gateway.url, SMS_GATEWAY_TOKEN="token",
                                          **RETRY, **outages["notifications"].settings)
        desk = Desk(f"{intake.url}/api/v1/applications")
        # The desks' filing spans the three faults: the first of it before them, the last after.
        per_desk = APPLICATIONS // 4
        span = 4 * OUTAGE_SECONDS
        first_filed = time.monotonic()
        desks = [threading.Thread(target=desk.run, args=(per_desk, span / per_desk, first_filed)) for _ in range(4)]
        for thread in desks:
            thread.start()
        time.sleep(OUTAGE_SECONDS / 2)
        outages["intake"].begin()  # intake's database goes away while the desks keep filing
        time.sleep(OUTAGE_SECONDS)
        outages["intake"].end()
        # The catalogue stops (intake files from its own copy) and reporting's and notifications'
        # databases go away while the events of what is filed arrive.
        catalogue.stop()
        catalogue_stopped = time.monotonic()
        outages["reporting"].begin()
        outages["notifications"].begin()
        time.sleep(OUTAGE_SECONDS)
        outages["reporting"].end()
        outages["notifications"].end()
        catalogue_started = time.monotonic()
        catalogue = fault_stack.start("catalogue", database_url=fault_stack.catalogue_db)
        gateway.status = 503  # the SMS gateway fails
        time.sleep(OUTAGE_SECONDS)
        gateway.status = 200
        for thread in desks:
            thread.join(timeout=600)
        numbers = desk.numbers
        assert len(numbers) == per_desk * 4 and len(set(numbers)) == len(numbers)
        assert desk.refused > 0, "the database outage met no submission"
        assert desk.filed_between(catalogue_stopped, catalogue_started), "nothing was filed while the catalogue was away"
        assert gateway.failed > 0, "the gateway's 503s met no message"

        counted = assert_each_citizen_one_sms_reporting_exact_nothing_dead(fault_stack, gateway, intake, numbers, queues)
        # Reporting and notifications met their database away and put events aside, never dead-lettered them.
        assert retried(reporting, "reporting_jizzakh.applications") > 0
        assert retried(notifications, "notifications_jizzakh.applications") > 0
        assert reporting.process.poll() is None and notifications.process.poll() is None
        print(f"\n{len(numbers)} applications; intake's database away {OUTAGE_SECONDS:.0f} s: {desk.refused} "
              f"submissions answered 503; catalogue stopped and the consumers' databases away {OUTAGE_SECONDS:.0f} s: "
              f"{len(desk.filed_between(catalogue_stopped, catalogue_started))} filed, reporting put events aside "
              f"{retried(reporting, 'reporting_jizzakh.applications'):.0f} times, notifications "
              f"{retried(notifications, 'notifications_jizzakh.applications'):.0f}; "
              f"{gateway.failed} SMS answered 503; {len(numbers)} SMS sent, each once; reporting {counted}; dead letters 0")
    finally:
        gateway.stop()
        for outage in outages.values():
            outage.close()


def test_a_regions_notifications_started_late_sends_everything_filed_meanwhile(fault_stack, databases):
    queues = declare_deployment_queues(fault_stack.amqp_uri, REGION)
    intake = fault_stack.start("intake", region=REGION, database_url=databases.new("intake-jizzakh"), **RETRY)
    fault_stack.start("reporting", region=REGION, database_url=databases.new("reporting-jizzakh"), **RETRY)
    started = time.monotonic()
    desk = Desk(f"{intake.url}/api/v1/applications")
    per_desk = APPLICATIONS // 4
    desks = [threading.Thread(target=desk.run, args=(per_desk, 0.8 * NOTIFICATIONS_LATE_SECONDS / per_desk, started))
             for _ in range(4)]
    for thread in desks:
        thread.start()
    for thread in desks:
        thread.join(timeout=NOTIFICATIONS_LATE_SECONDS + 600)
    numbers = desk.numbers
    assert len(numbers) == per_desk * 4
    time.sleep(max(0.0, started + NOTIFICATIONS_LATE_SECONDS - time.monotonic()))
    # Every event filed meanwhile waits in the queue the deployment's definitions declare.
    wait_for(lambda: waiting_for_notifications(fault_stack.amqp_uri) >= len(numbers), 60,
             "every application's event waiting in notifications' queue")
    gateway = SmsGatewayDouble().start()
    try:
        late = time.monotonic() - started
        fault_stack.start("notifications", region=REGION, database_url=databases.new("notifications-jizzakh"),
                          SMS_GATEWAY_URL=gateway.url, SMS_GATEWAY_TOKEN="token", **RETRY)
        counted = assert_each_citizen_one_sms_reporting_exact_nothing_dead(fault_stack, gateway, intake, numbers, queues)
        print(f"\nnotifications started {late:.0f} s after intake; {len(numbers)} applications filed meanwhile, "
              f"{len(numbers)} SMS sent, each once; reporting {counted}; dead letters 0")
    finally:
        gateway.stop()


def test_two_intakes_whose_clocks_differ_leave_the_read_models_at_the_last_transition(fault_stack, databases):
    declare_deployment_queues(fault_stack.amqp_uri, REGION)
    database_url = databases.new("intake-jizzakh")
    ahead = fault_stack.start("intake", region=REGION, database_url=database_url)
    behind = fault_stack.start("intake", region=REGION, database_url=database_url, migrate=False,
                               CLOCK_OFFSET_SECONDS=-5)
    fault_stack.start("reporting", region=REGION, database_url=databases.new("reporting-jizzakh"))
    notifications_db = databases.new("notifications-jizzakh")
    notifications = fault_stack.start("notifications", region=REGION, database_url=notifications_db,
                                      SMS_GATEWAY_URL=f"http://127.0.0.1:{free_port()}/", RETRY_CEILING_SECONDS=2)
    body = valid_submission(REGION)
    body["applicant"] = dict(body["applicant"], channel="none")
    number = requests.post(f"{ahead.url}/api/v1/applications", json=body, headers=auth("operator", REGION),
                           timeout=30).json()["tracking_number"]
    officer = auth("officer", REGION)
    for process, status in ((ahead, "accepted"), (behind, "in_review")):
        moved = requests.post(f"{process.url}/api/v1/applications/{number}/transitions", json={"to": status},
                              headers=officer, timeout=30)
        assert moved.status_code == 200, moved.text
    history = requests.get(f"{ahead.url}/api/v1/applications/{number}", headers=officer, timeout=30).json()["history"]
    assert history[-1]["at"] < history[-2]["at"], "the later transition carries the earlier time (clock 5 s behind)"
    with fault_stack.rpc(caller=as_caller("analyst")) as cluster:
        wait_for(lambda: cluster.reporting_jizzakh.summary()["by_status"] == [{"status": "in_review", "applications": 1}],
                 60, "reporting at the last transition")
    wait_for(lambda: len(requests.get(f"{notifications.url}/api/v1/deliveries", params={"tracking": number},
                                      headers=auth("operator", REGION), timeout=10).json()["items"]) == 3,
             60, "notifications to see all three events")
    engine = create_engine(notifications_db)
    with engine.connect() as connection:
        watched = connection.execute(text("SELECT status, version FROM watched_applications WHERE tracking_number = :n"),
                                     {"n": number}).one()
    engine.dispose()
    assert tuple(watched) == ("in_review", 3), "the deadline watch follows the last transition"
    with fault_stack.rpc(caller=as_caller("analyst")) as cluster:
        summary = cluster.reporting_jizzakh.summary()
    assert summary["totals"] == {"applications": 1, "open": 1}
