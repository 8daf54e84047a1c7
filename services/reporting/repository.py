"""Reporting's read model as the consumer writes it: applied events, one row per application, daily buckets.
Every statement of the write side lives here (the read side's queries are views.py's)."""
from sqlalchemy import bindparam, delete, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from oss_common.consumers import first_delivery
from services.reporting.models import ApplicationState, DailyCount, DailyDecision, FeeState, ProcessedEvent

_DECISION_COLUMNS = frozenset({"decision", "decided_at", "decided_day", "decided_on_time", "processing_seconds"})
_DECISION_SUMS = ("approved", "rejected", "on_time", "late")
_STATEMENTS = {}


class ReadModel:
    def __init__(self, session: Session):
        self.session = session

    def first_delivery(self, event_id: str, event_type: str) -> bool:
        """Record the event as applied; False if it was applied before."""
        return first_delivery(self.session, ProcessedEvent, {"event_id": event_id, "type": event_type})

    def claim(self, values: dict) -> bool:
        """Insert the application's row unless it has one (yielding to a concurrent insert instead of
        failing, so two events of a new application arriving together need no retry); True when inserted."""
        return _upsert(self.session.connection(), "claim", [values]).first() is not None

    def locked(self, tracking_number: str) -> ApplicationState:
        """The application's row, locked for this transaction."""
        return self.session.scalar(
            select(ApplicationState).where(ApplicationState.tracking_number == tracking_number)
            .with_for_update().execution_options(populate_existing=True)
        )

    def count(self, day, changes: list[tuple[str, str, int]]) -> None:
        """Add each (dimension, value, delta) to the day's submission buckets."""
        rows = [{"day": day, "dimension": dimension, "value": value, "applications": delta}
                for dimension, value, delta in changes]
        _upsert(self.session.connection(), "count", sorted(rows, key=_bucket_order))

    def count_decision(self, day, values: dict[str, str], deltas: dict[str, int]) -> None:
        """Add `deltas` (approved, rejected, on_time, late) to the day's decision bucket of each {dimension: value}."""
        rows = [{"day": day, "dimension": dimension, "value": value, **deltas} for dimension, value in values.items()]
        _upsert(self.session.connection(), "decide", sorted(rows, key=_bucket_order))

    def keep_fee(self, values: dict) -> None:
        """The invoice's row as an event describes it: inserted when new (yielding to a concurrent
        insert), its state moved when the event is newer (a higher application version)."""
        table = FeeState.__table__
        dialect = postgresql if self.session.connection().dialect.name == "postgresql" else sqlite
        self.session.connection().execute(dialect.insert(table).values(**values).on_conflict_do_nothing(
            index_elements=[table.c.invoice_number]))
        self.session.connection().execute(update(table).where(
            table.c.invoice_number == values["invoice_number"], table.c.version < values["version"]).values(
            state=values["state"], version=values["version"]))

    def add_money(self, invoice_number: str, paid: int = 0, refunded: int = 0) -> None:
        """Count a payment or a refund of the invoice (each event once: the caller applies it once)."""
        table = FeeState.__table__
        self.session.connection().execute(update(table).where(table.c.invoice_number == invoice_number).values(
            paid_tiyin=table.c.paid_tiyin + paid, refunded_tiyin=table.c.refunded_tiyin + refunded))

    def flush(self) -> None:
        self.session.flush()

    def reset(self) -> None:
        """Empty the read model and the record of applied events."""
        for model in (DailyCount, DailyDecision, ApplicationState, FeeState, ProcessedEvent):
            self.session.execute(delete(model))


def _bucket_order(row):
    """Rows in one fixed order, so two transactions touching the same buckets never deadlock."""
    return (row["dimension"], row["value"])


def _statement(purpose, rows=1):
    """The read model's upserts as text, built once per purpose and row count.

    Text, not a dialect insert: SQLAlchemy cannot cache the compiled form of ON CONFLICT, so each
    event compiled its upserts again (~5% of a busy reporting process's samples). All buckets of
    one event in one multi-row statement: psycopg2's executemany sends a row per round trip, and
    every later round trip was made holding the lock on the day's first (hottest) bucket, which
    every event of the region needs. Rows keep the caller's order (sorted), so two transactions
    still lock shared buckets in the same order. The same SQL on SQLite (3.35+) and PostgreSQL;
    bound values still go through the columns' types. Parameters are named `<column>_<row>`.
    """
    key = (purpose, rows)
    if key not in _STATEMENTS:
        if purpose == "claim":
            table = ApplicationState.__table__
            columns = [column for column in table.columns if column.name not in _DECISION_COLUMNS]
            conflict = "ON CONFLICT (tracking_number) DO NOTHING RETURNING tracking_number"
        else:
            table = (DailyCount if purpose == "count" else DailyDecision).__table__
            sums = ["applications"] if purpose == "count" else list(_DECISION_SUMS)
            columns = [table.c[name] for name in ["day", "dimension", "value", *sums]]
            conflict = ("ON CONFLICT (day, dimension, value) DO UPDATE SET "
                        + ", ".join(f"{name} = {table.name}.{name} + excluded.{name}" for name in sums))
        values = ", ".join("(" + ", ".join(f":{column.name}_{row}" for column in columns) + ")" for row in range(rows))
        sql = f"INSERT INTO {table.name} ({', '.join(column.name for column in columns)}) VALUES {values} {conflict}"
        _STATEMENTS[key] = text(sql).bindparams(*(bindparam(f"{column.name}_{row}", type_=column.type)
                                                  for row in range(rows) for column in columns))
    return _STATEMENTS[key]


def _upsert(connection, purpose, rows):
    """One statement for all `rows` (dicts of column values), in their order."""
    parameters = {f"{name}_{index}": value for index, row in enumerate(rows) for name, value in row.items()}
    return connection.execute(_statement(purpose, len(rows)), parameters)
