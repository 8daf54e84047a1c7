"""What stands in for the outside world on a laptop (`make run`): a real SMTP server (aiosmtpd) and
an HTTP endpoint that speaks Eskiz's SMS API, both keeping what they accept, and a page that shows
the messages as the citizens read them (their own language, as notifications composed them).

    python -m services.notifications.demo_sinks --smtp-port 8025 --http-port 8090 --store var/demo-messages.jsonl

Eskiz's API as this sink speaks it (https://notify.eskiz.uz/api):
  POST /api/auth/login          email, password             -> {"message": "token_generated", "data": {"token": ...}}
  POST /api/message/sms/send    Authorization: Bearer <token>; mobile_phone (998XXXXXXXXX), message, from
                                (JSON or form)              -> {"id": ..., "message": "Waiting for SMS provider",
                                                                "status": "waiting"}; 400 for a malformed number
  GET /                         the messages sent, newest first (GET /messages.json: the same as JSON)
Nothing leaves the machine: the sink stores the messages in a JSON-lines file and sends nothing on.
"""
import argparse
import email
import email.policy
import html
import json
import re
import signal
import subprocess
import sys
import threading
import uuid
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs

PHONE = re.compile(r"^998\d{9}$")
DEMO_TOKEN = "demo-eskiz-token"
PROJECT_ROOT = Path(__file__).resolve().parents[2]


class MessageStore:
    """The accepted messages, one JSON line each: {at, channel, to, subject, text}."""

    def __init__(self, path):
        self.path = Path(path)
        self.lock = threading.Lock()

    def add(self, channel, to, text, subject=None):
        record = {"at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "channel": channel, "to": to,
                  "subject": subject, "text": text}
        with self.lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a", encoding="utf-8") as out:
                out.write(json.dumps(record, ensure_ascii=False) + "\n")
        return record

    def all(self):
        if not self.path.exists():
            return []
        with open(self.path, encoding="utf-8") as lines:
            return [json.loads(line) for line in lines if line.endswith("\n")]


class Mailbox:
    """aiosmtpd handler: every e-mail accepted is stored with its subject and plain text."""

    def __init__(self, store):
        self.store = store

    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        body = message.get_body(preferencelist=("plain",))
        text = body.get_content() if body is not None else ""
        self.store.add("email", ", ".join(envelope.rcpt_tos), text.strip(), subject=str(message["Subject"] or ""))
        return "250 OK"


def masked(address):
    """Enough of an address to tell messages apart on a shared screen, not to reach the person."""
    if "@" in address:
        local, _, domain = address.partition("@")
        return f"{local[:1]}***@{domain}"
    return f"{address[:5]}*****{address[-2:]}" if len(address) > 7 else "***"


def page(records):
    rows = "".join(
        f"<tr><td>{html.escape(record['at'])}</td><td>{html.escape(record['channel'])}</td>"
        f"<td>{html.escape(masked(record['to']))}</td><td><b>{html.escape(record.get('subject') or '')}</b>"
        f"<pre>{html.escape(record['text'])}</pre></td></tr>"
        for record in reversed(records))
    return (
        "<!doctype html><html><head><meta charset='utf-8'><meta http-equiv='refresh' content='5'>"
        "<title>OSS demo: messages sent to citizens</title>"
        "<style>body{font-family:sans-serif;margin:2em}td{vertical-align:top;padding:.4em;border-bottom:1px solid #ddd}"
        "pre{white-space:pre-wrap;margin:.3em 0}</style></head><body>"
        f"<h1>Messages sent to citizens ({len(records)})</h1>"
        "<p>E-mail arrives at the demo SMTP server, SMS at the demo Eskiz endpoint; nothing leaves this machine.</p>"
        f"<table><tr><th>when (UTC)</th><th>channel</th><th>to</th><th>message</th></tr>{rows}</table>"
        "</body></html>")


class EskizHandler(BaseHTTPRequestHandler):
    store = None  # set by serve()

    def _answer(self, status, body, content_type="application/json"):
        payload = body.encode("utf-8") if isinstance(body, str) else json.dumps(body, ensure_ascii=False).encode()
        self.send_response(status)
        self.send_header("Content-Type", f"{content_type}; charset=utf-8")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _fields(self):
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length).decode("utf-8", "replace") if length else ""
        if (self.headers.get("Content-Type") or "").startswith("application/json"):
            try:
                data = json.loads(raw or "{}")
            except ValueError:
                return None
            return {key: str(value) for key, value in data.items()} if isinstance(data, dict) else None
        return {key: values[0] for key, values in parse_qs(raw).items()}

    def do_GET(self):
        if self.path in ("/", "/messages"):
            self._answer(200, page(self.store.all()), content_type="text/html")
        elif self.path == "/messages.json":
            self._answer(200, self.store.all())
        else:
            self._answer(404, {"message": "not found"})

    def do_POST(self):
        fields = self._fields()
        if fields is None:
            self._answer(400, {"status": "error", "message": "body is not JSON"})
        elif self.path == "/api/auth/login":
            self._answer(200, {"message": "token_generated", "data": {"token": DEMO_TOKEN}, "token_type": "bearer"})
        elif self.path != "/api/message/sms/send":
            self._answer(404, {"message": "not found"})
        elif self.headers.get("Authorization") != f"Bearer {DEMO_TOKEN}":
            self._answer(401, {"status": "error", "message": "Unauthenticated."})
        elif not PHONE.match(fields.get("mobile_phone", "")) or not fields.get("message"):
            self._answer(400, {"status": "error", "message": "mobile_phone (998XXXXXXXXX) and message are required"})
        else:
            self.store.add("sms", fields["mobile_phone"], fields["message"])
            self._answer(200, {"id": str(uuid.uuid4()), "message": "Waiting for SMS provider", "status": "waiting"})

    def log_message(self, format, *args):  # the sink's own access log would print phone numbers
        pass


def serve(store, smtp_port, http_port, host="127.0.0.1"):
    """Start both sinks; returns a function that stops them."""
    from aiosmtpd.controller import Controller

    controller = Controller(Mailbox(store), hostname=host, port=smtp_port)
    controller.start()
    handler = type("Handler", (EskizHandler,), {"store": store})
    server = ThreadingHTTPServer((host, http_port), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()

    def stop():
        server.shutdown()
        controller.stop()

    return stop


class DemoSinks:
    """The sinks in a process of their own, as `oss demo` runs them, and the notifications settings
    that send to them."""

    def __init__(self, store, smtp_port=8025, http_port=8090):
        self.store = MessageStore(store)
        self.smtp_port = smtp_port
        self.http_port = http_port
        self.process = None

    @property
    def url(self):
        return f"http://127.0.0.1:{self.http_port}/"

    def settings(self):
        return {
            "SMTP_HOST": "127.0.0.1", "SMTP_PORT": self.smtp_port, "SMTP_SECURITY": "none",
            "SMTP_FROM": "Davlat xizmatlari (demo) <noreply@oss.demo.uz>",
            "SMS_GATEWAY_URL": f"http://127.0.0.1:{self.http_port}/api/message/sms/send",
            "SMS_GATEWAY_TOKEN": DEMO_TOKEN, "SMS_AUTH": "bearer", "SMS_PAYLOAD": "eskiz",
        }

    def start(self):
        self.process = subprocess.Popen(
            [sys.executable, "-m", "services.notifications.demo_sinks", "--smtp-port", str(self.smtp_port),
             "--http-port", str(self.http_port), "--store", str(self.store.path)],
            cwd=PROJECT_ROOT, stdout=subprocess.PIPE, text=True)
        if self.process.stdout.readline().strip() != "ready":
            self.process.kill()
            raise RuntimeError(f"the demo SMTP/SMS sinks did not start on ports {self.smtp_port}/{self.http_port}")
        return self

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smtp-port", type=int, default=8025)
    parser.add_argument("--http-port", type=int, default=8090)
    parser.add_argument("--store", required=True, help="JSON-lines file of the messages accepted")
    args = parser.parse_args()
    stop = serve(MessageStore(args.store), args.smtp_port, args.http_port)
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    signal.signal(signal.SIGINT, lambda *_: stopped.set())
    print("ready", flush=True)
    stopped.wait()
    stop()


if __name__ == "__main__":
    main()
