"""Notifications against the real stack: a real SMTP server (aiosmtpd) and a real HTTP server playing
the SMS gateway, on loopback. Messages arrive in the applicant's language, exactly once through a
gateway outage, a duplicated event and a stopped service; a refused number fails at once; agencies
hear of deadlines once; a national instance is chosen by configuration alone."""
import json
import shutil
import threading
import time
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
import yaml
from eventlet.greenpool import GreenPool
from kombu import Connection, Producer

from oss_common.calendar import add_working_days, local_date
from oss_common.config import PROJECT_ROOT
from oss_common.events import EVENTS_EXCHANGE, dead_letter_queue, make_event, rfc3339, routing_key, utc_now
from tests.conftest import as_caller, free_port, wait_for
from tests.smtp_sink import SmtpSink
from tests.integration.conftest import auth, event_listener, pay_at_the_desk, post, seed_service, valid_submission

pytestmark = pytest.mark.integration

REFUSED_PHONE = "+998900000400"  # the gateway answers 400 for this one: a number it does not serve
AGENCY_ADDRESS = "archive@agency.example.uz"
SENDER = "OSS Jizzakh <noreply@jizzakh.oss.example.uz>"


class Mailbox(SmtpSink):
    """The real SMTP server of these tests; each accepted e-mail as (to, subject, body, from)."""

    def about(self, tracking_number):
        return [(address, str(message["Subject"]), message.get_content().strip(), str(message["From"]))
                for addresses, message in self.messages for address in addresses
                if tracking_number in str(message["Subject"])]


class SmsGatewayDouble:
    """An Eskiz-style gateway on loopback: answers `status` (200 unless a test makes it fail), 400
    for REFUSED_PHONE, and keeps (phone, text, authorization) of each message it accepted."""

    def __init__(self):
        self.port = free_port()
        self.status = 200
        self.accepted = []
        self.refused = []
        self.failed = 0  # messages answered with a failing `status` (a 503 while a test makes it fail)
        self.server = None

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}/api/message/sms/send"

    def start(self):
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
                if "+" + body["mobile_phone"] == REFUSED_PHONE:
                    gateway.refused.append(body)
                    status = 400
                else:
                    status = gateway.status
                    if status == 200:
                        gateway.accepted.append((body["mobile_phone"], body["message"], self.headers.get("Authorization")))
                    else:
                        gateway.failed += 1
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(json.dumps({"status": "waiting" if status == 200 else "error"}).encode())

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self):
        """Down: connections are refused until start() again."""
        self.server.shutdown()
        self.server.server_close()

    def about(self, tracking_number):
        return [message for message in list(self.accepted) if tracking_number in message[1]]


@pytest.fixture(scope="module")
def mailbox(stack, tmp_path_factory):
    """Per stack (database backend): tracking numbers start again in each."""
    server = Mailbox(free_port(), tmp_path_factory.mktemp("smtp") / "messages.jsonl").start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def gateway(stack):
    double = SmsGatewayDouble().start()
    yield double
    double.stop()


def channel_settings(mailbox, gateway):
    """Short retries and timers: enough to outlast a few seconds' outage, quick to notice a deadline."""
    return {"SMTP_HOST": "127.0.0.1", "SMTP_PORT": mailbox.port, "SMTP_FROM": SENDER,
            "SMS_GATEWAY_URL": gateway.url, "SMS_GATEWAY_TOKEN": "test-token", "SMS_SENDER": "4546",
            "SEND_TIMEOUT_SECONDS": 3, "DELIVERY_LIMIT": 8, "RETRY_BASE_SECONDS": 0.2, "RETRY_CEILING_SECONDS": 1,
            "QUEUE_DEPTH_SECONDS": 0.5,
            "DEADLINE_CHECK_SECONDS": 0.5, "AGENCY_EMAILS": f"archive-agency={AGENCY_ADDRESS}"}


class Notifications:
    """The Jizzakh notifications process of the test stack, which tests may stop and start again."""

    def __init__(self, stack, settings):
        self.stack = stack
        self.settings = settings
        self.database_url = stack.databases.new("notifications-jizzakh")
        self.process = None

    def start(self):
        self.process = self.stack.start("notifications", region="jizzakh", database_url=self.database_url, **self.settings)
        return self

    def stop(self):
        self.process.stop()

    def deliveries(self, tracking_number, process=None):
        response = requests.get(f"{(process or self.process).url}/api/v1/deliveries",
                                params={"tracking": tracking_number}, timeout=10,
                                headers=auth("operator", region_of(tracking_number)))
        assert response.status_code == 200, response.text
        return response.json()["items"]


@pytest.fixture(scope="module")
def notifications(stack, mailbox, gateway):
    service = Notifications(stack, channel_settings(mailbox, gateway)).start()
    yield service
    service.stop()
    with Connection(stack.amqp_uri) as connection:
        channel = connection.channel()
        for queue in ("notifications_jizzakh.applications", "notifications.applications"):
            channel.queue_delete(queue)


def region_of(tracking_number):
    from oss_common.regions import all_regions

    return next(region.slug for region in all_regions() if tracking_number.startswith(region.prefix + "-"))


def submit(stack, region="jizzakh", **applicant):
    body = valid_submission(region)
    body["applicant"] = dict(body["applicant"], **applicant)
    response = post(f"{stack.urls[region]}/api/v1/applications", body, **auth("operator", region))
    assert response.status_code == 201, response.text
    return response.json()["tracking_number"]


def transition(stack, number, to, reason=None, region="jizzakh"):
    response = post(f"{stack.urls[region]}/api/v1/applications/{number}/transitions",
                    {"to": to, "reason": reason}, **auth("officer", region))
    assert response.status_code == 200, response.text


def test_citizens_get_email_in_their_language(stack, notifications, mailbox):
    names = seed_service(valid_submission("jizzakh")["service_code"])["names"]
    numbers = {language: submit(stack, channel="email", email=f"applicant-{language}@example.uz", language=language)
               for language in ("uz", "ru", "en")}
    subjects = {"uz": "Arizangiz qabul qilindi", "ru": "Ваша заявка принята", "en": "Your application has been received"}
    for language, number in numbers.items():
        [(to, subject, body, sender)] = wait_for(lambda: mailbox.about(number), message=f"e-mail in {language}")
        assert to == f"applicant-{language}@example.uz" and sender == SENDER
        assert subject == f"{subjects[language]}: {number}"
        assert names[language] in body and number in body
    # Returned for correction, its clock stops (the seed's services say so), and the citizen is told.
    transition(stack, numbers["ru"], "returned_for_correction", reason="нет фотографии")
    wait_for(lambda: len(mailbox.about(numbers["ru"])) == 2, message="the status change e-mail")
    _, subject, body, _ = mailbox.about(numbers["ru"])[1]
    assert subject == f"Заявка {numbers['ru']}: возвращена, срок приостановлен"
    assert "Причина: нет фотографии" in body and "осталось рабочих дней —" in body
    transition(stack, numbers["ru"], "resubmitted")
    wait_for(lambda: len(mailbox.about(numbers["ru"])) == 3, message="the resumption e-mail")
    _, subject, body, _ = mailbox.about(numbers["ru"])[2]
    assert subject == f"Заявка {numbers['ru']}: подана повторно, срок снова идёт" and "Новый срок:" in body
    items = notifications.deliveries(numbers["ru"])
    assert [(item["event_type"], item["channel"], item["language"], item["status"], item["attempts"]) for item in items] == [
        ("application.submitted", "email", "ru", "sent", 1), ("application.status_changed", "email", "ru", "sent", 1),
        ("application.status_changed", "email", "ru", "sent", 1)]
    assert "example.uz" not in json.dumps(items)


def test_sms_through_the_gateway_and_none_records_nothing_sent(stack, notifications, gateway):
    number = submit(stack, channel="sms", language="en")
    [(phone, text, authorization)] = wait_for(lambda: gateway.about(number), message="the SMS")
    assert phone == "998901234567" and authorization == "Bearer test-token"
    assert text.startswith("Your application for the service") and number in text
    quiet = submit(stack, channel="none")
    [item] = wait_for(lambda: notifications.deliveries(quiet), message="the `none` delivery")
    assert (item["channel"], item["status"], item["attempts"]) == ("none", "skipped", 0)


def test_gateway_answering_400_fails_at_once_dead_letters_and_says_so(stack, notifications, gateway):
    with event_listener(stack.amqp_uri, "jizzakh.notification.failed") as collect:
        number = submit(stack, phone=REFUSED_PHONE)
        received = collect(until=lambda got: any(body["data"]["tracking_number"] == number for _, body in got), timeout=20)
    [failed] = [body for _, body in received if body["data"]["tracking_number"] == number]
    assert failed["type"] == "notification.failed" and failed["region"] == "jizzakh"
    assert failed["data"]["channel"] == "sms" and failed["data"]["attempts"] == 1
    assert "400" in failed["data"]["error"] and "900000400" not in json.dumps(failed)
    [item] = notifications.deliveries(number)
    assert (item["status"], item["attempts"]) == ("failed", 1)
    assert len([body for body in gateway.refused if body["message"].find(number) >= 0]) == 1
    dead = wait_for(lambda: [event for event in dead_letters(stack, "notifications_jizzakh.applications")
                             if event["data"]["tracking_number"] == number], timeout=10, message="the dead letter")
    assert dead[0]["type"] == "application.submitted"


def test_gateway_down_past_any_limit_holds_the_message_and_it_goes_once_when_back(stack, notifications, gateway):
    """A gateway that answers 503 is a failure that passes: however many attempts meet it, the
    delivery stays pending, nothing is dead-lettered or reported failed, and the SMS goes once."""
    limit = int(notifications.settings["DELIVERY_LIMIT"])
    gateway.status = 503
    try:
        with event_listener(stack.amqp_uri, "jizzakh.notification.failed") as collect:
            number = submit(stack)
            wait_for(lambda: notifications.deliveries(number) and notifications.deliveries(number)[0]["attempts"] > limit,
                     timeout=90, message="more attempts than DELIVERY_LIMIT")
            assert collect(timeout=1) == []
    finally:
        gateway.status = 200
    [item] = notifications.deliveries(number)
    assert item["status"] in ("pending", "sent") and item["last_error"] in ("SMS gateway answered 503", None)
    wait_for(lambda: gateway.about(number), timeout=30, message="the SMS once the gateway is back")
    time.sleep(1.0)
    assert len(gateway.about(number)) == 1 and notifications.deliveries(number)[0]["status"] == "sent"
    assert [event for event in dead_letters(stack, "notifications_jizzakh.applications")
            if event["data"]["tracking_number"] == number] == []


def dead_letters(stack, queue_name):
    """The events parked in `<queue>.dead` (taken off it)."""
    events = []
    with Connection(stack.amqp_uri) as connection:
        queue = dead_letter_queue(queue_name)(connection.channel())
        while (message := queue.get(no_ack=True)) is not None:
            events.append(message.decode())
    return events


def test_the_same_event_delivered_twice_sends_one_message(stack, notifications, gateway):
    # An event handled and sent, then delivered again (a relay re-sending after a crash does this) ...
    number = submit(stack)
    wait_for(lambda: gateway.about(number), message="the SMS")
    with stack.rpc(caller=as_caller("region-admin", "jizzakh")) as cluster:
        exported = cluster.intake_jizzakh.export_events(0, 5000)["items"]
    [event] = [event for event in exported if event["data"]["tracking_number"] == number]
    # ... and a new event arriving twice at once, so that two workers race for it.
    twin = make_event("application.submitted", "jizzakh", "intake_jizzakh",
                      dict(event["data"], tracking_number=f"JI-2020-{time.time_ns() % 10**7:07d}"))
    with Connection(stack.amqp_uri, transport_options={"confirm_publish": True}) as connection:
        producer = Producer(connection.channel(), exchange=EVENTS_EXCHANGE, serializer="json")
        for envelope in (event, event, twin, twin, twin):
            producer.publish(envelope, routing_key=routing_key(envelope), delivery_mode=2)
    twin_number = twin["data"]["tracking_number"]
    wait_for(lambda: gateway.about(twin_number), message="the SMS of the twice-sent event")
    time.sleep(1.5)
    assert len(gateway.about(number)) == 1 and len(gateway.about(twin_number)) == 1
    assert [(item["event_id"], item["attempts"]) for item in notifications.deliveries(number)] == [(event["event_id"], 1)]
    assert [(item["event_id"], item["status"]) for item in notifications.deliveries(twin_number)] == [
        (twin["event_id"], "sent")]


def test_gateway_down_for_a_while_then_back_every_message_arrives_once(stack, notifications, gateway):
    gateway.status = 503
    try:
        numbers = [submit(stack, language=language) for language in ("uz", "ru", "en", "uz")]
        def tried_twice_each():
            rows = {number: notifications.deliveries(number) for number in numbers}
            return all(len(items) == 1 and items[0]["attempts"] >= 2 for items in rows.values()) and numbers
        retried = wait_for(tried_twice_each, message="retries")
        for number in retried:
            [item] = notifications.deliveries(number)
            assert item["status"] == "pending" and item["last_error"] == "SMS gateway answered 503"
        gateway.stop()  # and now not even answering
        time.sleep(1.5)
    finally:
        gateway.status = 200
        gateway.start()
    wait_for(lambda: all(gateway.about(number) for number in numbers), timeout=40, message="every SMS after the outage")
    time.sleep(1.0)
    for number in numbers:
        assert len(gateway.about(number)) == 1
        [item] = notifications.deliveries(number)
        assert item["status"] == "sent" and item["attempts"] >= 3
    page = requests.get(f"http://127.0.0.1:{notifications.process.metrics_port}/metrics", timeout=10).text
    assert 'oss_notification_retries_total{channel="sms",region="jizzakh",service="notifications_jizzakh"}' in page


def test_the_agency_hears_of_a_deadline_once_per_threshold(stack, notifications, mailbox):
    """From the watch's own copy of events: here events published straight to the bus, with due dates
    that are past, today and far ahead."""
    today = local_date(utc_now())
    stamp = time.time_ns() % 1_000_000
    due_dates = {"overdue": today - timedelta(days=3), "due_soon": today, "far": add_working_days(today, 10)}
    service = seed_service("archive-certificate")
    numbers = {}
    with Connection(stack.amqp_uri, transport_options={"confirm_publish": True}) as connection:
        producer = Producer(connection.channel(), exchange=EVENTS_EXCHANGE, serializer="json")
        for index, (case, due_date) in enumerate(due_dates.items()):
            numbers[case] = f"JI-2020-{stamp:06d}{index}"
            event = make_event("application.submitted", "jizzakh", "intake_jizzakh", {
                "tracking_number": numbers[case], "service_code": service["code"], "service_version": 1,
                "agency": service["agency"], "district": "1708401", "centre": "jizzakh-city", "status": "accepted", "version": 2,
                "previous_status": None, "reason": None, "actor": "test", "submitted_at": rfc3339(utc_now()),
                "changed_at": rfc3339(utc_now()), "due_date": due_date.isoformat(), "language": "ru", "channel": "none",
                "contact": {"phone": "+998901234567", "email": None}, "service_name": service["names"]})
            producer.publish(event, routing_key=routing_key(event), delivery_mode=2)
    overdue = wait_for(lambda: mailbox.about(numbers["overdue"]), message="the overdue notice")
    due_soon = wait_for(lambda: mailbox.about(numbers["due_soon"]), message="the due-soon notice")
    time.sleep(2.0)  # several more rounds of the watch
    assert mailbox.about(numbers["overdue"]) == overdue and mailbox.about(numbers["due_soon"]) == due_soon
    assert mailbox.about(numbers["far"]) == []
    [(to, subject, body, _)] = overdue
    assert to == AGENCY_ADDRESS and subject.startswith("Muddat o‘tdi") and service["names"]["uz"] in body
    assert due_soon[0][1].startswith("Muddat yaqinlashmoqda")
    assert [(item["audience"], item["event_type"], item["channel"], item["status"])
            for item in notifications.deliveries(numbers["due_soon"])] == [
        ("citizen", "application.submitted", "none", "skipped"), ("agency", "deadline.due_soon", "email", "sent")]


def test_http_health_metrics_and_bad_queries(stack, notifications, mailbox, gateway):
    url = notifications.process.url
    # A delivery of each outcome of its own, so that every counter below has moved in this test.
    sent_sms, refused_sms, skipped = (submit(stack, channel="sms"), submit(stack, phone=REFUSED_PHONE),
                                      submit(stack, channel="none"))
    sent_email = submit(stack, channel="email", email="metrics-check@example.uz")
    for number, status in ((sent_sms, "sent"), (refused_sms, "failed"), (skipped, "skipped"), (sent_email, "sent")):
        wait_for(lambda: [item["status"] for item in notifications.deliveries(number)] == [status],
                 message=f"{number} {status}")
    assert requests.get(f"{url}/health", timeout=10).json() == {"status": "ok", "service": "notifications_jizzakh"}
    staff = auth("officer", "jizzakh")
    missing = requests.get(f"{url}/api/v1/deliveries", timeout=10, headers=staff)
    assert missing.status_code == 400 and "tracking" in missing.json()["fields"]
    bad = requests.get(f"{url}/api/v1/deliveries", params={"tracking": "+998901234567"}, timeout=10, headers=staff)
    assert bad.status_code == 400 and "+998901234567" not in bad.text
    assert requests.get(f"{url}/api/v1/deliveries", params={"tracking": "JI-2020-999999"}, timeout=10,
                        headers=staff).json()["items"] == []
    # The gauge is sampled while earlier tests' deliveries may still be under way: wait for them to end.
    drained = 'oss_notification_pending_deliveries{channel="sms",region="jizzakh",service="notifications_jizzakh"} 0.0'
    page = wait_for(lambda: _metrics_with_pending(notifications, drained), timeout=60,
                    message="the metrics page with no SMS pending")
    for expected in ('oss_notification_deliveries_total{channel="sms",outcome="sent",region="jizzakh"}',
                     'oss_notification_deliveries_total{channel="email",outcome="sent",region="jizzakh"}',
                     'oss_notification_deliveries_total{channel="sms",outcome="failed",region="jizzakh"}',
                     'oss_notification_deliveries_total{channel="none",outcome="skipped",region="jizzakh"}',
                     'oss_notification_pending_deliveries{channel="sms",region="jizzakh",service="notifications_jizzakh"} 0.0',
                     'oss_event_queue_messages{queue="notifications_jizzakh.applications"',
                     'oss_entrypoint_calls_total{entrypoint="on_application_event",region="jizzakh",service="notifications_jizzakh"}'):
        assert expected in page, expected
    for personal in ("+998", "998901234567", "example.uz", "JI-20"):
        assert personal not in page


def _metrics_with_pending(notifications, line="oss_notification_pending_deliveries"):
    page = requests.get(f"http://127.0.0.1:{notifications.process.metrics_port}/metrics", timeout=10).text
    return page if line in page else None


def test_stopped_while_200_are_submitted_then_started_all_go_out(stack, notifications, mailbox, gateway):
    notifications.stop()
    pool = GreenPool(20)
    channels = ["sms", "email"]

    def file_one(index):
        channel = channels[index % 2]
        extra = {"email": f"bulk-{index}@example.uz"} if channel == "email" else {}
        return submit(stack, channel=channel, language=("uz", "ru", "en")[index % 3], **extra)

    started = time.monotonic()
    numbers = list(pool.imap(file_one, range(200)))
    filed = time.monotonic()
    notifications.start()
    wait_for(lambda: all(gateway.about(number) or mailbox.about(number) for number in numbers), timeout=90,
             interval=0.5, message="all 200 messages")
    delivered = time.monotonic()
    time.sleep(1.0)
    assert all(len(gateway.about(number)) + len(mailbox.about(number)) == 1 for number in numbers)
    print(f"200 filed in {filed - started:.1f}s while notifications was down; delivered {delivered - filed:.1f}s after start")


def test_a_national_instance_chosen_by_configuration_alone(stack, notifications, gateway, mailbox, tmp_path):
    """The same code bound to `*.application.*` by deploy/regions/national.yml: every region's
    applicants hear from it, once. The regional instance is stopped first, as a deployment that
    chooses the national one does not run it."""
    notifications.stop()
    regions_dir = tmp_path / "regions"
    shutil.copytree(PROJECT_ROOT / "deploy" / "regions", regions_dir)
    national = yaml.safe_load((regions_dir / "national.yml").read_text(encoding="utf-8"))
    national["services"]["notifications"] = {"NOTIFICATION_BINDINGS": "*.application.*"}
    (regions_dir / "national.yml").write_text(yaml.safe_dump(national), encoding="utf-8")
    process = stack.start_national("notifications", OSS_REGIONS_DIR=regions_dir,
                                   **channel_settings(mailbox, gateway))
    try:
        numbers = {region: submit(stack, region=region) for region in ("jizzakh", "namangan", "fergana")}
        wait_for(lambda: all(gateway.about(number) for number in numbers.values()), message="an SMS in every region")
        time.sleep(1.0)
        for region, number in numbers.items():
            assert len(gateway.about(number)) == 1
            [item] = notifications.deliveries(number, process=process)
            assert item["status"] == "sent"
        health = requests.get(f"{process.url}/health", timeout=10).json()
        assert health["service"] == "notifications"
    finally:
        process.stop()
        notifications.start()  # the module's later tests hear from the regional instance again


def test_the_invoice_and_the_payment_reach_the_citizen_in_their_language(stack, notifications, mailbox):
    """A paid service: the filing's message names the fee, the invoice and Payme's checkout; the
    payment taken at the desk is confirmed; each in the citizen's language."""
    numbers = {}
    for language in ("uz", "ru", "en"):
        body = valid_submission("jizzakh", "apostille")
        body["applicant"] = dict(body["applicant"], channel="email", email=f"payer-{language}@example.uz", language=language)
        filed = post(f"{stack.urls['jizzakh']}/api/v1/applications", body, **auth("operator", "jizzakh"))
        assert filed.status_code == 201 and filed.json()["status"] == "awaiting_payment", filed.text
        numbers[language] = filed.json()
    amount = {"uz": "82\u00a0400 so‘m", "ru": "82\u00a0400 сум", "en": "82\u00a0400 so'm"}
    paid_subjects = {"uz": "To‘lov qabul qilindi", "ru": "Оплата получена", "en": "Payment received"}
    for language, filed in numbers.items():
        number = filed["tracking_number"]
        [(_, _, body, _)] = wait_for(lambda number=number: mailbox.about(number), message=f"the invoice in {language}")
        assert amount[language] in body and filed["invoice"]["invoice_number"] in body
        assert "https://checkout.paycom.uz/" in body
        pay_at_the_desk(stack.urls["jizzakh"], filed, auth("operator", "jizzakh"))
        wait_for(lambda number=number: len(mailbox.about(number)) == 2, message=f"the payment in {language}")
        _, subject, body, _ = mailbox.about(number)[1]
        assert subject == f"{paid_subjects[language]}: {number}" and amount[language] in body
