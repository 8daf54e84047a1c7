"""The channels on loopback: what goes to an SMS gateway and an SMTP server, and which failures are
tried again (down, 5xx, SMTP 4xx) and which are final (4xx, SMTP 5xx, sent without an answer)."""
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from services.notifications.channels import ChannelSet, SmsGateway, SmtpChannel
from services.notifications.exceptions import ChannelNotConfigured, PermanentFailure, TemporaryFailure
from services.notifications.messages import Message
from tests.conftest import free_port
from tests.smtp_sink import SmtpSink

MESSAGE = Message(subject="Ваша заявка принята: JI-2026-000001", body="Номер для отслеживания: JI-2026-000001.")


class Gateway:
    """An HTTP server answering every POST with `status` and keeping what it was sent."""

    def __init__(self, status=200):
        self.status = status
        self.requests = []
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                gateway.requests.append((dict(self.headers), json.loads(self.rfile.read(length))))
                self.send_response(gateway.status)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b'{"status": "ok"}')

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/api/message/sms/send"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def gateway():
    server = Gateway()
    yield server
    server.close()


def test_eskiz_style_request(gateway):
    SmsGateway(gateway.url, token="secret-token", sender="4546").send("+998901234567", MESSAGE, "key-1")
    [(headers, body)] = gateway.requests
    assert headers["Authorization"] == "Bearer secret-token"
    assert body == {"mobile_phone": "998901234567", "message": MESSAGE.body, "from": "4546"}


def test_playmobile_style_request_with_basic_auth(gateway):
    SmsGateway(gateway.url, token="login:password", auth="basic", payload="playmobile", sender="3700").send(
        "+998901234567", MESSAGE, "key-2")
    [(headers, body)] = gateway.requests
    assert headers["Authorization"].startswith("Basic ")
    assert body == {"messages": [{"recipient": "998901234567", "message-id": "key-2",
                                  "sms": {"originator": "3700", "content": {"text": MESSAGE.body}}}]}


@pytest.mark.parametrize("status,failure", [(500, TemporaryFailure), (502, TemporaryFailure), (503, TemporaryFailure),
                                            (429, TemporaryFailure), (400, PermanentFailure), (401, PermanentFailure),
                                            (422, PermanentFailure)])
def test_gateway_answers_decide_whether_to_retry(gateway, status, failure):
    gateway.status = status
    with pytest.raises(failure, match=str(status)) as raised:
        SmsGateway(gateway.url).send("+998901234567", MESSAGE, "key")
    assert "998901234567" not in str(raised.value)


def test_a_gateway_that_is_down_is_tried_again():
    with pytest.raises(TemporaryFailure, match="unreachable"):
        SmsGateway(f"http://127.0.0.1:{free_port()}/send", timeout=2).send("+998901234567", MESSAGE, "key")


def test_a_gateway_that_drops_the_connection_is_tried_again():
    listener = socket.create_server(("127.0.0.1", 0))

    def drop():
        connection, _ = listener.accept()
        connection.recv(65536)
        connection.close()

    threading.Thread(target=drop, daemon=True).start()
    try:
        with pytest.raises(TemporaryFailure, match="unreachable"):
            SmsGateway(f"http://127.0.0.1:{listener.getsockname()[1]}/send", timeout=2).send("+998901234567", MESSAGE, "k")
    finally:
        listener.close()


def test_a_gateway_that_takes_the_request_and_never_answers_is_not_tried_again():
    listener = socket.create_server(("127.0.0.1", 0))
    accepted = []
    threading.Thread(target=lambda: accepted.append(listener.accept()), daemon=True).start()
    try:
        with pytest.raises(PermanentFailure, match="did not answer within 0.5s") as raised:
            SmsGateway(f"http://127.0.0.1:{listener.getsockname()[1]}/send", timeout=0.5).send("+998901234567", MESSAGE, "k")
        assert "127.0.0.1" not in str(raised.value)
    finally:
        listener.close()


def test_sms_settings_are_checked():
    with pytest.raises(ChannelNotConfigured, match="not configured"):  # held, not failed
        SmsGateway("").send("+998901234567", MESSAGE, "key")
    with pytest.raises(PermanentFailure, match="no phone number"):
        SmsGateway("http://127.0.0.1:1/").send(None, MESSAGE, "key")
    with pytest.raises(ValueError):
        SmsGateway("http://x", payload="carrier-pigeon")
    with pytest.raises(ValueError):
        SmsGateway("http://x", auth="hmac")


@pytest.fixture
def smtp(tmp_path):
    """A real SMTP server (its own process: see tests/smtp_sink.py) refusing `unknown@` for good and `busy@` for now."""
    server = SmtpSink(free_port(), tmp_path / "messages.jsonl").start()
    yield server
    server.stop()


def channel(server, **overrides):
    settings = {"host": "127.0.0.1", "port": server.port, "sender": "OSS Jizzakh <noreply@jizzakh.oss.example.uz>",
                "timeout": 5}
    settings.update(overrides)
    return SmtpChannel(**settings)


def test_an_email_in_utf8_with_a_stable_message_id(smtp):
    # Long and many-lined: SMTP servers refuse lines over 1000 bytes, so the lines must end in CRLF.
    long_message = Message(subject=MESSAGE.subject, body="\n".join([MESSAGE.body] * 40))
    channel(smtp).send("aziza@example.uz", long_message, "0123abcd")
    [(recipients, received)] = smtp.messages
    assert recipients == ["aziza@example.uz"]
    assert received["Subject"] == MESSAGE.subject and received["To"] == "aziza@example.uz"
    assert received["Message-ID"] == "<0123abcd@jizzakh.oss.example.uz>"
    assert received.get_content().replace("\r\n", "\n").strip() == long_message.body


def test_smtp_refusals_and_outages(smtp):
    with pytest.raises(PermanentFailure, match="SMTP 550"):
        channel(smtp).send("unknown@example.uz", MESSAGE, "k")
    with pytest.raises(TemporaryFailure, match="SMTP 451"):
        channel(smtp).send("busy@example.uz", MESSAGE, "k")
    with pytest.raises(TemporaryFailure, match="unreachable"):
        channel(smtp, port=free_port()).send("aziza@example.uz", MESSAGE, "k")
    with pytest.raises(ChannelNotConfigured, match="not configured"):
        channel(smtp, host="").send("aziza@example.uz", MESSAGE, "k")
    with pytest.raises(ValueError):
        channel(smtp, security="maybe")
    assert smtp.messages == []


def test_channels_pick_by_name(smtp, gateway):
    channels = ChannelSet(email=channel(smtp), sms=SmsGateway(gateway.url))
    channels.send("email", "aziza@example.uz", MESSAGE, "k1")
    channels.send("sms", "+998901234567", MESSAGE, "k2")
    deadline = time.monotonic() + 5
    while not smtp.messages and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(smtp.messages) == 1 and len(gateway.requests) == 1
