"""The event envelope every service publishes on `oss.events`, and the bus topology around it."""
import re
import uuid
from datetime import datetime, timezone

from kombu import Exchange, Queue, binding
from marshmallow import RAISE, Schema, ValidationError, fields, validate

SCHEMA_VERSION = 1
# Declared passively wherever the code meets them: they come from the broker's definitions
# (oss_common.broker), or from `oss run` on a development broker.
EVENTS_EXCHANGE = Exchange("oss.events", type="topic", durable=True, passive=True)
DEAD_LETTER_EXCHANGE = Exchange("oss.dlx", type="topic", durable=True, passive=True)
NATIONAL = "national"

ROUTING_WORD = r"^[a-z0-9][a-z0-9_-]*$"
EVENT_TYPE = r"^[a-z_]+\.[a-z_]+$"
_ROUTING_WORD, _EVENT_TYPE = re.compile(ROUTING_WORD), re.compile(EVENT_TYPE)


class EnvelopeSchema(Schema):
    """What crosses the bus: a fact about one aggregate in one region, with its own id."""

    class Meta:
        unknown = RAISE

    event_id = fields.UUID(required=True)
    type = fields.String(required=True, validate=validate.Regexp(EVENT_TYPE))
    region = fields.String(required=True, validate=validate.Regexp(ROUTING_WORD))
    occurred_at = fields.AwareDateTime(required=True, format="iso", default_timezone=timezone.utc)
    schema_version = fields.Integer(required=True, validate=validate.Range(min=1))
    producer = fields.String(required=True)
    data = fields.Dict(required=True)


ENVELOPE = EnvelopeSchema()


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def rfc3339(moment: datetime) -> str:
    """UTC timestamp as RFC 3339 with a Z suffix."""
    return moment.astimezone(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


def make_event(event_type: str, region: str, producer: str, data: dict, occurred_at: datetime | None = None,
               schema_version: int = SCHEMA_VERSION) -> dict:
    """A new envelope (a plain dict, ready for JSON) for `event_type` such as `application.submitted`;
    `schema_version` is the version of its body's contract (oss_common.application_events for intake's)."""
    envelope = {
        "event_id": str(uuid.uuid4()),
        "type": event_type,
        "region": region,
        "occurred_at": rfc3339(occurred_at or utc_now()),
        "schema_version": schema_version,
        "producer": producer,
        "data": data,
    }
    # Only what the caller gives needs checking (the rest is made here); a full schema validation of
    # every envelope cost ~4% of a busy intake's CPU. What this makes always passes ENVELOPE.load.
    problems = [name for name, ok in (
        ("type", isinstance(event_type, str) and _EVENT_TYPE.match(event_type)),
        ("region", isinstance(region, str) and _ROUTING_WORD.match(region)),
        ("producer", isinstance(producer, str) and producer),
        ("data", isinstance(data, dict)),
    ) if not ok]
    if problems:
        raise ValueError(f"invalid event envelope: {', '.join(problems)}")
    return envelope


def load_envelope(body: object) -> dict:
    """Validate a received envelope; raises marshmallow.ValidationError when it is malformed."""
    if not isinstance(body, dict):
        raise ValidationError({"_schema": ["event body is not an object"]})
    ENVELOPE.load(body)
    return body


def routing_key(envelope: dict) -> str:
    """`<region>.<aggregate>.<event>`, e.g. `jizzakh.application.submitted`; never personal data."""
    return f"{envelope['region']}.{envelope['type']}"


# The broker's own cap on deliveries of one message, fixed because a queue's arguments cannot
# change once it exists. Consumers give up earlier (DELIVERY_LIMIT, configurable) and record why;
# this cap only catches a message whose handler kills its process before it can give up.
BROKER_DELIVERY_LIMIT = 50


def event_queue(name: str, patterns: list[str], dead_letter_exchange: str = DEAD_LETTER_EXCHANGE.name) -> Queue:
    """A durable quorum queue bound to `oss.events` by topic patterns (and to `oss.dlx` by its
    requeue key), dead-lettering to `oss.dlx` (through `dead_letter_exchange`, the user's outlet
    where it has one: oss_common.broker.outlet).

    The broker counts deliveries (`x-delivery-count`); past BROKER_DELIVERY_LIMIT it dead-letters
    the message with the queue's name as routing key, so a poison message never blocks the queue.
    """
    return Queue(
        name,
        bindings=[binding(EVENTS_EXCHANGE, routing_key=pattern) for pattern in patterns]
        + [binding(DEAD_LETTER_EXCHANGE, routing_key=requeue_key(name))],
        durable=True,
        auto_delete=False,
        queue_arguments={
            "x-queue-type": "quorum",
            "x-delivery-limit": BROKER_DELIVERY_LIMIT,
            "x-dead-letter-exchange": dead_letter_exchange,
            "x-dead-letter-routing-key": name,
        },
    )


def requeue_key(name: str) -> str:
    """The routing key on `oss.dlx` that puts a message back on event queue `name` (after a retry's
    back-off, or a replay of a dead letter): the queue is bound to it, and nothing else is."""
    return f"{name}.requeue"


def retry_queue(name: str, dead_letter_exchange: str = DEAD_LETTER_EXCHANGE.name) -> Queue:
    """Where a message of `name` that failed for a reason that passes waits out its back-off: each
    message carries its own TTL (`expiration`), and on expiry the broker dead-letters it back to
    `name` through `oss.dlx` (the user's outlet, as for event_queue), at least once (a quorum queue's at-least-once dead-lettering), so a
    broker or consumer restart meanwhile loses nothing. Without a consumer, it holds nothing for long."""
    return Queue(
        f"{name}.retry",
        exchange=DEAD_LETTER_EXCHANGE,
        routing_key=f"{name}.retry",
        durable=True,
        auto_delete=False,
        queue_arguments={
            "x-queue-type": "quorum",
            "x-dead-letter-exchange": dead_letter_exchange,
            "x-dead-letter-routing-key": requeue_key(name),
            "x-dead-letter-strategy": "at-least-once",
            "x-overflow": "reject-publish",
        },
    )


def dropped_queue(name: str) -> Queue:
    """Where `oss dead-letters drop` records (never the body) what it removed from `<name>.dead`."""
    return Queue(f"{name}.dropped", exchange=DEAD_LETTER_EXCHANGE, routing_key=f"{name}.dropped", durable=True,
                 auto_delete=False, queue_arguments={"x-queue-type": "quorum"})


def dead_letter_queue(name: str) -> Queue:
    """Where the messages that `name`'s consumers gave up on are kept for inspection."""
    return Queue(
        f"{name}.dead",
        exchange=DEAD_LETTER_EXCHANGE,
        routing_key=name,
        durable=True,
        auto_delete=False,
        queue_arguments={"x-queue-type": "quorum"},
    )
