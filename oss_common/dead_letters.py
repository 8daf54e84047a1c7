"""`oss dead-letters`: what consumers gave up on, why, and putting it back or dropping it for good.

Every event queue `<queue>` has `<queue>.dead` on `oss.dlx` (oss_common.events). A dead letter keeps
the event's body and properties, with `x-error` (why), `x-failed-queue`, `x-failed-handler`,
`x-original-routing-key` and `x-dead-lettered-at` headers (oss_common.consumers).

- list: per dead-letter queue, how many, the oldest, the reasons (masked), how many were dropped.
- show: one message, personal data masked in its body and its headers (`mask`: personal fields by
  name, and e-mail addresses, phone, PINFL and passport numbers in any string, an x-error too; a
  header none of ours writes is shown masked whole).
- replay: back to the queue it failed on (through its requeue key on the user's dlx outlet; a parked
  RPC request as the call it was, by its routing key on the user's RPC outlet), confirmed
  before it leaves the dead-letter queue. Consumers record the event ids they applied, so an
  event replayed twice is applied once.
- drop: remove one for good; a record (event id, type, queue, error, reason, who, when; never the
  body) is kept in `<queue>.dropped`.
Messages are read with basic.get and, unless a command takes them, given back to their queue
(rejected with requeue) before the command answers.
"""
import getpass
import json
import re
from collections import Counter
from dataclasses import dataclass, field

from amqp.exceptions import AccessRefused, NotFound
from kombu import Connection, Producer

from oss_common.broker import RPC_EXCHANGE, ensure_connected, outlet
from oss_common.events import DEAD_LETTER_EXCHANGE, dropped_queue, requeue_key, utc_now

DEAD_SUFFIX = ".dead"
# Keys whose values are personal data wherever they appear in a body (an event's contact, an RPC
# request's applicant, Open311's requester, a service's attributes such as person_full_name).
PERSONAL_KEYS = frozenset({"phone", "email", "pinfl", "full_name", "passport", "applicant_name", "applicant_phone",
                           "applicant_email", "applicant_pinfl", "first_name", "last_name", "middle_name",
                           "patronymic", "address", "birth_date", "date_of_birth", "description", "device_id"})
PERSONAL_KEY_PARTS = re.compile(r"(^|_)(pinfl|passport|phone|email|full_name|first_name|last_name|birth_date|address)($|_)")
# Values that are personal data whatever carries them (a free-text field, an x-error quoting a value):
# e-mail addresses, phone numbers however written, PINFLs and other runs of nine digits or more, and
# passport numbers (two capitals, seven digits). Not tracking numbers, event ids, dates or codes.
PERSONAL_VALUES = re.compile(
    r"[^\s@\"'<>(),;:]+@[^\s@\"'<>(),;:]+"
    r"|(?<![\w-])\+?998(?:[\s().-]*\d){9}(?![\w-])"
    r"|(?<![\w-])\+?\d{9,}(?![\w-])"
    r"|\b[A-Z]{2}\s?\d{7}\b"
)
MASK = "***"
# Headers `show` prints (masked as any string is); any other header's value, which nothing here
# wrote and which could say anything, is shown as MASK.
SHOWN_HEADERS = frozenset({"x-error", "x-failed-queue", "x-failed-handler", "x-original-routing-key", "x-dead-lettered-at",
                           "x-replayed-at", "x-oss-retries", "x-retry-reason", "x-delivery-count",
                           "x-first-death-exchange", "x-first-death-queue", "x-first-death-reason"})
# Headers a replayed copy does not carry: the broker's own history and the last failure's back-off.
DROPPED_ON_REPLAY = ("x-death", "x-first-death-exchange", "x-first-death-queue", "x-first-death-reason",
                     "x-delivery-count", "x-oss-retries", "x-retry-reason")


class DeadLetterError(Exception):
    """A dead-letter command cannot do what it was asked (unknown queue, no such message)."""


def base_queue(name: str) -> str:
    """`intake_jizzakh.catalogue` for `intake_jizzakh.catalogue` or `intake_jizzakh.catalogue.dead`."""
    return name[:-len(DEAD_SUFFIX)] if name.endswith(DEAD_SUFFIX) else name


@dataclass
class QueueSummary:
    queue: str
    messages: int | None  # None: no such queue on the broker
    oldest: str | None = None
    reasons: Counter = field(default_factory=Counter)
    dropped: int = 0
    refused: bool = False  # the broker would not let this user read it (another principal's queue)


def personal_key(key: object) -> bool:
    key = str(key).lower()
    return key in PERSONAL_KEYS or bool(PERSONAL_KEY_PARTS.search(key))


def mask_text(text: str) -> str:
    """`text` with every e-mail address, long number and passport number in it replaced by MASK."""
    return PERSONAL_VALUES.sub(MASK, text)


def mask(value: object) -> object:
    """The value with every personal field (PERSONAL_KEYS and keys naming one, at any depth) replaced
    by MASK, and what looks like personal data in any other string (mask_text) masked too."""
    if isinstance(value, dict):
        return {key: (MASK if personal_key(key) and item not in (None, "") else mask(item)) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [mask(item) for item in value]
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    if isinstance(value, str):
        return mask_text(value)
    return value


def _body(message):
    raw = message.body.decode("utf-8", errors="replace") if isinstance(message.body, bytes) else message.body
    try:
        return json.loads(raw)
    except (TypeError, ValueError):
        return {"unreadable_body_bytes": len(raw or "")}


def _id(message):
    """A dead letter's id: its event id (`message_id`), or a parked RPC request's `correlation_id`."""
    return message.properties.get("message_id") or message.properties.get("correlation_id")


def _text(value):
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else value


class DeadLetters:
    """The dead-letter queues of one broker (AMQP_URI)."""

    def __init__(self, amqp_uri):
        self.amqp_uri = amqp_uri
        self.connection = Connection(amqp_uri, transport_options={"confirm_publish": True})

    def __enter__(self):
        ensure_connected(self.connection)
        return self

    def __exit__(self, *exc_info):
        self.connection.release()

    def _count(self, name):
        channel = self.connection.channel()
        try:
            return channel.queue_declare(queue=name, passive=True).message_count
        except NotFound:
            return None
        finally:
            if channel.is_open:
                channel.close()

    def _browse(self, channel, name):
        """Every message ready in `name`, unacknowledged: a caller takes some (ack) and gives back the
        rest (`_give_back`)."""
        messages = []
        while True:
            message = channel.basic_get(queue=name, no_ack=False)
            if message is None:
                return messages
            messages.append(message)

    def _give_back(self, channel, name, messages):
        """Return the messages not taken to `name`, and wait until the broker has them back (a passive
        declare on the same channel is answered after the rejects are handled), so that the next
        command counts them."""
        for message in messages:
            channel.basic_reject(message.delivery_tag, requeue=True)
        channel.queue_declare(queue=name, passive=True)

    def summary(self, queue: str):
        """Count, oldest and reasons of `queue`'s dead letters, and how many were dropped."""
        name = base_queue(queue)
        count = self._count(name + DEAD_SUFFIX)
        result = QueueSummary(name + DEAD_SUFFIX, count, dropped=self._count(f"{name}.dropped") or 0)
        if not count:
            return result
        channel = self.connection.channel()
        try:
            try:
                messages = self._browse(channel, name + DEAD_SUFFIX)
            except AccessRefused:
                result.refused = True
                return result
            for message in messages:
                headers = message.headers or {}
                result.reasons[mask_text(_text(headers.get("x-error")) or "(no reason recorded)")] += 1
                when = _text(headers.get("x-dead-lettered-at"))
                if when and (result.oldest is None or when < result.oldest):
                    result.oldest = when
            self._give_back(channel, name + DEAD_SUFFIX, messages)
        finally:
            if channel.is_open:
                channel.close()
        return result

    def show(self, queue: str, message_id: str) -> dict:
        """One dead letter as {message_id, headers, body}, personal data masked."""
        name = base_queue(queue)
        channel = self.connection.channel()
        try:
            messages = self._browse(channel, name + DEAD_SUFFIX)
            self._give_back(channel, name + DEAD_SUFFIX, messages)
        finally:
            channel.close()
        for message in messages:
            if _id(message) == message_id:
                headers = {key: (mask(value) if key in SHOWN_HEADERS else MASK)
                           for key, value in (message.headers or {}).items() if key != "x-death"}
                return {"message_id": message_id, "queue": name + DEAD_SUFFIX, "headers": headers,
                        "body": mask(_body(message))}
        raise DeadLetterError(f"no message {message_id!r} in {name}{DEAD_SUFFIX}")

    def replay(self, queue: str, message_ids: list[str] | None = None) -> list:
        """Put dead letters (those of `message_ids`, or all) back on the queue each failed on; returns
        the ids replayed. Each is confirmed by the broker before it is taken from the dead-letter queue."""
        name = base_queue(queue)
        replayed = []
        channel = self.connection.channel()
        producer = Producer(self.connection.channel())
        kept = []
        try:
            for message in self._browse(channel, name + DEAD_SUFFIX):
                message_id = _id(message)
                if message_ids is not None and message_id not in message_ids:
                    kept.append(message)
                    continue
                headers = message.headers or {}
                target = _text(headers.get("x-failed-queue")) or name
                copied = {key: value for key, value in headers.items() if key not in DROPPED_ON_REPLAY}
                copied["x-replayed-at"] = utc_now().isoformat(timespec="seconds")
                if target.startswith("rpc-"):
                    # A request a service's RPC queue parked: the call again, by the key it was made with.
                    exchange, key = outlet(self.amqp_uri, RPC_EXCHANGE), _text(headers.get("x-original-routing-key"))
                    if not key:
                        raise DeadLetterError(f"{message_id} does not say which call it was (x-original-routing-key)")
                    properties = {prop: message.properties[prop] for prop in ("reply_to", "correlation_id")
                                  if message.properties.get(prop)}
                else:
                    exchange, key, properties = outlet(self.amqp_uri, DEAD_LETTER_EXCHANGE.name), requeue_key(target), {}
                producer.publish(message.body, exchange=exchange, routing_key=key,
                                 headers=copied, delivery_mode=2, content_type=message.content_type,
                                 content_encoding=message.content_encoding, message_id=message_id,
                                 mandatory=True, retry=False, **properties)
                channel.basic_ack(message.delivery_tag)
                replayed.append(message_id)
            self._give_back(channel, name + DEAD_SUFFIX, kept)
        finally:
            producer.channel.close()
            channel.close()
        missing = sorted(set(message_ids or ()) - set(replayed))
        if missing:
            raise DeadLetterError(f"not in {name}{DEAD_SUFFIX} (replayed or dropped already?): {', '.join(missing)}"
                                  + (f"; replayed {', '.join(replayed)}" if replayed else ""))
        return replayed

    def drop(self, queue: str, message_id: str, reason: str, by: str | None = None) -> dict:
        """Remove one dead letter for good, keeping a record of it (not its body) in `<queue>.dropped`."""
        if not (reason or "").strip():
            raise DeadLetterError("say why it is dropped (--reason)")
        name = base_queue(queue)
        channel = self.connection.channel()
        producer = Producer(self.connection.channel())
        messages = []
        try:
            dropped_queue(name)(producer.channel).declare()
            messages = self._browse(channel, name + DEAD_SUFFIX)
            for index, message in enumerate(messages):
                if _id(message) != message_id:
                    continue
                headers = message.headers or {}
                body = _body(message)
                record = {
                    "event_id": message_id,
                    "event_type": body.get("type") if isinstance(body, dict) else None,
                    "queue": name,
                    "error": mask_text(_text(headers.get("x-error")) or "") or None,
                    "reason": reason.strip(),
                    "dropped_by": by or getpass.getuser(),
                    "dropped_at": utc_now().isoformat(timespec="seconds"),
                }
                producer.publish(json.dumps(record), exchange=outlet(self.amqp_uri, DEAD_LETTER_EXCHANGE.name),
                                 routing_key=f"{name}.dropped",
                                 content_type="application/json", delivery_mode=2, message_id=message_id,
                                 mandatory=True, retry=False)
                channel.basic_ack(message.delivery_tag)
                del messages[index]
                self._give_back(channel, name + DEAD_SUFFIX, messages)
                return record
            self._give_back(channel, name + DEAD_SUFFIX, messages)
        finally:
            producer.channel.close()
            channel.close()
        raise DeadLetterError(f"no message {message_id!r} in {name}{DEAD_SUFFIX}")


def format_summaries(summaries: list) -> str:
    lines = [f"{'QUEUE':<44} {'COUNT':>5} {'DROPPED':>7}  {'OLDEST':<25} REASONS"]
    for summary in summaries:
        count = "-" if summary.messages is None else str(summary.messages)
        reasons = "; ".join(f"{reason} ({n})" for reason, n in summary.reasons.most_common(3)) or \
            ("(not readable by this user)" if summary.refused else "-")
        lines.append(f"{summary.queue:<44} {count:>5} {summary.dropped:>7}  {summary.oldest or '-':<25} {reasons}")
    return "\n".join(lines)
