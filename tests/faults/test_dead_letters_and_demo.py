"""Only poison is dead-lettered, and `oss dead-letters` brings it back once its cause is fixed; the
demo's sinks receive every citizen's message, in the citizen's language, with nothing dead-lettered."""
import json
import os
import re
import subprocess
import sys
import time

import pytest
import requests
from kombu import Connection, Producer

from oss_common.config import PROJECT_ROOT
from oss_common.dead_letters import DeadLetters
from oss_common.events import EVENTS_EXCHANGE, make_event, rfc3339, routing_key, utc_now
from services.notifications.demo_sinks import DemoSinks
from tests.conftest import as_caller, free_port, wait_for
from tests.faults.conftest import reject_inserts
from tests.integration.conftest import auth, valid_submission

POISONED = "JI-2026-990001"
QUEUE = "reporting_jizzakh.applications"


def oss(amqp_uri, *args):
    return subprocess.run([sys.executable, "-m", "oss_common.cli", *args], cwd=PROJECT_ROOT, capture_output=True,
                          text=True, timeout=120, env={**os.environ, "AMQP_URI": amqp_uri, "REGIONS": "jizzakh"})


def application_event(number, status="submitted", version=1):
    now = rfc3339(utc_now())
    return make_event("application.submitted" if version == 1 else "application.status_changed", "jizzakh",
                      "intake_jizzakh", {
                          "tracking_number": number, "service_code": "photocopying", "agency": "oss-centre",
                          "district": "1708401", "centre": "jizzakh-city", "channel": "sms", "status": status,
                          "version": version, "open": True, "decided": False, "final": False, "submitted_at": now,
                          "changed_at": now, "due_date": utc_now().date().isoformat(),
                          "contact": {"phone": "+998901234567", "email": None}}, schema_version=3)


def publish(amqp_uri, *events):
    with Connection(amqp_uri, transport_options={"confirm_publish": True}) as connection:
        producer = Producer(connection.channel(), exchange=EVENTS_EXCHANGE, serializer="json")
        for event in events:
            producer.publish(event, routing_key=routing_key(event), delivery_mode=2, message_id=event["event_id"])


def reject_inserts_of(database_url, tracking_number):
    """A defect in the read model's database: rows of one application cannot be written."""
    return reject_inserts(database_url, "application_states", tracking_number)


def applications_counted(stack):
    with stack.rpc(caller=as_caller("analyst")) as cluster:
        return cluster.reporting_jizzakh.summary()["totals"]["applications"]


def test_a_poison_event_is_dead_lettered_then_replayed_once_after_the_fix(fault_stack, databases):
    database_url = databases.new("reporting-jizzakh")
    reporting = fault_stack.start("reporting", region="jizzakh", database_url=database_url, DELIVERY_LIMIT=2,
                                  RETRY_BASE_SECONDS=0.05, QUEUE_DEPTH_SECONDS=0.5)
    fix = reject_inserts_of(database_url, POISONED)
    poison, healthy, unwanted = (application_event(POISONED), application_event("JI-2026-990002"),
                                 application_event("JI-2026-990003"))
    publish(fault_stack.amqp_uri, poison, healthy)
    wait_for(lambda: applications_counted(fault_stack) == 1, 60, "the healthy event behind the poison one")
    with DeadLetters(fault_stack.amqp_uri) as dead_letters:
        summary = wait_for(lambda: (lambda found: found if found.messages else None)(dead_letters.summary(QUEUE)),
                           60, "the poison event dead-lettered")
    assert summary.messages == 1 and summary.oldest is not None
    [reason] = summary.reasons
    assert "after 2 deliveries" in reason, reason

    listed = oss(fault_stack.amqp_uri, "dead-letters", "list", QUEUE)
    assert listed.returncode == 1 and f"{QUEUE}.dead" in listed.stdout and "after 2 deliveries" in listed.stdout
    shown = oss(fault_stack.amqp_uri, "dead-letters", "show", QUEUE, poison["event_id"])
    assert shown.returncode == 0, shown.stderr
    body = json.loads(shown.stdout)["body"]
    assert body["data"]["tracking_number"] == POISONED and body["data"]["contact"]["phone"] == "***"
    assert "901234567" not in shown.stdout

    fix()
    replayed = oss(fault_stack.amqp_uri, "dead-letters", "replay", QUEUE, "--id", poison["event_id"])
    assert replayed.returncode == 0, replayed.stderr
    wait_for(lambda: applications_counted(fault_stack) == 2, 60, "the replayed event applied")
    again = oss(fault_stack.amqp_uri, "dead-letters", "replay", f"{QUEUE}.dead", "--id", poison["event_id"])
    assert again.returncode == 1 and "replayed or dropped already" in again.stderr
    publish(fault_stack.amqp_uri, poison)  # the same event once more, as a second replay would bring it
    time.sleep(2)
    assert applications_counted(fault_stack) == 2, "an event replayed twice is applied once"

    # One the region does not want back: dropped, with the reason kept (and no personal data in the record).
    fix_again = reject_inserts_of(database_url, "JI-2026-990003")
    publish(fault_stack.amqp_uri, unwanted)
    with DeadLetters(fault_stack.amqp_uri) as dead_letters:
        wait_for(lambda: dead_letters.summary(QUEUE).messages == 1, 60, "the second poison event dead-lettered")
        record = dead_letters.drop(QUEUE, unwanted["event_id"], "test data filed by mistake", by="test")
        after = dead_letters.summary(QUEUE)
    assert (after.messages, after.dropped) == (0, 1)
    assert record["reason"] == "test data filed by mistake" and "+998" not in json.dumps(record)
    fix_again()
    metrics = requests.get(f"http://127.0.0.1:{reporting.metrics_port}/metrics", timeout=10).text
    assert re.search(r'oss_events_dead_lettered_total\{[^}]*service="reporting_jizzakh"[^}]*\} 2\.0', metrics)


@pytest.mark.parametrize("databases", ["sqlite"], indirect=True)
def test_the_demo_sinks_show_every_citizens_message_in_their_language_and_nothing_is_dead_lettered(
        fault_stack, databases, tmp_path):
    """What `make run` wires (oss demo): notifications sending to the demo's SMTP server and Eskiz
    endpoint. Six applications, three by SMS and three by e-mail, one per language each."""
    sinks = DemoSinks(tmp_path / "messages.jsonl", smtp_port=free_port(), http_port=free_port()).start()
    try:
        fault_stack.start("intake", region="jizzakh", database_url=databases.new("intake-jizzakh"))
        fault_stack.start("notifications", region="jizzakh", database_url=databases.new("notifications-jizzakh"),
                          **sinks.settings())
        numbers = {}
        for channel in ("sms", "email"):
            for language in ("uz", "ru", "en"):
                body = valid_submission("jizzakh")
                body["applicant"] = dict(body["applicant"], channel=channel, language=language,
                                         email=f"citizen-{language}@example.uz")
                response = requests.post(f"{fault_stack.running('intake', 'jizzakh').url}/api/v1/applications",
                                         json=body, headers=auth("operator", "jizzakh"), timeout=30)
                assert response.status_code == 201, response.text
                numbers[(channel, language)] = response.json()["tracking_number"]
        messages = wait_for(lambda: (lambda found: found if len(found) >= 6 else None)(
            requests.get(f"{sinks.url}messages.json", timeout=10).json()), 60, "six messages at the sinks")
        assert len(messages) == 6
        # Phrases of each language's template body, which both an e-mail and an SMS carry.
        received = {"Kuzatuv raqami": "uz", "Номер для отслеживания": "ru", "Tracking number": "en"}
        for (channel, language), number in numbers.items():
            [message] = [message for message in messages if number in (message["subject"] or "") + message["text"]]
            assert message["channel"] == channel
            shown_language = [lang for phrase, lang in received.items() if phrase in message["text"]]
            assert shown_language == [language], message
        page = requests.get(sinks.url, timeout=10).text
        assert all(number in page for number in numbers.values()) and "901234567" not in page
        with DeadLetters(fault_stack.amqp_uri) as dead_letters:
            assert dead_letters.summary("notifications_jizzakh.applications").messages == 0
    finally:
        sinks.stop()
