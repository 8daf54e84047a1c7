"""Transactional outbox: events are rows committed with the state change, then relayed to the bus.

A crash between commit and publish loses nothing: the row stays unsent and the relay publishes
it when it runs again. A crash between publish and marking the row sent re-sends it once,
which consumers absorb because they record the `event_id`s they have applied.
"""
import logging
import socket
import time

import eventlet
from eventlet.event import Event
from kombu import Connection, Exchange, Producer
from nameko.extensions import DependencyProvider
from sqlalchemy import JSON, BigInteger, Index, Integer, String, Text, bindparam, cast, func, select, update
from sqlalchemy.orm import Mapped, declared_attr, mapped_column

from oss_common.broker import outlet
from oss_common.database import READ_ONLY, UNSYNCED_COMMIT, DatabaseSettings, UtcDateTime, get_engine
from oss_common.events import EVENTS_EXCHANGE, routing_key, utc_now
from oss_common.metrics import OUTBOX_OLDEST_AGE, OUTBOX_PENDING, OUTBOX_RELAYED

log = logging.getLogger(__name__)


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

    @declared_attr.directive
    def __table_args__(cls):
        # The relay's scan: unsent rows in insertion order.
        return (Index("ix_outbox_unsent", "sent_at", "id"),)


def outbox_row(envelope):
    """The values of an event's outbox row (for a unit of work that writes it with Core statements)."""
    return {
        "event_id": envelope["event_id"],
        "event_type": envelope["type"],
        "routing_key": routing_key(envelope),
        "payload": envelope,
        "created_at": utc_now(),
        "sent_at": None,
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

    def setup(self):
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
        columns = (table.c.id, table.c.event_id, table.c.routing_key, cast(table.c.payload, Text).label("body"))
        if self.lock_rows:
            # One statement claims a batch: it marks the oldest unsent rows sent, locked until the
            # transaction ends, and returns them; they are published before it commits, and a failed
            # publish rolls the marks back. The commit need not wait for the WAL flush: should a crash
            # lose the marks, the rows go again, a re-send consumers absorb (by event_id); the events
            # themselves were committed synchronously by the work that made them.
            oldest_unsent = (select(table.c.id).where(table.c.sent_at.is_(None)).order_by(table.c.id)
                             .limit(bindparam("limit")).with_for_update(skip_locked=True))
            self._claim_statement = (update(table).where(table.c.id.in_(oldest_unsent.scalar_subquery()))
                                     .values(sent_at=bindparam("sent_at")).returning(*columns))
        else:
            # Read from a WAL snapshot, without the write lock that submissions wait for.
            self.reader = engine.execution_options(**{READ_ONLY: True})
            self._unsent_statement = (select(*columns).where(table.c.sent_at.is_(None)).order_by(table.c.id)
                                      .limit(bindparam("limit")))
            self._mark_statement = (update(table).where(table.c.id.in_(bindparam("ids", expanding=True)))
                                    .values(sent_at=bindparam("sent_at")))
        self._backlog_statement = select(func.count(table.c.id), func.min(table.c.created_at)).where(table.c.sent_at.is_(None))
        self.service_name = self.container.service_name
        self.region = config.get("REGION") or "national"
        self._wake = Event()
        self._running = False
        self._thread = None
        self._connection = None
        self._producer = None
        self._backlog_counted_at = float("-inf")
        self._oldest_pending = None
        OUTBOX_PENDING.labels(self.service_name, self.region).set(0)
        OUTBOX_OLDEST_AGE.labels(self.service_name, self.region).set_function(self.oldest_pending_age)

    def start(self):
        self._running = True
        self._thread = self.container.spawn_managed_thread(self._run)

    def stop(self):
        self._running = False
        self.wake()
        if self._thread is not None:
            self._thread.wait()
        self._close()

    def kill(self):
        self._running = False
        if self._thread is not None:
            self._thread.kill()
        self._close()

    def get_dependency(self, worker_ctx):
        return self

    def worker_teardown(self, worker_ctx):
        self.wake()

    def wake(self):
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
            self._connection.ensure_connection(max_retries=1)
            channel = self._connection.channel()
            EVENTS_EXCHANGE(channel).declare()
            # Confirms are collected per batch, not waited for one message at a time.
            channel.confirm_select()
            channel.events["basic_ack"].add(self._on_ack)
            channel.events["basic_nack"].add(self._on_nack)
            self._published_tag = 0
            self._confirmed_tag = 0
            self._nacked = False
            # Through the user's own outlet where it has one (oss_common.broker): it may not publish to oss.events itself.
            exchange = Exchange(outlet(self.amqp_uri, EVENTS_EXCHANGE.name), type="topic", durable=True, passive=True)
            self._producer = Producer(channel, exchange=exchange, serializer="json")
        return self._producer

    def _on_ack(self, delivery_tag, multiple):
        self._confirmed_tag = max(self._confirmed_tag, delivery_tag)

    def _on_nack(self, delivery_tag, multiple):
        self._nacked = True

    def _close(self):
        if self._connection is not None:
            try:
                self._connection.release()
            except Exception:  # noqa: BLE001 - the connection is already broken
                pass
        self._connection = None
        self._producer = None

    def relay_batch(self):
        """Publish one batch of unsent rows; returns whether a full batch was sent (more may wait)."""
        parameters = {"limit": self.batch_size, "sent_at": utc_now()}
        if self.lock_rows:
            with self.engine.begin() as connection:
                connection.exec_driver_sql(UNSYNCED_COMMIT)
                rows = sorted(connection.execute(self._claim_statement, parameters).all(), key=lambda row: row.id)
                if rows:
                    self._publish(rows)
                self._note_backlog(connection, rows, exact=False)
        else:
            with self.reader.begin() as reader:
                rows = reader.execute(self._unsent_statement, parameters).all()
                self._note_backlog(reader, rows, exact=True)
            if rows:
                self._publish(rows)
                with self.engine.begin() as connection:
                    connection.execute(self._mark_statement, {"ids": [row.id for row in rows], "sent_at": parameters["sent_at"]})
        OUTBOX_RELAYED.labels(self.service_name, self.region).inc(len(rows))
        return len(rows) == self.batch_size

    def _note_backlog(self, connection, rows, exact):
        """Count every unsent row (an index range scan), not just this batch: the backlog alert's
        input. Throttled, because a busy relay scans many times a second. Between counts, an empty
        scan means nothing waits, where the scan sees every unsent row (`exact`; with row locks,
        another relay may hold some)."""
        if time.monotonic() - self._backlog_counted_at >= self.backlog_interval:
            self._count_backlog(connection)
        elif not rows and exact:
            self._set_backlog(0, None)

    def _count_backlog(self, connection):
        count, oldest = connection.execute(self._backlog_statement).one()
        self._backlog_counted_at = time.monotonic()
        self._set_backlog(count, oldest)

    def _set_backlog(self, count, oldest):
        self._oldest_pending = oldest
        OUTBOX_PENDING.labels(self.service_name, self.region).set(count)

    def oldest_pending_age(self):
        """Seconds the oldest unsent row has waited, as of now (it keeps growing while the bus is down)."""
        if self._oldest_pending is None:
            return 0.0
        return max(0.0, (utc_now() - self._oldest_pending).total_seconds())

    def _publish(self, rows):
        """Publish the batch, then wait until the broker has confirmed every message of it.

        Acks may be `multiple`, so the highest confirmed tag covers all below it. A nack or a
        timeout raises: the rows stay unsent and go again (a re-send consumers absorb).
        """
        producer = self._ensure_producer()
        for row in rows:
            producer.publish(
                row.body,
                routing_key=row.routing_key,
                content_type="application/json",
                content_encoding="utf-8",
                delivery_mode=2,
                message_id=row.event_id,
                retry=False,
            )
            self._published_tag += 1
        deadline = time.monotonic() + self.confirm_timeout
        while self._confirmed_tag < self._published_tag and not self._nacked:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("broker did not confirm the outbox batch")
            try:
                self._connection.drain_events(timeout=min(remaining, 1.0))
            except socket.timeout:
                continue
        if self._nacked:
            raise RuntimeError("broker refused (nacked) part of the outbox batch")
