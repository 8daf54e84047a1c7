"""A region's notifications started with no channel configured at all (no SMTP server, no SMS
gateway), as a production deployment might be before its gateway contract is signed: every citizen's
message is held, tried again with the back-off for as long as it takes and never dead-lettered, the
back-off's ceiling shows in the metrics and in `oss status`; once the channels are configured every
message goes, once."""
import re
import time

import pytest
import requests
from kombu import Connection

from oss_common.regions import get_region
from oss_common.service_kinds import SERVICES, service_class
from oss_common.status import format_status, process_status
from tests.conftest import free_port, wait_for
from tests.integration.conftest import auth
from tests.integration.test_notifications import Mailbox, SmsGatewayDouble, submit

pytestmark = pytest.mark.integration

REGION = "namangan"
QUEUE = f"notifications_{REGION}.applications"
HELD = {"SMTP_HOST": "", "SMTP_FROM": "", "SMS_GATEWAY_URL": "", "RETRY_BASE_SECONDS": 0.2,
        "RETRY_CEILING_SECONDS": 1.5, "DELIVERY_LIMIT": 2, "QUEUE_DEPTH_SECONDS": 0.5}


def deliveries(process, number):
    response = requests.get(f"{process.url}/api/v1/deliveries", params={"tracking": number}, timeout=10,
                            headers=auth("operator", REGION))
    assert response.status_code == 200, response.text
    return response.json()["items"]


def dead_letters(stack):
    with Connection(stack.amqp_uri) as connection:
        return connection.channel().queue_declare(queue=f"{QUEUE}.dead", passive=True).message_count


def test_without_any_channel_messages_are_held_never_dead_lettered_and_go_once_configured(stack, tmp_path):
    database_url = stack.databases.new(f"notifications-{REGION}-unconfigured")
    held = stack.start("notifications", region=REGION, database_url=database_url, **HELD)
    mailbox = gateway = None
    try:
        numbers = {"sms": submit(stack, region=REGION, channel="sms"),
                   "email": submit(stack, region=REGION, channel="email", email="citizen@example.uz")}
        # More attempts than DELIVERY_LIMIT, each held: pending, never failed, nothing dead-lettered.
        for channel, number in numbers.items():
            [item] = wait_for(lambda: [item for item in deliveries(held, number) if item["attempts"] > HELD["DELIVERY_LIMIT"]],
                              timeout=60, message=f"the {channel} message tried past DELIVERY_LIMIT")
            assert item["status"] == "pending" and "not configured" in item["last_error"], item
        assert dead_letters(stack) == 0
        metrics = requests.get(f"http://127.0.0.1:{held.metrics_port}/metrics", timeout=10).text
        assert re.search(rf'oss_events_retried_total\{{[^}}]*queue="{QUEUE}"[^}}]*\}} [1-9]', metrics)
        assert re.search(rf'oss_event_retry_ceiling_seconds\{{[^}}]*queue="{QUEUE}.retry"[^}}]*\}} 1\.5', metrics)
        with Connection(stack.amqp_uri) as connection:
            status = process_status(held, service_class(SERVICES["notifications"], get_region(REGION)), connection,
                                    "127.0.0.1", 5)
        [retrying] = status.retrying
        assert (retrying.name, retrying.ceiling) == (f"{QUEUE}.retry", 1.5) and retrying.messages is not None
        assert "<=1.5s" in format_status([status])
        # DEAD counts the RPC queue's parked requests too.
        assert [queue.name for queue in status.dead] == [f"rpc-notifications_{REGION}.dead", f"{QUEUE}.dead"]
        held.stop()

        # The channels configured: each message goes once, and nothing was dead-lettered on the way.
        mailbox = Mailbox(free_port(), tmp_path / "messages.jsonl").start()
        gateway = SmsGatewayDouble().start()
        sending = stack.start("notifications", region=REGION, database_url=database_url, **dict(
            HELD, SMTP_HOST="127.0.0.1", SMTP_PORT=mailbox.port, SMTP_FROM="OSS <noreply@oss.example.uz>",
            SMS_GATEWAY_URL=gateway.url, SMS_GATEWAY_TOKEN="test-token"))
        wait_for(lambda: gateway.about(numbers["sms"]), timeout=60, message="the held SMS")
        wait_for(lambda: mailbox.about(numbers["email"]), timeout=60, message="the held e-mail")
        time.sleep(3)  # two back-offs' worth: anything sent twice would have been by now
        assert len(gateway.about(numbers["sms"])) == 1 and len(mailbox.about(numbers["email"])) == 1
        for number in numbers.values():
            assert [item["status"] for item in deliveries(sending, number)] == ["sent"]
        assert dead_letters(stack) == 0
        sending.stop()
    finally:
        held.stop()
        for sink in (mailbox, gateway):
            if sink is not None:
                sink.stop()
        with Connection(stack.amqp_uri) as connection:
            for queue in (QUEUE, f"{QUEUE}.retry", f"{QUEUE}.dead"):
                connection.channel().queue_delete(queue)
