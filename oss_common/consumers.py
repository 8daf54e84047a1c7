"""`@event_handler`: consume domain events from `oss.events` through the service's own quorum queue.

What a handler's failure does depends on what it is (oss_common.failures):
- one that passes (database, broker or another service away, RetryLater) sends the event to
  `<queue>.retry`, where it waits RETRY_BASE_SECONDS, doubling with every retry up to
  RETRY_CEILING_SECONDS, and comes back to the queue - for as long as it takes, never dead-lettered;
- DeadLetter (the handler knows it can never apply the event), a malformed envelope, one that does
  not fit the queue (another routing key, another region) and any message a queue cannot decode
  (reject_malformed_messages) are dead-lettered at once to `<queue>.dead` through `oss.dlx`, with
  the reason in `x-error`;
- anything else is tried again up to DELIVERY_LIMIT deliveries with the same back-off, then
  dead-lettered with the exception's name (a bug: fix it, then `oss dead-letters replay`).
Either way the queue behind keeps flowing. Retries are counted in `oss_events_retried_total` and
`oss_event_retry_queue_messages` (the ceiling in `oss_event_retry_ceiling_seconds`), dead letters in
`oss_events_dead_lettered_total`.

Over 300 lines because each of those outcomes, and the malformed messages RPC queues get too, is decided in
this one place, so that no service's consumer handles a failure its own way.
"""
import functools
import logging
from datetime import datetime, timezone
from typing import Any

import eventlet
from amqp.exceptions import NotFound
from eventlet.semaphore import Semaphore
from kombu import Connection, Producer
from kombu.message import Message
from marshmallow import ValidationError
from nameko.extensions import ENTRYPOINT_EXTENSIONS_ATTR
from nameko.messaging import Consumer, QueueConsumer
from nameko.rpc import RpcConsumer
from sqlalchemy import String, bindparam, text
from sqlalchemy.orm import Mapped, Session, mapped_column

from oss_common.broker import outlet
from oss_common.database import UtcDateTime
from oss_common.config import ConfigurationError, as_list, setting
from oss_common.events import (
    BROKER_DELIVERY_LIMIT, DEAD_LETTER_EXCHANGE, NATIONAL, dead_letter_queue, event_queue, load_envelope, requeue_key,
    retry_queue, routing_key, utc_now,
)
from oss_common.failures import DEFAULT_RETRY_BASE_SECONDS, DEFAULT_RETRY_CEILING_SECONDS, is_transient, retry_delay
from oss_common.metrics import (
    DEAD_LETTER_MESSAGES, EVENT_LAG, EVENT_QUEUE_MESSAGES, EVENTS_DEAD_LETTERED, EVENTS_RETRIED, RETRY_CEILING,
    RETRY_QUEUE_MESSAGES,
)

log = logging.getLogger(__name__)

DEFAULT_DELIVERY_LIMIT = 5
DEFAULT_QUEUE_DEPTH_SECONDS = 15.0
RETRIES_HEADER = "x-oss-retries"


class DeadLetter(Exception):
    """Raised by a handler that knows retrying cannot help (e.g. a gateway refused a bad number):
    the event is dead-lettered at once with this message as its recorded error. Whatever the
    handler committed before raising (a `failed` row, an outbox event) stays committed."""


def delivery_number(headers: dict | None) -> int:
    """1 for a message's first delivery, counted by the broker's `x-delivery-count` header."""
    return int((headers or {}).get("x-delivery-count") or 0) + 1


class ProcessedEventMixin:
    """Columns of a consumer's `processed_events` table: the event ids it has applied."""

    __tablename__ = "processed_events"

    event_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    event_type: Mapped[str] = mapped_column(String(64), nullable=False)
    processed_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)


def tolerate_dropped_connections() -> None:
    """Let an ack or requeue on a connection the broker has just dropped go, instead of killing
    the service.

    nameko's QueueConsumer (behind RPC entrypoints, RPC replies and event consumers alike) guards
    these calls against amqp's own ConnectionError only; the socket's errors (ConnectionResetError,
    BrokenPipeError) escape them, and nameko kills the whole container - a broker restart then
    stops every service that was busy at that moment. Let go, the message is still unacked: the
    broker delivers it again once the consumer has reconnected, and handlers are idempotent (event
    ids; an RPC caller meets the timeout it would meet for any lost reply). Called once per process
    before its services start."""
    if getattr(QueueConsumer, "_oss_tolerates_dropped_connections", False):
        return

    def tolerant(settle):
        def settle_or_let_go(self, message):
            try:
                settle(self, message)
            except OSError as exc:
                log.warning("%s lost with the broker connection (%s); the broker will deliver the message again",
                            settle.__name__, type(exc).__name__)
        return settle_or_let_go

    QueueConsumer.ack_message = tolerant(QueueConsumer.ack_message)
    QueueConsumer.requeue_message = tolerant(QueueConsumer.requeue_message)
    QueueConsumer._oss_tolerates_dropped_connections = True


_FIRST_DELIVERY = {}  # table name -> statement


def first_delivery(session: Session, model: type, envelope: dict) -> bool:
    """Record the event as applied in the caller's transaction; False if it was applied before.

    One statement (INSERT ... ON CONFLICT DO NOTHING RETURNING; SQLite 3.35+ and PostgreSQL), not a
    look-up and then an insert at flush. A worker racing another on the same event waits for the
    other's transaction on the primary key: if that commits, this one sees the event as applied;
    if it rolls back, this one applies it.
    """
    table = model.__table__
    statement = _FIRST_DELIVERY.get(table.name)
    if statement is None:
        statement = _FIRST_DELIVERY[table.name] = text(
            f"INSERT INTO {table.name} (event_id, event_type, processed_at) VALUES (:event_id, :event_type, :processed_at) "
            "ON CONFLICT (event_id) DO NOTHING RETURNING event_id"
        ).bindparams(bindparam("processed_at", type_=table.c.processed_at.type))
    parameters = {"event_id": envelope["event_id"], "event_type": envelope["type"], "processed_at": utc_now()}
    return session.connection().execute(statement, parameters).first() is not None


class EventHandler(Consumer):
    def __init__(self, *patterns, queue_suffix="events", bindings_config_key=None, **kwargs):
        kwargs.setdefault("expected_exceptions", (DeadLetter,))
        self.patterns = patterns
        self.queue_suffix = queue_suffix
        self.bindings_config_key = bindings_config_key
        super().__init__(queue=None, **kwargs)

    def topology(self, service_name: str, config: dict) -> tuple:
        """The queue this handler consumes from in a service named `service_name` with `config`, and
        the topic patterns binding it to `oss.events` (the same for `oss broker definitions`)."""
        region = config.get("REGION") or "national"
        patterns = self.patterns
        if self.bindings_config_key and config.get(self.bindings_config_key):
            patterns = as_list(config[self.bindings_config_key])
        return f"{service_name}.{self.queue_suffix}", [pattern.format(region=region) for pattern in patterns]

    def setup(self) -> None:
        config = self.container.config
        self.region = config.get("REGION") or "national"
        self.delivery_limit = int(config.get("DELIVERY_LIMIT") or DEFAULT_DELIVERY_LIMIT)
        self.retry_base = setting(config, "RETRY_BASE_SECONDS", DEFAULT_RETRY_BASE_SECONDS, float)
        self.retry_ceiling = setting(config, "RETRY_CEILING_SECONDS", DEFAULT_RETRY_CEILING_SECONDS, float)
        self.amqp_uri = config["AMQP_URI"]
        self.depth_interval = float(config.get("QUEUE_DEPTH_SECONDS") or DEFAULT_QUEUE_DEPTH_SECONDS)
        self._depth_thread = None
        self.queue_name, patterns = self.topology(self.container.service_name, config)
        if not 1 <= self.delivery_limit < BROKER_DELIVERY_LIMIT:
            raise ConfigurationError(f"DELIVERY_LIMIT must be between 1 and {BROKER_DELIVERY_LIMIT - 1}")
        if not 0 < self.retry_base <= self.retry_ceiling:
            raise ConfigurationError("RETRY_BASE_SECONDS must be above 0 and at most RETRY_CEILING_SECONDS")
        RETRY_CEILING.labels(self.container.service_name, self.region, f"{self.queue_name}.retry").set(self.retry_ceiling)
        self.dead_letter_outlet = outlet(self.amqp_uri, DEAD_LETTER_EXCHANGE.name)
        self.queue = event_queue(self.queue_name, patterns, dead_letter_exchange=self.dead_letter_outlet)
        with Connection(self.amqp_uri) as connection:
            channel = connection.channel()
            DEAD_LETTER_EXCHANGE(channel).declare()
            dead_letter_queue(self.queue_name)(channel).declare()
            retry_queue(self.queue_name, dead_letter_exchange=self.dead_letter_outlet)(channel).declare()
            self.queue(channel).declare()
        self._publisher = None
        self._publishing = Semaphore(1)
        super().setup()

    def start(self) -> None:
        super().start()
        self._depth_thread = self.container.spawn_managed_thread(self._watch_depth)

    def stop(self) -> None:
        if self._depth_thread is not None:
            self._depth_thread.kill()
        super().stop()
        self._close_publisher()

    def kill(self) -> None:
        if self._depth_thread is not None:
            self._depth_thread.kill()
        super().kill()
        self._close_publisher()

    def _watch_depth(self):
        """Publish how many events wait in this queue, its dead-letter and its retry queue (for alerts and `oss status`)."""
        labels = (self.container.service_name, self.region)
        watch_queue_depths(self.amqp_uri, {
            self.queue_name: EVENT_QUEUE_MESSAGES.labels(*labels, self.queue_name),
            f"{self.queue_name}.dead": DEAD_LETTER_MESSAGES.labels(*labels, f"{self.queue_name}.dead"),
            f"{self.queue_name}.retry": RETRY_QUEUE_MESSAGES.labels(*labels, f"{self.queue_name}.retry"),
        }, self.depth_interval)

    def handle_message(self, body: Any, message: Message) -> None:
        try:
            envelope = load_envelope(body)
        except ValidationError as exc:
            self._park(message, f"malformed envelope: {sorted(exc.messages)}")
            return
        delivered_as = original_routing_key(message, self.queue_name)
        problem = self._misaddressed(envelope, delivered_as)
        if problem:
            self._park(message, problem)
            return
        occurred = _parse_time(envelope["occurred_at"])
        if occurred is not None:
            EVENT_LAG.labels(self.container.service_name, self.region, envelope["type"]).observe(
                max(0.0, (datetime.now(timezone.utc) - occurred).total_seconds())
            )
        super().handle_message(envelope, message)

    def _misaddressed(self, envelope, delivered_as):
        """Why an envelope does not belong on this queue (None when it does): its routing key must be
        the one it came by, and a region's queue takes its own region's and national events only."""
        if routing_key(envelope) != delivered_as:
            return f"envelope for {routing_key(envelope)} delivered as {delivered_as}"
        if self.region != NATIONAL and envelope["region"] not in (self.region, NATIONAL):
            return f"envelope of region {envelope['region']} on a queue of {self.region}"
        return None

    def handle_message_processed(self, message, result=None, exc_info=None):
        if exc_info is None:
            self.queue_consumer.ack_message(message)
            return
        error = exc_info[1]
        if isinstance(error, DeadLetter):
            self._park(message, f"DeadLetter: {error}")
            return
        if is_transient(error):
            self._retry_later(message, type(error).__name__)
            return
        deliveries = delivery_number(message.headers)
        if deliveries >= self.delivery_limit:
            self._park(message, f"{exc_info[0].__name__} after {deliveries} deliveries")
            return
        delay = retry_delay(deliveries, self.retry_base, self.retry_ceiling)
        log.warning("%s.%s failed with %s (delivery %d of %d); retrying in %.1fs",
                    self.container.service_name, self.method_name, exc_info[0].__name__,
                    deliveries, self.delivery_limit, delay)
        eventlet.spawn_after(delay, self._requeue, message)

    def _park(self, message, error):
        """Dead-letter, then acknowledge; if the broker cannot take the dead letter now, the message
        goes back to its queue after a back-off and meets its handler again."""
        try:
            self.dead_letter(message, error)
        except Exception as exc:  # noqa: BLE001 - the broker may be away: keep the message, decide again later
            self._close_publisher()
            log.warning("could not dead-letter from %s (%s); it stays in its queue", self.queue_name, type(exc).__name__)
            eventlet.spawn_after(self.retry_ceiling, self._requeue, message)
            return
        self.queue_consumer.ack_message(message)

    def _retry_later(self, message, reason):
        """Send the message to `<queue>.retry` for its back-off (confirmed), then acknowledge it here."""
        retries = int((message.headers or {}).get(RETRIES_HEADER) or 0) + 1
        delay = retry_delay(retries, self.retry_base, self.retry_ceiling)
        # A fresh message for the broker: its own delivery count, no dead-lettering history.
        headers = {key: value for key, value in (message.headers or {}).items()
                   if key not in ("x-death", "x-first-death-exchange", "x-first-death-queue", "x-first-death-reason",
                                  "x-delivery-count")}
        headers.update({"x-original-routing-key": original_routing_key(message, self.queue_name),
                        RETRIES_HEADER: retries, "x-retry-reason": reason})
        try:
            self._publish(message, f"{self.queue_name}.retry", headers, expiration=delay)
        except Exception as exc:  # noqa: BLE001 - the broker may be away: the unacked message waits here instead
            self._close_publisher()
            log.warning("could not send to %s.retry (%s); requeued in %.1fs", self.queue_name, type(exc).__name__, delay)
            eventlet.spawn_after(delay, self._requeue, message)
            return
        self.queue_consumer.ack_message(message)
        EVENTS_RETRIED.labels(self.container.service_name, self.region, self.queue_name, reason).inc()
        log.warning("%s.%s failed for now (%s, retry %d); back in %.1fs", self.container.service_name,
                    self.method_name, reason, retries, delay)

    def _requeue(self, message):
        try:
            self.queue_consumer.requeue_message(message)
        except Exception as exc:  # noqa: BLE001 - a lost channel returns the message to the queue anyway
            log.warning("could not requeue on %s: %s", self.queue_name, type(exc).__name__)

    def _publish(self, message, routing_key, headers, expiration=None):
        """Publish a copy of `message` on `oss.dlx` (through the user's outlet), confirmed, over this
        handler's own connection."""
        with self._publishing:
            if self._publisher is None:
                connection = Connection(self.amqp_uri, transport_options={"confirm_publish": True})
                self._publisher = (connection, Producer(connection.channel()))
            self._publisher[1].publish(
                message.body,
                exchange=self.dead_letter_outlet,
                routing_key=routing_key,
                headers=headers,
                delivery_mode=2,
                content_type=message.content_type,
                content_encoding=message.content_encoding,
                message_id=message.properties.get("message_id"),
                expiration=expiration,
                mandatory=True,
                retry=False,
            )

    def _close_publisher(self):
        if self._publisher is not None:
            connection, self._publisher = self._publisher[0], None
            try:
                connection.release()
            except Exception:  # noqa: BLE001 - already broken
                pass

    def dead_letter(self, message, error: str) -> None:
        """Park the message in `<queue>.dead` with why (confirmed before the original is acked)."""
        dead_letter_message(self.amqp_uri, self.queue_name, message, error,
                            handler=f"{self.container.service_name}.{self.method_name}")
        payload = message.payload if isinstance(message.payload, dict) else {}  # decoded: undecodable ones go by _reject
        event_type = payload.get("type") if isinstance(payload.get("type"), str) else "unknown"
        EVENTS_DEAD_LETTERED.labels(self.container.service_name, self.region, event_type[:64]).inc()
        log.error("dead-lettered a %s event from %s: %s", event_type[:64], self.queue_name, error)


def original_routing_key(message, queue_name: str) -> str | None:
    """The routing key `message` was published with on `oss.events`: the key it was delivered by,
    or, when it came back by `queue_name`'s requeue key (after a retry's back-off or a replay),
    the `x-original-routing-key` the retry or the dead letter recorded. Only that way in is a
    header trusted: on any other a publisher's own `x-original-routing-key` is replaced, so that a
    replayed dead letter meets the same check it failed."""
    delivered = message.delivery_info.get("routing_key")
    if delivered == requeue_key(queue_name):
        return (message.headers or {}).get("x-original-routing-key")
    return delivered


def dead_letter_message(amqp_uri: str, queue_name: str, message, error: str, handler: str | None = None) -> None:
    """Park `message` (its body as it came) in `<queue_name>.dead` through the user's dead-letter
    outlet, with why in `x-error`; confirmed before the caller acks the original."""
    headers = dict(message.headers or {})
    headers.update({"x-error": error[:500], "x-failed-queue": queue_name,
                    "x-original-routing-key": original_routing_key(message, queue_name),
                    "x-dead-lettered-at": datetime.now(timezone.utc).isoformat(timespec="seconds")})
    if handler:
        headers["x-failed-handler"] = handler
    with Connection(amqp_uri, transport_options={"confirm_publish": True}) as connection:
        channel = connection.channel()
        dead_letter_queue(queue_name)(channel).declare()
        Producer(channel).publish(
            message.body,
            exchange=outlet(amqp_uri, DEAD_LETTER_EXCHANGE.name),
            routing_key=queue_name,
            headers=headers,
            delivery_mode=2,
            content_type=message.content_type,
            content_encoding=message.content_encoding,
            message_id=message.properties.get("message_id"),
            # A parked RPC request keeps what makes it a call (`oss dead-letters replay` makes it again).
            **{name: message.properties[name] for name in ("reply_to", "correlation_id") if message.properties.get(name)},
        )


def reject_malformed_messages() -> None:
    """No malformed message stops or wedges a consumer: one its queue cannot decode (not JSON, a
    content type other than JSON) and an RPC request without `reply_to` or `correlation_id` are
    parked in the queue's `.dead` queue with the reason and acked, and the consumer goes on (kombu
    would otherwise raise out of nameko's consuming thread, and nameko would reply to nobody).
    Replies (to this process's own queue) that cannot be decoded are dropped with a log line.
    Called once per process before its services start."""
    if getattr(QueueConsumer, "_oss_rejects_malformed", False):
        return
    get_consumers = QueueConsumer.get_consumers
    handle_request = RpcConsumer.handle_message

    def get_consumers_rejecting(self, consumer_cls, channel):
        consumers = get_consumers(self, consumer_cls, channel)
        for provider, consumer in self._consumers.items():
            consumer.on_decode_error = functools.partial(_undecodable, self, provider)
        return consumers

    def handle_request_with_headers(self, body, message):
        missing = [name for name in ("reply_to", "correlation_id") if not message.properties.get(name)]
        if missing:
            _reject(self.queue_consumer, self.queue.name, message, f"RPC request without {' or '.join(missing)}")
            return
        handle_request(self, body, message)

    QueueConsumer.get_consumers = get_consumers_rejecting
    RpcConsumer.handle_message = handle_request_with_headers
    QueueConsumer._oss_rejects_malformed = True


def _undecodable(queue_consumer, provider, message, exc):
    if isinstance(provider, (EventHandler, RpcConsumer)):
        _reject(queue_consumer, provider.queue.name, message, f"cannot decode the message ({type(exc).__name__}: {exc})")
    else:
        log.error("dropped an undecodable message on %s (%s)", provider.queue.name, type(exc).__name__)
        queue_consumer.ack_message(message)


def _reject(queue_consumer, queue_name, message, error):
    dead_letter_message(queue_consumer.amqp_uri, queue_name, message, error)
    queue_consumer.ack_message(message)
    log.error("dead-lettered a malformed message from %s: %s", queue_name, error)


def event_handlers(cls: type) -> list:
    """The `@event_handler` entrypoints a service class declares."""
    return [entrypoint for attribute in dir(cls)
            for entrypoint in getattr(getattr(cls, attribute, None), ENTRYPOINT_EXTENSIONS_ATTR, ())
            if isinstance(entrypoint, EventHandler)]


def watch_rpc_dead_letters(config: dict, service_name: str, region: str) -> None:
    """Publish how many requests wait in the service's RPC dead-letter queue (`rpc-<service>.dead`:
    malformed calls, queued Open311 requests parked on a defect) beside its event queues' dead
    letters, for the same alert and dashboard panel. Runs for as long as the service does."""
    name = f"rpc-{service_name}.dead"
    watch_queue_depths(config["AMQP_URI"], {name: DEAD_LETTER_MESSAGES.labels(service_name, region, name)},
                       float(config.get("QUEUE_DEPTH_SECONDS") or DEFAULT_QUEUE_DEPTH_SECONDS),
                       declared_later={name})  # declared when the first request is parked


def watch_queue_depths(amqp_uri: str, gauges: dict, interval: float, declared_later: set = frozenset()) -> None:
    """Set each gauge to its queue's depth every `interval` seconds, for as long as the service runs.
    A queue of `declared_later` that does not exist yet counts 0; while the broker is away (or another
    queue is missing) the gauges keep their last values."""
    while True:
        try:
            with Connection(amqp_uri) as connection:
                while True:
                    channel = connection.channel()
                    for name, gauge in gauges.items():
                        try:
                            gauge.set(_message_count(channel, name))
                        except NotFound:
                            if name not in declared_later:
                                raise
                            gauge.set(0)
                            channel = connection.channel()  # the broker closed the one that asked
                    channel.close()
                    eventlet.sleep(interval)
        except Exception as exc:  # noqa: BLE001 - the broker may be away; the gauges keep their last values
            log.debug("queue depths of %s unavailable: %s", ", ".join(gauges), type(exc).__name__)
            eventlet.sleep(interval)


def _message_count(channel, queue_name):
    """Messages ready in a queue (not those being handled), by a passive declare that creates nothing."""
    return channel.queue_declare(queue=queue_name, passive=True).message_count


def _parse_time(value):
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None


event_handler = EventHandler.decorator
