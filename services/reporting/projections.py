"""Builds the read model from application events, idempotently and in any order, and rebuilds it.

Every application event carries the application's whole (non-personal) snapshot, so the first
event seen for an application creates its row whatever its type; later ones move its status only
when newer (a higher `version`: intake raises it with every change, so no clock is compared), and
a decision is counted once, whenever its event arrives.
"""

import time
from types import SimpleNamespace

from nameko.standalone.rpc import ClusterRpcProxy
from sqlalchemy import bindparam, delete, select, text

from oss_common import application_events
from oss_common.calendar import local_date
from oss_common.callers import caller_context
from oss_common.consumers import first_delivery
from oss_common.database import DatabaseSettings, session_factory
from oss_common.failures import is_transient, retry_delay
from services.reporting.domain import COUNT_DIMENSIONS, DECISION_DIMENSIONS
from services.reporting.models import ApplicationState, DailyCount, DailyDecision, ProcessedEvent
from services.reporting.unit_of_work import ReportingUnitOfWork


def record_event(uow: ReportingUnitOfWork, envelope: dict) -> bool:
    """The consumer's use case: apply one application event to the read model, in one unit of work."""
    with uow:
        applied = apply_event(uow.session, envelope)
        uow.commit()
    return applied


def apply_event(session, envelope):
    """Apply one application event in the caller's transaction; False when it was applied before
    (or is of a type the read model does not use). Raises ValidationError for a malformed body."""
    if envelope["type"] not in application_events.TYPES:
        return False
    fact = application_events.load(envelope)
    if not first_delivery(session, ProcessedEvent, envelope):
        return False
    values = _snapshot(fact)
    created = _upsert(session.connection(), "claim", [values]).first() is not None
    if created:
        # A new application: its row is the event's snapshot as inserted, counted from that.
        _count(session, values["submitted_day"],
               [(dimension, _value(SimpleNamespace(**values), dimension), 1) for dimension in COUNT_DIMENSIONS])
        if not fact["decided"]:
            return True  # not yet decided (the usual first event): nothing more, no need to read the row back
    state = _locked_state(session, fact["tracking_number"])
    if not created and application_events.supersedes(fact, state.version, state.changed_at):
        if fact["status"] != state.status:
            _count(session, state.submitted_day, [("status", state.status, -1), ("status", fact["status"], 1)])
            state.status = fact["status"]
            state.is_open = fact["open"]
        state.changed_at = fact["changed_at"]
        state.version = application_events.stored_version(fact)
    if fact["decided"] and state.decided_at is None:
        _decide(session, state, fact)
    session.flush()
    return True


def _snapshot(fact):
    """The application's row as this event describes it. Claimed with an insert that yields to a
    concurrent one (ON CONFLICT DO NOTHING) instead of failing, so two events of a new application
    arriving together need no retry."""
    return {
        "tracking_number": fact["tracking_number"],
        "service_code": fact["service_code"],
        "agency": fact["agency"],
        "district": fact["district"],
        "centre": fact["centre"],
        "channel": fact["channel"],
        "status": fact["status"],
        "is_open": fact["open"],
        "submitted_at": fact["submitted_at"],
        "submitted_day": local_date(fact["submitted_at"]),
        "due_date": fact["due_date"],
        "changed_at": fact["changed_at"],
        "version": application_events.stored_version(fact),
    }


def _locked_state(session, tracking_number):
    """The application's row, locked for this transaction."""
    return session.scalar(
        select(ApplicationState).where(ApplicationState.tracking_number == tracking_number)
        .with_for_update().execution_options(populate_existing=True)
    )


def _decide(session, state, fact):
    decided_at = fact["changed_at"]
    state.decision = fact["status"]
    state.decided_at = decided_at
    state.decided_day = local_date(decided_at)
    state.decided_on_time = fact["decided_on_time"] if fact["decided_on_time"] is not None else state.decided_day <= state.due_date
    state.processing_seconds = (decided_at - state.submitted_at).total_seconds()
    deltas = {
        "approved": int(state.decision == "approved"),
        "rejected": int(state.decision == "rejected"),
        "on_time": int(state.decided_on_time),
        "late": int(not state.decided_on_time),
    }
    rows = [{"day": state.decided_day, "dimension": dimension, "value": _value(state, dimension), **deltas}
            for dimension in DECISION_DIMENSIONS]
    connection = session.connection()
    _upsert(connection, "decide", sorted(rows, key=_bucket_order))


def _count(session, day, changes):
    """Add each (dimension, value, delta) to the day's buckets; rows in one fixed order, so two
    transactions touching the same buckets never deadlock."""
    rows = [{"day": day, "dimension": dimension, "value": value, "applications": delta}
            for dimension, value, delta in changes]
    connection = session.connection()
    _upsert(connection, "count", sorted(rows, key=_bucket_order))


def _bucket_order(row):
    return (row["dimension"], row["value"])


def _value(state, dimension):
    return {
        "all": "",
        "service": state.service_code,
        "district": state.district,
        "centre": state.centre,
        "channel": state.channel,
        "status": state.status,
    }[dimension]


_STATEMENTS = {}


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


_DECISION_COLUMNS = frozenset({"decision", "decided_at", "decided_day", "decided_on_time", "processing_seconds"})
_DECISION_SUMS = ("approved", "rejected", "on_time", "late")


PAGE_ATTEMPTS = 8


def reset(session):
    """Empty the read model (and the record of applied events) in the caller's transaction."""
    for model in (DailyCount, DailyDecision, ApplicationState, ProcessedEvent):
        session.execute(delete(model))


def rebuild(session_factory, export_page, page_size=1000):
    """Replay a region's whole event history into an emptied read model, a page per transaction.

    `export_page(after_id, limit)` is intake's `export_events`. Events the live consumer applies
    meanwhile are recorded like any other, so each counts exactly once either way.
    Returns how many events were read and how many applied.
    """
    with session_factory() as session, ReportingUnitOfWork(session) as uow:
        reset(uow.session)
        uow.commit()
    after_id, read, applied = 0, 0, 0
    while True:
        page = export_page(after_id, page_size)
        read += len(page["items"])
        applied += _apply_page(session_factory, page["items"])
        after_id = page["next_after_id"]
        if not page["more"]:
            return {"events_read": read, "events_applied": applied}


def _apply_page(session_factory, envelopes, attempts=PAGE_ATTEMPTS):
    """Apply one page of events in one transaction, trying the page again when it meets a transient
    failure: the live consumer applies the same region's events meanwhile, and on PostgreSQL the
    two can deadlock (the page holds bucket rows while claiming an event the consumer has claimed
    and not yet committed). The failed page was rolled back whole, so trying it again counts each
    event once."""
    attempt = 0
    while True:
        attempt += 1
        try:
            with session_factory() as session, ReportingUnitOfWork(session) as uow:
                applied = sum(apply_event(uow.session, envelope) for envelope in envelopes)
                uow.commit()
            return applied
        except Exception as exc:
            if attempt == attempts or not is_transient(exc):
                raise
            time.sleep(retry_delay(attempt, base=0.2, ceiling=5.0))


def rebuild_from_intake(config, token, page_size=1000):
    """`oss reporting rebuild --region <slug>`: replay the region's intake history into the
    DATABASE_URL of `config` (the regional reporting service's own settings), asking intake as the
    region administrator whose `token` is given."""
    with ClusterRpcProxy(config, timeout=float(config.get("INTAKE_RPC_TIMEOUT") or 60),
                         context_data=caller_context(token)) as cluster:
        intake = getattr(cluster, f"intake_{config['REGION']}")
        return rebuild(session_factory(config["DATABASE_URL"], settings=DatabaseSettings.from_config(config)), intake.export_events, page_size)
