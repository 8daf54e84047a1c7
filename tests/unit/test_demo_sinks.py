"""The demo's sinks (`make run`): a real SMTP server and an endpoint that speaks Eskiz's SMS API,
keeping what they accept and showing it on a page without the citizens' addresses."""
import smtplib
from email.message import EmailMessage

import pytest
import requests

from services.notifications.channels import SmsGateway, SmtpChannel
from services.notifications.demo_sinks import DEMO_TOKEN, DemoSinks
from services.notifications.exceptions import PermanentFailure
from services.notifications.messages import Message
from tests.conftest import free_port


@pytest.fixture
def sinks(tmp_path):
    running = DemoSinks(tmp_path / "messages.jsonl", smtp_port=free_port(), http_port=free_port()).start()
    yield running
    running.stop()


def test_what_notifications_sends_with_the_demo_settings_is_shown(sinks):
    settings = sinks.settings()
    SmsGateway(settings["SMS_GATEWAY_URL"], token=settings["SMS_GATEWAY_TOKEN"]).send(
        "+998901234567", Message(subject="", body="Kuzatuv raqami: JI-2026-000001"), "key-1")
    SmtpChannel(settings["SMTP_HOST"], settings["SMTP_PORT"], sender=settings["SMTP_FROM"]).send(
        "aziza@example.uz", Message(subject="Ваша заявка принята: JI-2026-000002", body="Номер для отслеживания"), "key-2")
    messages = requests.get(f"{sinks.url}messages.json", timeout=10).json()
    assert [(m["channel"], m["to"], m["text"]) for m in messages] == [
        ("sms", "998901234567", "Kuzatuv raqami: JI-2026-000001"), ("email", "aziza@example.uz", "Номер для отслеживания")]
    assert messages[1]["subject"] == "Ваша заявка принята: JI-2026-000002"
    page = requests.get(sinks.url, timeout=10).text
    assert "JI-2026-000001" in page and "Ваша заявка принята" in page
    assert "998901234567" not in page and "aziza@" not in page


def test_the_sms_endpoint_answers_as_eskiz_does(sinks):
    url = sinks.settings()["SMS_GATEWAY_URL"]
    assert requests.post(url, json={"mobile_phone": "998901234567", "message": "x"}, timeout=10).status_code == 401
    refused = requests.post(url, data={"mobile_phone": "12345", "message": "x"}, timeout=10,
                            headers={"Authorization": f"Bearer {DEMO_TOKEN}"})
    assert refused.status_code == 400
    with pytest.raises(PermanentFailure, match="400"):
        SmsGateway(url, token=DEMO_TOKEN).send("+12345", Message(subject="", body="x"), "k")
    login = requests.post(url.replace("message/sms/send", "auth/login"), data={"email": "a", "password": "b"}, timeout=10)
    assert login.json()["data"]["token"] == DEMO_TOKEN


def test_an_email_arrives_as_sent(sinks):
    mail = EmailMessage()
    mail["From"], mail["To"], mail["Subject"] = "oss@example.uz", "citizen@example.uz", "Arizangiz qabul qilindi"
    mail.set_content("Kuzatuv raqami: JI-2026-000003")
    with smtplib.SMTP("127.0.0.1", sinks.smtp_port, timeout=10) as server:
        server.send_message(mail)
    [message] = requests.get(f"{sinks.url}messages.json", timeout=10).json()
    assert (message["subject"], message["text"]) == ("Arizangiz qabul qilindi", "Kuzatuv raqami: JI-2026-000003")
