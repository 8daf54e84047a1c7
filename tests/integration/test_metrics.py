"""Each service process serves /metrics on its port; the page passes `promtool check metrics` and
carries RED, outbox, consumer and business metrics labelled without personal data."""
import os
import re
import shutil
import subprocess
import time
import uuid

import pytest
import requests

from oss_common.status import event_queue_names, process_status
from services.intake.service import IntakeService
from tests.conftest import as_caller
from tests.integration.conftest import auth, valid_submission


def scrape(process):
    response = requests.get(f"http://127.0.0.1:{process.metrics_port}/metrics", timeout=10)
    assert response.status_code == 200
    return response.text


def samples(page, name, **labels):
    """The values of every sample of `name` carrying these labels."""
    for line in page.splitlines():
        match = re.match(rf"{name}\{{([^}}]*)\}} (\S+)$", line)
        if match and all(f'{key}="{value}"' in match.group(1).split(",") for key, value in labels.items()):
            yield float(match.group(2))


def sample(page, name, **labels):
    """The value of the first sample of `name` carrying these labels, or None."""
    return next(samples(page, name, **labels), None)


def test_intake_metrics_page_is_valid_and_complete(stack):
    # A catalogue change of its own, so that intake's event consumer has measured its lag at least once.
    with stack.rpc(caller=as_caller("catalogue-admin")) as cluster:
        base = cluster.catalogue.get_service(valid_submission("jizzakh")["service_code"])
        code = f"metrics-{uuid.uuid4().hex[:6]}"
        definition = {key: base[key] for key in ("names", "descriptions", "group", "keywords", "required_documents",
                                                 "attributes", "fee", "deadline_working_days")}
        cluster.catalogue.upsert_service(dict(definition, code=code, agency=base["agency"]["code"], regions=["jizzakh"]))
    deadline = time.monotonic() + 30
    while not (lag := sample(scrape(stack.intakes["jizzakh"]), "oss_event_consumer_lag_seconds_count",
                             service="intake_jizzakh")) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert lag and lag >= 1, "intake_jizzakh never observed an event's lag"
    body = valid_submission("jizzakh")
    created = requests.post(f"{stack.urls['jizzakh']}/api/v1/applications", json=body, timeout=30,
                            headers=auth("operator", "jizzakh")).json()
    number = created["tracking_number"]
    url = f"{stack.urls['jizzakh']}/api/v1/applications/{number}/transitions"
    for status in ("accepted", "in_review", "approved"):
        assert requests.post(url, json={"to": status}, timeout=30, headers=auth("officer", "jizzakh")).status_code == 200
    requests.get(f"{stack.urls['jizzakh']}/api/v1/applications/NO-SUCH", timeout=10, headers=auth("officer", "jizzakh"))
    page = scrape(stack.intakes["jizzakh"])
    for expected in ('oss_entrypoint_calls_total{entrypoint="http_submit",region="jizzakh",service="intake_jizzakh"}',
                     'oss_entrypoint_errors_total{entrypoint="http_get",exception="ApplicationNotFound"',
                     'oss_entrypoint_duration_seconds_bucket{entrypoint="http_transition"',
                     'oss_outbox_pending_events{region="jizzakh",service="intake_jizzakh"}',
                     'oss_outbox_oldest_pending_age_seconds{region="jizzakh",service="intake_jizzakh"}',
                     f'oss_applications_submitted_total{{region="jizzakh",service_code="{body["service_code"]}"}}',
                     f'oss_applications_decided_total{{decision="approved",region="jizzakh",service_code="{body["service_code"]}"}}',
                     'oss_catalogue_cache_age_seconds{region="jizzakh",service="intake_jizzakh"}',
                     '# TYPE oss_event_consumer_lag_seconds histogram',
                     'oss_event_consumer_lag_seconds_bucket{',
                     'oss_event_queue_messages{queue="intake_jizzakh.catalogue"',
                     'oss_dead_letter_queue_messages{queue="intake_jizzakh.catalogue.dead"'):
        assert expected in page, expected
    for personal in (body["applicant"]["pinfl"], body["applicant"]["phone"], body["applicant"]["full_name"], number):
        assert personal not in page
    if shutil.which("promtool") is None:
        message = "promtool is missing: deploy/local/ensure-tools.sh installs it"
        pytest.fail(message) if os.environ.get("OSS_REQUIRE_TOOLS") == "1" else pytest.skip(message)
    for process in (stack.intakes["jizzakh"], stack.running("catalogue")):
        checked = subprocess.run(["promtool", "check", "metrics"], input=scrape(process), capture_output=True, text=True)
        assert checked.returncode == 0, checked.stdout + checked.stderr


def test_status_sees_a_running_intake_and_its_queues(stack):
    from kombu import Connection

    with Connection(stack.amqp_uri) as connection:
        status = process_status(stack.intakes["namangan"], type("intake_namangan", (IntakeService,), {"name": "intake_namangan"}),
                                connection, "127.0.0.1", 5)
    assert status.up and status.rpc.consumers >= 1
    assert [queue.name for queue in status.events] == event_queue_names(type("x", (IntakeService,), {"name": "intake_namangan"}))
    assert status.dead_messages == 0, dead_letter_errors(stack.amqp_uri, status)
    assert status.outbox_pending is not None


def dead_letter_errors(amqp_uri, status):
    """What the dead-lettered events say went wrong (left in their queue), for the failure message."""
    from kombu import Connection

    errors = []
    with Connection(amqp_uri) as connection:
        channel = connection.channel()
        for queue in status.dead:
            while queue.messages and (message := channel.basic_get(queue.name, no_ack=False)):
                errors.append((queue.name, message.headers.get("x-error"), message.delivery_info.get("routing_key")))
                if len(errors) >= 5:
                    break
        channel.close()
    return errors
