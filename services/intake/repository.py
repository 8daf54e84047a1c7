"""How intake stores applications and hands out tracking numbers: every SQL statement of the use cases,
every PostgreSQL/SQLite branch and every prepared statement lives here (its length is that of the
hot path's statements and the reasons each is shaped as it is)."""
import time
from types import SimpleNamespace

from eventlet.semaphore import Semaphore
from datetime import date, timedelta

from sqlalchemy import Date, bindparam, insert, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from oss_common.database import UNSYNCED_COMMIT, PreparedStatement
from oss_common.consumers import first_delivery
from oss_common.events import utc_now
from services.intake.domain import AWAITING_DECISION
from services.intake.models import (
    Application, CatalogueEntry, CentreClosure, Invoice, OfficeSale, OutboxEvent, PaymeTransaction, ProcessedEvent,
    StatusChange,
)


class IdempotencyKeyTaken(Exception):
    """Another submission with the same Idempotency-Key was stored first (a race both lost nothing to)."""


# The same SQL on SQLite (3.35+) and PostgreSQL. Text, not a dialect insert: SQLAlchemy cannot
# cache the compiled form of ON CONFLICT DO UPDATE, and compiling it per submission cost ~3% of
# intake's CPU, inside the write transaction.
_NEXT_SEQUENCE_SQL = (
    "INSERT INTO tracking_sequences (year, last_value) VALUES (:year, :count) "
    "ON CONFLICT (year) DO UPDATE SET last_value = tracking_sequences.last_value + :count "
    "RETURNING last_value"
)
_NEXT_SEQUENCE = text(_NEXT_SEQUENCE_SQL)
_NEXT_SEQUENCE_UNSYNCED = text(f"{UNSYNCED_COMMIT}; {_NEXT_SEQUENCE_SQL}")


def next_sequence(session: Session, year: int, count: int = 1) -> int:
    """Take `count` tracking sequence numbers of `year` in one atomic upsert (so concurrent processes
    never share one); returns the last of them.

    On PostgreSQL the upsert commits on its own, outside the submission's statement
    (`PreparedStatement.first`, with UNSYNCED_COMMIT, so not waiting for the WAL flush): inside the
    submission's transaction, the year's row stayed locked through every later statement and the
    commit's WAL flush, so all submissions of a region queued on that one row. A submission that
    fails afterwards leaves a gap in the numbers, never a duplicate. On SQLite the submission's
    transaction holds the file's write lock anyway, so the upsert stays inside it.
    """
    bind = session.get_bind()
    parameters = {"year": year, "count": count}
    if bind.dialect.name == "postgresql":
        # Not prepared on the server: PREPARE takes one statement, and this string holds two.
        return _prepare(_NEXT_SEQUENCE_UNSYNCED, bind.dialect, server_side=False).first(bind, parameters)[0]
    return session.connection().execute(_NEXT_SEQUENCE, parameters).scalar_one()


class _Block:
    __slots__ = ("last", "next", "size", "taken_at")

    def __init__(self, last, size):
        self.next, self.last, self.size, self.taken_at = last - size + 1, last, size, time.monotonic()


class TrackingNumbers:
    """Hands out a region's tracking sequence numbers; on PostgreSQL from blocks this process takes
    from the year's counter, whose size follows the load.

    At a desk's pace every submission takes one number from the database, so numbers run on without
    gaps. When this process takes blocks faster than every BUSY_SECONDS, the next block is twice as
    large (up to MAX_BLOCK); after IDLE_SECONDS without taking one, blocks are single numbers again.
    A busy process so saves one database round trip in nearly every submission; the price is that
    a process that stops while busy leaves the rest of its block unused (a gap, as a failed
    submission leaves), and that several busy processes of one region hand out numbers out of
    order. Numbers are never handed out twice. On SQLite the counter is part of the submission's
    transaction, which holds the file's write lock, so it costs no round trip and stays one by one.
    """

    MAX_BLOCK = 64
    BUSY_SECONDS = 0.1
    IDLE_SECONDS = 1.0

    def __init__(self):
        self._blocks = {}  # (database URL, year) -> _Block
        self._refill = Semaphore(1)

    def take(self, session: Session, year: int) -> int:
        bind = session.get_bind()
        if bind.dialect.name != "postgresql":
            return next_sequence(session, year)
        key = (bind.url, year)
        with self._refill:  # a worker that finds the block used up takes the next; the others wait for it
            block = self._blocks.get(key)
            if block is None or block.next > block.last:
                size = self._next_size(block)
                block = self._blocks[key] = _Block(next_sequence(session, year, size), size)
            number = block.next
            block.next += 1
            return number

    def _next_size(self, previous):
        if previous is None:
            return 1
        since = time.monotonic() - previous.taken_at
        if since < self.BUSY_SECONDS:
            return min(previous.size * 2, self.MAX_BLOCK)
        if since > self.IDLE_SECONDS:
            return 1
        return previous.size


TRACKING_NUMBERS = TrackingNumbers()


class TrackingNumberCounter:
    """The process's tracking numbers, as one unit of work takes them."""

    def __init__(self, session: Session, numbers: TrackingNumbers = TRACKING_NUMBERS):
        self.session, self.numbers = session, numbers

    def take(self, year: int) -> int:
        return self.numbers.take(self.session, year)


# A submission writes three rows: the application, its first history entry and its outbox event.
# They are written with Core statements compiled once (the ORM's unit of work cost ~20% of a busy
# intake's CPU). On PostgreSQL the three are one statement of data-modifying CTEs on an autocommit
# connection, which is as atomic as a transaction: one round trip instead of five (BEGIN, three
# INSERTs, COMMIT). On SQLite, which has no data-modifying CTEs, they are three statements in the
# transaction that holds the file's write lock. Each runs as a PreparedStatement.
_APPLICATIONS, _HISTORY, _OUTBOX = Application.__table__, StatusChange.__table__, OutboxEvent.__table__
_HISTORY_VALUES = [column for column in _HISTORY.columns if column.name not in ("id", "application_id")]


def _insert(table, prefix):
    return insert(table).values({column.name: bindparam(prefix + column.name, type_=column.type)
                                 for column in table.columns if column.name != "id"})


_INSERT_APPLICATION = _insert(_APPLICATIONS, "a_").returning(_APPLICATIONS.c.id)
_INSERT_HISTORY = _insert(_HISTORY, "h_")
_INSERT_OUTBOX = _insert(_OUTBOX, "o_")
_INSERT_INVOICE = insert(Invoice.__table__)
_new_application = _INSERT_APPLICATION.cte("new_application")
_SUBMIT_IN_ONE_STATEMENT = select(_new_application.c.id).add_cte(
    insert(_HISTORY).from_select(
        ["application_id", *(column.name for column in _HISTORY_VALUES)],
        select(_new_application.c.id, *(bindparam("h_" + column.name, type_=column.type) for column in _HISTORY_VALUES)),
    ).cte("new_history"),
    _INSERT_OUTBOX.cte("new_outbox"),
)
_KEY_TAKEN = select(_APPLICATIONS.c.id).where(_APPLICATIONS.c.idempotency_key == bindparam("key"))
_prepared = {}  # (statement, dialect, server_side) -> PreparedStatement


def _prepare(statement, dialect, server_side=True):
    key = (statement, dialect, server_side)
    prepared = _prepared.get(key)
    if prepared is None:
        prepared = _prepared[key] = PreparedStatement(statement, dialect, server_side=server_side)
    return prepared


class Applications:
    """Intake's applications in one unit of work's session.

    A new application is staged by `add` and written by `flush` together with the unit of work's
    outbox rows; a loaded one is an ORM object whose changes the session's commit writes.
    """

    def __init__(self, session: Session):
        self.session = session
        self._new = None  # (the application as callers see it, its column values, its first history entry)

    def get(self, tracking_number: str, for_update: bool = False) -> Application | None:
        query = select(Application).where(Application.tracking_number == tracking_number)
        if for_update:
            # Re-read under the lock: another process may have moved it since this session last looked.
            query = query.with_for_update().execution_options(populate_existing=True)
        return self.session.scalar(query)

    def by_idempotency_key(self, key: str) -> Application | None:
        return self.session.scalar(select(Application).where(Application.idempotency_key == key))

    def key_taken(self, key: str) -> bool:
        """Whether an application already holds `key`; on PostgreSQL without opening a transaction."""
        bind = self.session.get_bind()
        if bind.dialect.name == "postgresql":
            return _prepare(_KEY_TAKEN, bind.dialect).first(bind, {"key": key}) is not None
        return self.session.connection().execute(_KEY_TAKEN, {"key": key}).first() is not None

    def add(self, values: dict, first_change: dict, invoice: dict | None = None) -> SimpleNamespace:
        """Stage a new application (its column values), its first history entry and, for a paid
        service, its invoice; returns it as the views and events read it (attribute access, like a
        stored Application; `id` once flushed; `invoice` None for a free service)."""
        application = SimpleNamespace(**values, id=None, history=[SimpleNamespace(**first_change)],
                                      invoice=SimpleNamespace(**invoice) if invoice else None)
        self._new = (application, values, first_change, invoice)
        return application

    def open_at(self, centre: str, due_from: date) -> list[Application]:
        """The centre's applications awaiting a decision and due on or after `due_from` (or paused), locked."""
        open_statuses = [status.value for status in AWAITING_DECISION]
        return list(self.session.scalars(
            select(Application).where(Application.centre == centre, Application.status.in_(open_statuses),
                                      (Application.due_date >= due_from) | Application.clock_paused_on.is_not(None))
            .order_by(Application.id).with_for_update().execution_options(populate_existing=True)))

    def append_history(self, application: Application, **change) -> None:
        application.history.append(StatusChange(**change))

    def flush(self, outbox_rows: list[dict]) -> None:
        """Write what the unit of work did: a staged application with its history entry and its
        outbox row atomically (the caller's commit finishes it), else just the outbox rows."""
        if self._new is None:
            self.session.add_all(OutboxEvent(**row) for row in outbox_rows)
            return
        application, values, first_change, invoice = self._new
        try:
            if invoice is None and len(outbox_rows) == 1:
                application.id = self._store(values, first_change, outbox_rows[0])
            else:
                # A paid service's filing also writes its invoice: every row in the session's transaction.
                application.id = self._store_in_transaction(values, first_change, outbox_rows[0])
                if invoice is not None:
                    self.session.connection().execute(_INSERT_INVOICE, invoice)
                self.session.add_all(OutboxEvent(**row) for row in outbox_rows[1:])
        except IntegrityError:
            # Only the idempotency key can collide: another request with the same key won the race.
            self.session.rollback()
            if values["idempotency_key"] and self.by_idempotency_key(values["idempotency_key"]) is not None:
                raise IdempotencyKeyTaken(values["idempotency_key"]) from None
            raise
        self._new = None

    def _store(self, values, first_change, outbox_row):
        parameters = {**{"a_" + name: value for name, value in values.items()},
                      **{"h_" + name: value for name, value in first_change.items()},
                      **{"o_" + name: value for name, value in outbox_row.items()}}
        bind = self.session.get_bind()
        dialect = bind.dialect
        if dialect.name == "postgresql":
            return _prepare(_SUBMIT_IN_ONE_STATEMENT, dialect).first(bind, parameters)[0]
        return self._store_in_transaction(values, first_change, outbox_row)

    def _store_in_transaction(self, values, first_change, outbox_row):
        parameters = {**{"a_" + name: value for name, value in values.items()},
                      **{"h_" + name: value for name, value in first_change.items()},
                      **{"o_" + name: value for name, value in outbox_row.items()}}
        dialect = self.session.get_bind().dialect
        connection = self.session.connection()  # the transaction that holds SQLite's write lock (and took the number)
        application_id = _prepare(_INSERT_APPLICATION, dialect).first_in(connection, parameters)[0]
        _prepare(_INSERT_HISTORY, dialect).first_in(connection, {**parameters, "h_application_id": application_id})
        _prepare(_INSERT_OUTBOX, dialect).first_in(connection, parameters)
        return application_id


class Invoices:
    """Applications' invoices and their Payme transactions, in one unit of work's session."""

    def __init__(self, session: Session):
        self.session = session

    def of_application(self, tracking_number: str, for_update: bool = False) -> Invoice | None:
        query = select(Invoice).where(Invoice.tracking_number == tracking_number)
        if for_update:
            query = query.with_for_update().execution_options(populate_existing=True)
        return self.session.scalar(query)

    def by_number(self, invoice_number: str, for_update: bool = False) -> Invoice | None:
        query = select(Invoice).where(Invoice.invoice_number == invoice_number)
        if for_update:
            query = query.with_for_update().execution_options(populate_existing=True)
        return self.session.scalar(query)

    def unpaid_before(self, day, limit: int) -> list[Invoice]:
        """Outstanding invoices whose due date is before `day`, oldest first, locked (rows another
        process holds are skipped: that one expires them)."""
        query = (select(Invoice).where(Invoice.state == "issued", Invoice.due_date < day).order_by(Invoice.id)
                 .limit(limit).with_for_update(skip_locked=True).execution_options(populate_existing=True))
        return list(self.session.scalars(query))

    def receipt_taken(self, centre: str, receipt_number: str) -> bool:
        return self.session.scalar(select(Invoice.id).where(Invoice.centre == centre,
                                                            Invoice.receipt_number == receipt_number)) is not None

    def transaction(self, payme_id: str, for_update: bool = False) -> PaymeTransaction | None:
        query = select(PaymeTransaction).where(PaymeTransaction.payme_id == payme_id)
        if for_update:
            query = query.with_for_update().execution_options(populate_existing=True)
        return self.session.scalar(query)

    def active_transaction(self, invoice_number: str) -> PaymeTransaction | None:
        """A Payme transaction of the invoice that is created (1) or performed (2), if any."""
        return self.session.scalar(select(PaymeTransaction).where(
            PaymeTransaction.invoice_number == invoice_number, PaymeTransaction.state.in_((1, 2))))

    def add_transaction(self, **values) -> PaymeTransaction:
        transaction = PaymeTransaction(**values)
        self.session.add(transaction)
        self.session.flush()
        return transaction

    def transactions_between(self, start_ms: int, end_ms: int) -> list[PaymeTransaction]:
        return list(self.session.scalars(select(PaymeTransaction).where(
            PaymeTransaction.payme_time >= start_ms, PaymeTransaction.payme_time <= end_ms).order_by(PaymeTransaction.payme_time)))


class OfficeSales:
    """The centre's office sales, in one unit of work's session."""

    def __init__(self, session: Session):
        self.session = session

    def add(self, **values) -> OfficeSale:
        sale = OfficeSale(**values)
        self.session.add(sale)
        self.session.flush()
        return sale


# The region's closure days from a date on, in one row (two arrays), for RecentClosures.
_CLOSURES_FROM_POSTGRESQL = text("SELECT array_agg(centre), array_agg(day) FROM centre_closures WHERE day >= :since") \
    .bindparams(bindparam("since", type_=Date()))
_CLOSED_AFTER = select(CentreClosure.day).where(CentreClosure.centre == bindparam("centre"),
                                                CentreClosure.day > bindparam("after"))


class RecentClosures:
    """The region's closure days of yesterday and later as this process last read them, on PostgreSQL,
    read again every REFRESH_SECONDS: what a submission's clock needs without a round trip of its own
    (a submission is one statement there). Only a closure declared for a later day can be missed, by a
    submission in another process within REFRESH_SECONDS of the declaration; a closure of today or
    before never concerns an application filed after it was declared (the filing day does not count).
    """

    REFRESH_SECONDS = 2.0

    def __init__(self):
        self._read = {}  # database URL -> (monotonic time read, since, {centre: days})
        self._lock = Semaphore(1)

    def after(self, bind, centre: str, day: date) -> frozenset[date] | None:
        """`centre`'s closure days after `day`; None when `day` is before what this cache holds."""
        with self._lock:
            read = self._read.get(bind.url)
            if read is None or time.monotonic() - read[0] > self.REFRESH_SECONDS or day < read[1]:
                since = day - timedelta(days=1)
                centres, days = _prepare(_CLOSURES_FROM_POSTGRESQL, bind.dialect).first(bind, {"since": since})
                by_centre = {}
                for closed_centre, closed_day in zip(centres or (), days or ()):
                    by_centre.setdefault(closed_centre, set()).add(closed_day)
                read = self._read[bind.url] = (time.monotonic(), since, by_centre)
        return frozenset(closed for closed in read[2].get(centre, ()) if closed > day)

    def forget(self, bind) -> None:
        """Read again at the next use (this process declared a closure)."""
        self._read.pop(bind.url, None)


RECENT_CLOSURES = RecentClosures()


class Closures:
    """The days the region's OSS centres declared closed (the clock of their applications skips them)."""

    def __init__(self, session: Session, recent: RecentClosures = RECENT_CLOSURES):
        self.session, self.recent = session, recent

    def after(self, centre: str, day: date) -> frozenset[date]:
        """`centre`'s closure days after `day` (the only ones a clock started that day can skip); outside a
        transaction on PostgreSQL (a submission), from the process's recent closures."""
        bind = self.session.get_bind()
        if bind.dialect.name == "postgresql" and not self.session.in_transaction():
            return self.recent.after(bind, centre, day)
        return frozenset(self.session.scalars(_CLOSED_AFTER, {"centre": centre, "after": day}))

    def get(self, centre: str, day: date) -> CentreClosure | None:
        return self.session.scalar(select(CentreClosure).where(CentreClosure.centre == centre, CentreClosure.day == day))

    def add(self, **values) -> CentreClosure:
        closure = CentreClosure(**values)
        self.session.add(closure)
        self.session.flush()
        self.recent.forget(self.session.get_bind())
        return closure


class CatalogueCopy:
    """The region's copy of the national catalogue, in one unit of work's session."""

    def __init__(self, session: Session):
        self.session = session

    def keep(self, definition: dict) -> bool:
        """Keep a catalogue service unless a newer version is already there; whether it was kept."""
        entry = self.session.get(CatalogueEntry, definition["code"])
        if entry is None:
            self.session.add(CatalogueEntry(code=definition["code"], version=definition["version"],
                                            state=definition["state"], definition=definition, refreshed_at=utc_now()))
            return True
        if definition["version"] < entry.version:
            return False
        entry.version = definition["version"]
        entry.state = definition["state"]
        entry.definition = definition
        entry.refreshed_at = utc_now()
        return True


class ProcessedEvents:
    """The events this region's intake has applied (its consumers are idempotent by `event_id`)."""

    def __init__(self, session: Session):
        self.session = session

    def first_delivery(self, envelope: dict) -> bool:
        """Record the event as applied in this unit of work; False when it was applied before."""
        return first_delivery(self.session, ProcessedEvent, envelope)
