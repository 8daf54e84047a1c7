"""No malformed message stops or wedges a consumer: on Jizzakh intake's RPC queue and on its catalogue
event queue, bad JSON, a content type other than JSON, a request without its reply headers and an
envelope for another key or region are each parked in the queue's `.dead` queue with the reason,
and the service goes on answering and applying what comes after."""
import json
import time
import uuid


from amqp import Message
from kombu import Connection

from oss_common.events import make_event
from tests.conftest import as_caller, wait_for
from tests.integration.conftest import valid_submission
from tests.integration.test_metrics import sample, scrape

RPC_KEY = "intake_jizzakh.catalogue_entry"
EVENT_KEY = "national.catalogue.service_published"


def publish(stack, exchange, routing_key, body, marker, content_type="application/json", **properties):
    with Connection(stack.amqp_uri) as connection:
        channel = connection.channel()
        channel.confirm_select()
        channel.basic_publish(Message(body, content_type=content_type, message_id=marker, **properties),
                              exchange=exchange, routing_key=routing_key)


def parked(stack, queue, markers, timeout=30):
    """{marker: x-error} of the marked messages that reached `queue` (others are put back)."""
    found = {}
    deadline = time.monotonic() + timeout
    with Connection(stack.amqp_uri) as connection:
        channel = connection.channel()
        while len(found) < len(markers) and time.monotonic() < deadline:
            message = channel.basic_get(queue)
            if message is None:
                time.sleep(0.2)
                continue
            if message.properties.get("message_id") in markers:
                found[message.properties["message_id"]] = message.headers["x-error"]
                channel.basic_ack(message.delivery_tag)
            else:
                channel.basic_reject(message.delivery_tag, requeue=True)
    return found


def rpc_dead_letters_shown(stack):
    page = scrape(stack.running("intake", "jizzakh"))
    return sample(page, "oss_dead_letter_queue_messages", queue="rpc-intake_jizzakh.dead") or 0


def test_malformed_rpc_requests_are_parked_with_the_reason_and_intake_keeps_answering(stack):
    reply = {"reply_to": f"reply-guest-{uuid.uuid4()}", "correlation_id": str(uuid.uuid4())}
    cases = {
        "not-json": (b'{"args": [', "application/json", reply, "cannot decode"),
        "pickle": (b"\x80\x04K\x01.", "application/x-python-serialize", reply, "cannot decode"),
        "plain-text": (b"hello", "text/plain", reply, "cannot decode"),
        "no-reply-to": (json.dumps({"args": ["x"], "kwargs": {}}).encode(), "application/json", {}, "without reply_to"),
    }
    markers = {f"{name}-{uuid.uuid4().hex[:8]}": case for name, case in cases.items()}
    for marker, (body, content_type, properties, _reason) in markers.items():
        publish(stack, "nameko-rpc", RPC_KEY, body, marker, content_type, **properties)
    # The parked requests show on intake's metrics, for the dead-letter alert and dashboard panel.
    wait_for(lambda: rpc_dead_letters_shown(stack) >= len(markers), 60, "intake's RPC dead letters on its metrics")
    reasons = parked(stack, "rpc-intake_jizzakh.dead", set(markers))
    assert set(reasons) == set(markers), f"not parked: {set(markers) - set(reasons)}"
    for marker, (_body, _type, _properties, reason) in markers.items():
        assert reason in reasons[marker], (marker, reasons[marker])
    with stack.rpc(caller=as_caller("operator", "jizzakh")) as cluster:
        assert cluster.intake_jizzakh.catalogue_entry(valid_submission("jizzakh")["service_code"]) is not None
        assert cluster.intake_jizzakh.submit_application(valid_submission("jizzakh"))["status"] == "submitted"


def test_malformed_events_are_parked_with_the_reason_and_the_consumer_keeps_applying(stack):
    with stack.rpc() as cluster:
        good = cluster.catalogue.get_service(valid_submission("jizzakh")["service_code"])
    fresh = f"after-malformed-{uuid.uuid4().hex[:6]}"
    elsewhere = make_event("catalogue.service_published", "jizzakh", "mallory", dict(good, code="forged"))
    cases = {
        "not-json": (b"{", "application/json", EVENT_KEY, "cannot decode"),
        "plain-text": (b"hello", "text/plain", EVENT_KEY, "cannot decode"),
        "other-region": (json.dumps(elsewhere).encode(), "application/json", EVENT_KEY, "delivered as"),
        "no-envelope": (json.dumps({"code": "x"}).encode(), "application/json", EVENT_KEY, "malformed envelope"),
    }
    markers = {f"{name}-{uuid.uuid4().hex[:8]}": case for name, case in cases.items()}
    for marker, (body, content_type, key, _reason) in markers.items():
        publish(stack, "oss.events", key, body, marker, content_type)
    healthy = make_event("catalogue.service_published", "national", "catalogue", dict(good, code=fresh, version=1))
    publish(stack, "oss.events", EVENT_KEY, json.dumps(healthy).encode(), healthy["event_id"])
    reasons = parked(stack, "intake_jizzakh.catalogue.dead", set(markers))
    assert set(reasons) == set(markers), f"not parked: {set(markers) - set(reasons)}"
    for marker, (_body, _type, _key, reason) in markers.items():
        assert reason in reasons[marker], (marker, reasons[marker])
    # Catalogue events go to every region's intake: each parks the same four (and the test takes
    # them out, so no later test finds a region's dead-letter queue holding them).
    for region in stack.intakes:
        if region != "jizzakh":
            assert set(parked(stack, f"intake_{region}.catalogue.dead", set(markers))) == set(markers), region
    deadline = time.monotonic() + 30
    while True:
        with stack.rpc() as cluster:
            if cluster.intake_jizzakh.catalogue_entry(fresh) is not None:
                break
        assert time.monotonic() < deadline, "the event after the malformed ones was never applied"
        time.sleep(0.3)
    with stack.rpc() as cluster:
        assert cluster.intake_jizzakh.catalogue_entry("forged") is None, "an envelope for another region was applied"
    # The healthy event named a service the catalogue does not hold: retire it in Jizzakh's copy as
    # the catalogue would, so the region's listing agrees with the catalogue again for later tests.
    retired = make_event("catalogue.service_retired", "national", "catalogue",
                         dict(good, code=fresh, version=2, state="retired"))
    publish(stack, "oss.events", "national.catalogue.service_retired", json.dumps(retired).encode(), retired["event_id"])
    deadline = time.monotonic() + 30
    while True:
        with stack.rpc() as cluster:
            if (cluster.intake_jizzakh.catalogue_entry(fresh) or {}).get("state") == "retired":
                break
        assert time.monotonic() < deadline, "the retirement of the test's service was never applied"
        time.sleep(0.3)
