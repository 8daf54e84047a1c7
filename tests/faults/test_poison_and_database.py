"""A poison event is dead-lettered after bounded retries; a database outage answers 503, then heals,
and a request queued meanwhile (Open311 batch mode) is created once the database is back; a queued
request that meets a defect is parked, not lost, and replayed once fixed."""
import os
import re
import sqlite3
import subprocess
import sys
import time
import uuid

import requests
from kombu import Connection, Producer
from sqlalchemy.engine import make_url

from oss_common.config import PROJECT_ROOT
from oss_common.dead_letters import DeadLetters
from oss_common.events import EVENTS_EXCHANGE, make_event
from tests.conftest import wait_for
from tests.faults.conftest import TcpProxy, reject_inserts
from services.intake.open311.dependencies import key_digest
from tests.integration.conftest import auth, valid_submission
from tests.integration.test_open311 import KEY as OPEN311_KEY, form as open311_form
from tests.integration.personal_data import assert_no_personal_data, personal_values, unique_applicant


def test_poison_event_is_retried_then_dead_lettered_and_the_queue_keeps_flowing(fault_stack):
    intake = fault_stack.start("intake", region="jizzakh", database_url=fault_stack.databases.new("intake-jizzakh"),
                               DELIVERY_LIMIT=3, RETRY_BASE_SECONDS=0.05)
    with fault_stack.rpc() as cluster:
        good = cluster.catalogue.get_service("photocopying")
    poison = make_event("catalogue.service_published", "national", "test", {"code": "broken-service"})  # no version
    healthy_code = f"fresh-{uuid.uuid4().hex[:6]}"
    healthy = make_event("catalogue.service_published", "national", "test", dict(good, code=healthy_code, version=1))
    with Connection(fault_stack.amqp_uri, transport_options={"confirm_publish": True}) as connection:
        producer = Producer(connection.channel(), exchange=EVENTS_EXCHANGE, serializer="json")
        producer.publish(poison, routing_key="national.catalogue.service_published", delivery_mode=2)
        producer.publish(healthy, routing_key="national.catalogue.service_published", delivery_mode=2)

    deadline = time.monotonic() + 30
    entry = None
    while time.monotonic() < deadline and entry is None:
        with fault_stack.rpc() as cluster:
            entry = cluster.intake_jizzakh.catalogue_entry(healthy_code)
        time.sleep(0.2)
    assert entry is not None, "the event behind the poison one was never applied"

    dead = None
    with Connection(fault_stack.amqp_uri) as connection:
        channel = connection.channel()
        while time.monotonic() < deadline and dead is None:
            dead = channel.basic_get("intake_jizzakh.catalogue.dead", no_ack=True)
            if dead is None:
                time.sleep(0.2)
    assert dead is not None, "the poison event was not dead-lettered"
    headers = dead.headers
    assert "KeyError" in headers["x-error"] and "3 deliveries" in headers["x-error"]
    assert headers["x-failed-queue"] == "intake_jizzakh.catalogue"
    assert headers["x-original-routing-key"] == "national.catalogue.service_published"
    assert "broken-service" in (dead.body.decode() if isinstance(dead.body, bytes) else dead.body)
    metrics = requests.get(f"http://127.0.0.1:{intake.metrics_port}/metrics", timeout=10).text
    assert re.search(r"oss_events_dead_lettered_total\{[^}]*event_type=\"catalogue.service_published\"[^}]*\} [1-9]", metrics)


def _hold_sqlite_lock(url, seconds):
    """An exclusive lock on the database file, taken as soon as the writers of the moment let go
    (within `seconds`)."""
    connection = sqlite3.connect(make_url(url).database, timeout=seconds)
    connection.execute("BEGIN EXCLUSIVE")
    return connection


class DatabaseOutage:
    """A region's intake database that a test can take away and bring back: behind a TCP proxy on
    PostgreSQL (cut: connections refused and reset), by an exclusive lock held on SQLite."""

    def __init__(self, databases, name):
        self.holder = {}
        self.proxy = None
        if databases.backend == "postgresql":
            target = make_url(databases.new(name))
            self.proxy = TcpProxy(target.host or "127.0.0.1", target.port or 5432).start()
            self.url = target.set(host="127.0.0.1", port=self.proxy.port).render_as_string(hide_password=False)
            self.settings = {}
        else:
            self.url = databases.new(name)
            self.settings = {"SQLITE_LOCK_WAIT_SECONDS": 1}

    def begin(self):
        if self.proxy:
            self.proxy.cut()
        else:
            self.holder["connection"] = _hold_sqlite_lock(self.url, 30)

    def end(self):
        if self.proxy:
            self.proxy.restore()
        else:
            self.holder.pop("connection").rollback()

    def close(self):
        if self.proxy:
            self.proxy.stop()


def test_database_outage_answers_503_then_heals_without_restart(fault_stack, databases):
    database = DatabaseOutage(databases, "intake-fergana")
    intake = fault_stack.start("intake", region="fergana", database_url=database.url, **database.settings)
    outage, recovery, request_cleanup = database.begin, database.end, database.close
    url = f"{intake.url}/api/v1/applications"
    applicants = []

    def submission():
        applicants.append(unique_applicant())
        return valid_submission("fergana", applicant=applicants[-1])

    operator = auth("operator", "fergana")
    assert requests.post(url, json=submission(), timeout=30, headers=operator).status_code == 201
    before = requests.get(url, params={"page_size": 1}, timeout=30, headers=operator).json()["total"]
    outage()
    try:
        refused = requests.post(url, json=submission(), timeout=60, headers=operator)
        assert refused.status_code == 503, refused.text
        body = refused.json()
        assert body["error"] == "unavailable" and "database" in body["message"]
        assert requests.get(url, timeout=60, headers=operator).status_code == 503
    finally:
        recovery()
    deadline = time.monotonic() + 30
    response = None
    while time.monotonic() < deadline:
        response = requests.post(url, json=submission(), timeout=30, headers=operator)
        if response.status_code == 201:
            break
        time.sleep(0.5)
    assert response.status_code == 201, response.text
    assert requests.get(url, params={"page_size": 1}, timeout=30, headers=operator).json()["total"] == before + 1
    request_cleanup()
    assert_no_personal_data(fault_stack.processes, [value for applicant in applicants
                                                    for value in personal_values(applicant)])


def test_a_queued_open311_request_waits_out_a_database_outage_and_is_created_once(fault_stack, databases):
    database = DatabaseOutage(databases, "intake-fergana-batch")
    # The catalogue copy is served from memory for the whole test: only the request's creation needs the database.
    intake = fault_stack.start("intake", region="fergana", database_url=database.url, OPEN311_REQUEST_MODE="batch",
                               OPEN311_API_KEYS=f"civic-app:{key_digest(OPEN311_KEY)}", CATALOGUE_CACHE_TTL=3600,
                               RETRY_BASE_SECONDS=0.2, RETRY_CEILING_SECONDS=1, **database.settings)
    base = f"{intake.url}/open311/v2"
    assert requests.get(f"{base}/services.json", timeout=30).status_code == 200
    database.begin()
    try:
        queued = requests.post(f"{base}/requests.json", data=open311_form(), timeout=30)
        assert queued.status_code == 200, queued.text
        token = queued.json()[0]["token"]
        time.sleep(4)  # several tries meet the outage
        # Looking the token up needs the database too: 503 now, and never a request created meanwhile.
        assert requests.get(f"{base}/tokens/{token}.json", timeout=30).status_code == 503
    finally:
        database.end()
    deadline = time.monotonic() + 60
    answer = None
    while time.monotonic() < deadline:
        answer = requests.get(f"{base}/tokens/{token}.json", timeout=30)
        if answer.status_code == 200:
            break
        time.sleep(0.5)
    assert answer.status_code == 200, f"the queued request was lost in the outage: {answer.text}"
    tracking = answer.json()[0]["service_request_id"]
    listed = requests.get(f"{intake.url}/api/v1/applications", params={"page_size": 100}, timeout=30,
                          headers=auth("operator", "fergana")).json()
    assert [item["tracking_number"] for item in listed["items"]] == [tracking], "created exactly once"
    log = intake.log_path.read_text(encoding="utf-8", errors="replace")
    assert "create_queued_request failed for now" in log
    database.close()


def test_a_queued_open311_request_that_meets_a_defect_is_parked_not_lost_and_replayed_once_fixed(fault_stack, databases):
    """Not a failure that passes: tried DELIVERY_LIMIT times, then parked in rpc-intake_<region>.dead with
    the reason (never answered into the void and acknowledged); `oss dead-letters replay` after the fix
    creates it once, under its token."""
    database_url = databases.new("intake-fergana-batch-defect")
    intake = fault_stack.start("intake", region="fergana", database_url=database_url, OPEN311_REQUEST_MODE="batch",
                               OPEN311_API_KEYS=f"civic-app:{key_digest(OPEN311_KEY)}", CATALOGUE_CACHE_TTL=3600,
                               RETRY_BASE_SECONDS=0.1, RETRY_CEILING_SECONDS=0.5, DELIVERY_LIMIT=3)
    base = f"{intake.url}/open311/v2"
    assert requests.get(f"{base}/services.json", timeout=30).status_code == 200
    fix = reject_inserts(database_url, "applications")  # intake cannot write an application
    queued = requests.post(f"{base}/requests.json", data=open311_form(), timeout=30)
    assert queued.status_code == 200, queued.text
    token = queued.json()[0]["token"]
    with DeadLetters(fault_stack.amqp_uri) as dead_letters:
        summary = wait_for(lambda: (lambda found: found if found.messages else None)(dead_letters.summary("rpc-intake_fergana")),
                           60, "the queued request parked")
    [reason] = summary.reasons
    assert "after 3 deliveries" in reason, reason
    assert requests.get(f"{base}/tokens/{token}.json", timeout=30).status_code == 404
    fix()
    replayed = subprocess.run([sys.executable, "-m", "oss_common.cli", "dead-letters", "replay", "rpc-intake_fergana", "--all"],
                              cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120,
                              env={**os.environ, "AMQP_URI": fault_stack.amqp_uri})
    assert replayed.returncode == 0, replayed.stderr
    answer = wait_for(lambda: (lambda got: got if got.status_code == 200 else None)(
        requests.get(f"{base}/tokens/{token}.json", timeout=30)), 60, "the replayed request created")
    tracking = answer.json()[0]["service_request_id"]
    time.sleep(1)
    listed = requests.get(f"{intake.url}/api/v1/applications", params={"page_size": 100}, timeout=30,
                          headers=auth("operator", "fergana")).json()
    assert [item["tracking_number"] for item in listed["items"]] == [tracking], "created exactly once"
    with DeadLetters(fault_stack.amqp_uri) as dead_letters:
        assert dead_letters.summary("rpc-intake_fergana").messages == 0
