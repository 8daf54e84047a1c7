"""Transactional outbox: events are rows committed with the state change, then relayed to the bus.

A crash between commit and publish loses nothing: the row stays unsent and the relay publishes
it when it runs again. A crash between publish and marking the row sent re-sends it once,
which consumers absorb because they record the `event_id`s they have applied.

Events are published `mandatory`: one that no queue is bound for comes back from the broker
(basic.return) and its row stays unsent, held for a back-off before the next try, counted in
`oss_outbox_returned_events_total` and `oss_outbox_unroutable_events` (an alert fires on it).

Over 300 lines because the relay's whole life (its wake-ups, confirms, returned events and back-off) must be
read together to see that nothing is lost and nothing is sent twice in a row.
"""
import logging
import socket
import time
from datetime import timedelta

import eventlet
from eventlet.event import Event
from kombu import Connection, Exchange, Producer
from nameko.extensions import DependencyProvider
from nameko.containers import WorkerContext
from sqlalchemy import JSON, BigInteger, Index, Integer, String, Text, bindparam, cast, func, or_, select, update
from sqlalchemy.orm import Mapped, declared_attr, mapped_column

from oss_common.broker import ensure_connected, outlet
from oss_common.database import READ_ONLY, UNSYNCED_COMMIT, DatabaseSettings, UtcDateTime, get_engine
from oss_common.events import EVENTS_EXCHANGE, routing_key, utc_now
from oss_common.metrics import (
    OUTBOX_OLDEST_AGE, OUTBOX_PENDING, OUTBOX_RELAYED, OUTBOX_RETURNED, OUTBOX_UNROUTABLE,
)

log = logging.getLogger(__name__)

# A returned (unroutable) event waits 2, 4, 8 ... seconds, at most this long, before it is tried again.
MAX_RETURNED_HOLD_SECONDS = 300.0


class OutboxMixin:
    """Columns of a service's `outbox` table; rows are kept after sending (the event history)."""

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(36), unique=True, nullable=False)
    event_type: Mapped[str] = mapped_column(String(64), nullable=False)
    routing_key: Mapped[str] = mapped_column(String(128), nullable=False)
    payload: Mapped[dict] = mapped_column(JSON, nullable=False)
    created_at: Mapped[object] = mapped_column(UtcDateTime, nullable=False)
    sent_at: Mapped[object] = mapped_column(UtcDateTime, nullable=True)
    # How often the broker returned the event as unroutable, and when it may be tried again.
    returns: Mapped[int] = mapped_column(Integer, nullable=False, default=0, server_default="0")
    retry_at: Mapped[object] = mapped_column(UtcDateTime, nullable=True)

    @declared_attr.directive
    def __table_args__(cls):
        # The relay's scan: unsent rows in insertion order.
        return (Index("ix_outbox_unsent", "sent_at", "id"),)


def outbox_row(envelope: dict) -> dict:
    """The values of an event's outbox row (for a unit of work that writes it with Core statements)."""
    return {
        "event_id": envelope["event_id"],
        "event_type": envelope["type"],
        "routing_key": routing_key(envelope),
        "payload": envelope,
        "created_at": utc_now(),
        "sent_at": None,
        "returns": 0,
        "retry_at": None,
    }


class OutboxRelay(DependencyProvider):
    """Publishes unsent outbox rows to `oss.events` with publisher confirms, then marks them sent.

    Runs one green thread per service process. Workers wake it when they finish, so events
    leave within milliseconds; it also polls, so rows left by a crashed process go out too.
    Services write the rows through their unit of work (oss_common/unit_of_work.py).
    """

    def __init__(self, model, batch_size=200, poll_interval=1.0, confirm_timeout=30.0, linger=None,
                 backlog_interval=1.0):
        self.model = model
        self.backlog_interval = backlog_interval
        self.linger = linger
        self.confirm_timeout = confirm_timeout
        self.batch_size = batch_size
        self.poll_interval = poll_interval

    def setup(self) -> None:
        config = self.container.config
        self.amqp_uri = config["AMQP_URI"]
        if self.linger is None:
            # Events of workers finishing within this long share a batch (one claim statement, one
            # commit and one wait for confirms): an intake on PostgreSQL taking ~350 submissions a
            # second relayed ~15 events per batch at 20 ms, ~28 at 50 ms, and the relay's share of
            # the process's CPU halved. An event so waits up to 50 ms longer at a desk's pace.
            configured = config.get("OUTBOX_LINGER_SECONDS")
            self.linger = 0.05 if configured in (None, "") else float(configured)
        engine = self.engine = get_engine(config["DATABASE_URL"], DatabaseSettings.from_config(config))
        # PostgreSQL lets two relays of one region skip each other's rows while they publish;
        # SQLite has one writer anyway, so it reads, publishes and marks in short transactions.
        self.lock_rows = engine.dialect.name == "postgresql"
        table = self.model.__table__
        # The payload is read as the JSON text stored and published as it is: no parsing and
        # re-serialising of every event.
        columns = (table.c.id, table.c.event_id, table.c.routing_key, table.c.returns,
                   cast(table.c.payload, Text).label("body"))
        # Unsent and not held after the broker returned it (see MAX_RETURNED_HOLD_SECONDS).
        due = (table.c.sent_at.is_(None), or_(table.c.retry_at.is_(None), table.c.retry_at <= bindparam("sent_at")))
        if self.lock_rows:
            # One statement claims a batch: it marks the oldest unsent rows sent, locked until the
            # transaction ends, and returns them; they are published before it commits, and a failed
            # publish rolls the marks back. The commit need not wait for the WAL flush: should a crash
            # lose the marks, the rows go again, a re-send consumers absorb (by event_id); the events
            # themselves were committed synchronously by the work that made them.
            oldest_unsent = (select(table.c.id).where(*due).order_by(table.c.id)
                             .limit(bindparam("limit")).with_for_update(skip_locked=True))
            self._claim_statement = (update(table).where(table.c.id.in_(oldest_unsent.scalar_subquery()))
                                     .values(sent_at=bindparam("sent_at")).returning(*columns))
        else:
            # Read from a WAL snapshot, without the write lock that submissions wait for.
            self.reader = engine.execution_options(**{READ_ONLY: True})
            self._unsent_statement = (select(*columns).where(*due).order_by(table.c.id)
                                      .limit(bindparam("limit")))
            self._mark_statement = (update(table).where(table.c.id.in_(bindparam("ids", expanding=True)))
                                    .values(sent_at=bindparam("sent_at")))
        # An unsent row that was returned may be unsent again: `sent_at` back to NULL, held until `retry_at`.
        self._hold_statement = (update(table).where(table.c.id == bindparam("row_id"))
                                .values(sent_at=None, returns=bindparam("new_returns"), retry_at=bindparam("hold_until")))
        self._backlog_statement = select(
            func.count(table.c.id), func.min(table.c.created_at),
            func.count(table.c.id).filter(table.c.returns > 0),
        ).where(table.c.sent_at.is_(None))
        self.service_name = self.container.service_name
        self.region = config.get("REGION") or "national"
        self._wake = Event()
        self._running = False
        self._thread = None
        self._connection = None
        self._producer = None
        self._backlog_counted_at = float("-inf")
        self._oldest_pending = None
        self._unroutable = 0
        OUTBOX_PENDING.labels(self.service_name, self.region).set(0)
        OUTBOX_UNROUTABLE.labels(self.service_name, self.region).set(0)
        OUTBOX_OLDEST_AGE.labels(self.service_name, self.region).set_function(self.oldest_pending_age)

    def start(self) -> None:
        self._running = True
        self._thread = self.container.spawn_managed_thread(self._run)

    def stop(self) -> None:
        self._running = False
        self.wake()
        if self._thread is not None:
            self._thread.wait()
        self._close()

    def kill(self) -> None:
        self._running = False
        if self._thread is not None:
            self._thread.kill()
        self._close()

    def get_dependency(self, worker_ctx: WorkerContext) -> "OutboxRelay":
        return self

    def worker_teardown(self, worker_ctx: WorkerContext) -> None:
        self.wake()

    def wake(self) -> None:
        if not self._wake.ready():
            self._wake.send(True)

    def _run(self):
        backoff = 0.5
        while self._running:
            try:
                while self._running and self.relay_batch():
                    pass
                backoff = 0.5
            except Exception as exc:  # noqa: BLE001 - the relay must outlive broker and database outages
                log.warning("outbox relay of %s paused: %s: %s; retrying in %.1fs", self.service_name, type(exc).__name__, exc, backoff)
                self._close()
                eventlet.sleep(backoff)
                backoff = min(backoff * 2, 30.0)
                continue
            with eventlet.Timeout(self.poll_interval, False):
                self._wake.wait()
            self._wake = Event()
            # Let the events of workers finishing about now join this batch: one round of
            # transactions and one confirm wait for many events instead of one each.
            eventlet.sleep(self.linger)

    def _ensure_producer(self):
        if self._producer is None:
            self._connection = Connection(self.amqp_uri, heartbeat=0)
            ensure_connected(self._connection)
            channel = self._connection.channel()
            EVENTS_EXCHANGE(channel).declare()
            # Confirms are collected per batch, not waited for one message at a time.
            channel.confirm_select()
            channel.events["basic_ack"].add(self._on_ack)
            channel.events["basic_nack"].add(self._on_nack)
            channel.events["basic_return"].add(self._on_return)
            self._published_tag = 0
            self._unconfirmed = {}  # delivery tag -> event id, of the batch being published
            self._nacked = set()
            self._returned = set()
            # Through the user's own outlet where it has one (oss_common.broker): it may not publish to oss.events itself.
            exchange = Exchange(outlet(self.amqp_uri, EVENTS_EXCHANGE.name), type="topic", durable=True, passive=True)
            self._producer = Producer(channel, exchange=exchange, serializer="json")
        return self._producer

    def _settled_tags(self, delivery_tag, multiple):
        """The unconfirmed tags an ack or nack settles: with `multiple`, every one up to its tag."""
        if multiple:
            return [tag for tag in self._unconfirmed if tag <= delivery_tag]
        return [delivery_tag] if delivery_tag in self._unconfirmed else []

    def _on_ack(self, delivery_tag, multiple):
        for tag in self._settled_tags(delivery_tag, multiple):
            del self._unconfirmed[tag]

    def _on_nack(self, delivery_tag, multiple):
        for tag in self._settled_tags(delivery_tag, multiple):
            self._nacked.add(self._unconfirmed.pop(tag))

    def _on_return(self, exc, exchange, routing_key, message):
        # The broker returns an unroutable mandatory message before it acks it.
        self._returned.add(message.properties.get("message_id"))

    def _close(self):
        if self._connection is not None:
            try:
                self._connection.release()
            except Exception:  # noqa: BLE001 - the connection is already broken
                pass
        self._connection = None
        self._producer = None

    def relay_batch(self) -> bool:
        """Publish one batch of unsent rows; returns whether a full batch was sent (more may wait)."""
        parameters = {"limit": self.batch_size, "sent_at": utc_now()}
        returned = []
        if self.lock_rows:
            with self.engine.begin() as connection:
                connection.exec_driver_sql(UNSYNCED_COMMIT)
                rows = sorted(connection.execute(self._claim_statement, parameters).all(), key=lambda row: row.id)
                returned = self._publish(rows) if rows else []
                self._hold(connection, returned)
                self._note_backlog(connection, rows, exact=False)
        else:
            with self.reader.begin() as reader:
                rows = reader.execute(self._unsent_statement, parameters).all()
                self._note_backlog(reader, rows, exact=True)
            if rows:
                returned = self._publish(rows)
                held = {row.id for row in returned}
                with self.engine.begin() as connection:
                    sent = [row.id for row in rows if row.id not in held]
                    if sent:
                        connection.execute(self._mark_statement, {"ids": sent, "sent_at": parameters["sent_at"]})
                    self._hold(connection, returned)
        OUTBOX_RELAYED.labels(self.service_name, self.region).inc(len(rows) - len(returned))
        return len(rows) == self.batch_size

    def _hold(self, connection, returned):
        """Keep the rows of returned events unsent, held for a back-off; count and log them."""
        if not returned:
            return
        now = utc_now()
        connection.execute(self._hold_statement, [
            {"row_id": row.id, "new_returns": row.returns + 1,
             "hold_until": now + timedelta(seconds=min(2.0 ** (row.returns + 1), MAX_RETURNED_HOLD_SECONDS))}
            for row in returned
        ])
        OUTBOX_RETURNED.labels(self.service_name, self.region).inc(len(returned))
        # An error the first time an event comes back; a warning each time it comes back again, so a
        # region whose queues are missing for hours does not fill the log with errors (the
        # OssOutboxEventsUnroutable alert and oss_outbox_unroutable_events keep saying so).
        first = [row for row in returned if row.returns == 0]
        for rows, level, what in ((first, logging.ERROR, "as unroutable"),
                                  ([row for row in returned if row.returns], logging.WARNING, "again")):
            if rows:
                log.log(level, "broker returned %d event(s) of %s %s (no queue bound for %s); kept in the outbox",
                        len(rows), self.service_name, what, ", ".join(sorted({row.routing_key for row in rows})))

    def _note_backlog(self, connection, rows, exact):
        """Count every unsent row (an index range scan), not just this batch: the backlog alert's
        input. Throttled, because a busy relay scans many times a second. Between counts, an empty
        scan means nothing waits, where the scan sees every unsent row (`exact`; with row locks,
        another relay may hold some) and none is held after a return."""
        if time.monotonic() - self._backlog_counted_at >= self.backlog_interval:
            self._count_backlog(connection)
        elif not rows and exact and not self._unroutable:
            self._set_backlog(0, None)

    def _count_backlog(self, connection):
        count, oldest, unroutable = connection.execute(self._backlog_statement).one()
        self._backlog_counted_at = time.monotonic()
        self._set_backlog(count, oldest)
        self._unroutable = unroutable
        OUTBOX_UNROUTABLE.labels(self.service_name, self.region).set(unroutable)

    def _set_backlog(self, count, oldest):
        self._oldest_pending = oldest
        OUTBOX_PENDING.labels(self.service_name, self.region).set(count)

    def oldest_pending_age(self) -> float:
        """Seconds the oldest unsent row has waited, as of now (it keeps growing while the bus is down)."""
        if self._oldest_pending is None:
            return 0.0
        return max(0.0, (utc_now() - self._oldest_pending).total_seconds())

    def _publish(self, rows):
        """Publish the batch mandatory, then wait until the broker has confirmed every message of it;
        returns the rows whose events the broker returned as unroutable.

        An ack or nack with `multiple` settles every tag up to its own; one without settles only
        its tag, whatever order they come in. A nack or a timeout raises: the rows stay unsent and
        go again (a re-send consumers absorb). The channel is closed on any failure, so a late
        confirm of this batch can never be taken for one of the next.
        """
        producer = self._ensure_producer()
        self._unconfirmed.clear()
        self._nacked.clear()
        self._returned.clear()
        for row in rows:
            producer.publish(
                row.body,
                routing_key=row.routing_key,
                content_type="application/json",
                content_encoding="utf-8",
                delivery_mode=2,
                message_id=row.event_id,
                mandatory=True,
                retry=False,
            )
            self._published_tag += 1
            self._unconfirmed[self._published_tag] = row.event_id
        deadline = time.monotonic() + self.confirm_timeout
        while self._unconfirmed:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("broker did not confirm the outbox batch")
            try:
                self._connection.drain_events(timeout=min(remaining, 1.0))
            except socket.timeout:
                continue
        if self._nacked:
            raise RuntimeError(f"broker refused (nacked) {len(self._nacked)} event(s) of the outbox batch")
        return [row for row in rows if row.event_id in self._returned]
