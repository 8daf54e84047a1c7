"""A real SMTP server (aiosmtpd) in a process of its own, writing each accepted e-mail as a JSON line.

The tests run under eventlet's monkey-patching, where aiosmtpd's "thread" would be a green thread
sharing the main thread's asyncio state, and so refuse to start once another asyncio loop (such as
Playwright's) has run there. In a process of its own it is a plain asyncio server.
Recipients whose local part is `unknown` are refused for good (550), `busy` for now (451).

    python -m tests.smtp_sink --port 2525 --out messages.jsonl
"""
import argparse
import email
import email.policy
import json
import signal
import subprocess
import sys
import threading
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class JsonLinesMailbox:
    """aiosmtpd handler appending {"to": [...], "content": raw message} of every accepted e-mail to a file."""

    def __init__(self, path):
        self.path = path

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        local = address.split("@")[0]
        if local == "unknown":
            return "550 5.1.1 no such mailbox"
        if local == "busy":
            return "451 4.3.0 try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        line = json.dumps({"to": envelope.rcpt_tos, "content": envelope.content.decode("utf-8", "replace")})
        with open(self.path, "a", encoding="utf-8") as out:
            out.write(line + "\n")
        return "250 OK"


class SmtpSink:
    """The test's handle on a running sink: its port and the messages it has accepted so far."""

    def __init__(self, port, path):
        self.port = port
        self.path = Path(path)
        self.process = None

    def start(self):
        self.process = subprocess.Popen([sys.executable, "-m", "tests.smtp_sink", "--port", str(self.port),
                                         "--out", str(self.path)], cwd=PROJECT_ROOT, stdout=subprocess.PIPE, text=True)
        if self.process.stdout.readline().strip() != "ready":
            self.process.kill()
            raise RuntimeError(f"the SMTP sink did not start on port {self.port}")
        return self

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=30)

    @property
    def messages(self):
        """(envelope recipients, parsed e-mail) of each accepted message, in order."""
        if not self.path.exists():
            return []
        with open(self.path, encoding="utf-8") as lines:
            records = [json.loads(line) for line in lines if line.endswith("\n")]
        return [(record["to"], email.message_from_string(record["content"], policy=email.policy.default))
                for record in records]


def main():
    from aiosmtpd.controller import Controller

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    controller = Controller(JsonLinesMailbox(args.out), hostname="127.0.0.1", port=args.port)
    controller.start()
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    signal.signal(signal.SIGINT, lambda *_: stopped.set())
    print("ready", flush=True)
    stopped.wait()
    controller.stop()


if __name__ == "__main__":
    main()
