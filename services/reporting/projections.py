"""Builds the read model from application events, idempotently and in any order, and rebuilds it.

Every application event carries the application's whole (non-personal) snapshot, so the first
event seen for an application creates its row whatever its type; later ones move its status only
when newer (`changed_at`), and a decision is counted once, whenever its event arrives.
"""
from datetime import timezone

from nameko.standalone.rpc import ClusterRpcProxy
from sqlalchemy import bindparam, delete, select
from sqlalchemy.dialects import postgresql, sqlite

from oss_common.calendar import local_date
from oss_common.consumers import first_delivery
from oss_common.database import session_factory
from services.reporting.domain import COUNT_DIMENSIONS, DECISION_DIMENSIONS, DECISIONS, OPEN_STATUSES
from services.reporting.models import ApplicationState, DailyCount, DailyDecision, ProcessedEvent
from services.reporting.schemas import ApplicationEventSchema

APPLICATION_EVENT = ApplicationEventSchema()
APPLICATION_EVENT_TYPES = frozenset({"application.submitted", "application.status_changed"})


def apply_event(session, envelope):
    """Apply one application event in the caller's transaction; False when it was applied before
    (or is of a type the read model does not use). Raises ValidationError for a malformed body."""
    if envelope["type"] not in APPLICATION_EVENT_TYPES:
        return False
    fact = APPLICATION_EVENT.load(envelope["data"])
    if not first_delivery(session, ProcessedEvent, envelope):
        return False
    state, created = _claim(session, fact)
    if created:
        _count(session, state.submitted_day, [(dimension, _value(state, dimension), 1) for dimension in COUNT_DIMENSIONS])
    elif fact["changed_at"] > _aware(state.changed_at):
        if fact["status"] != state.status:
            _count(session, state.submitted_day, [("status", state.status, -1), ("status", fact["status"], 1)])
            state.status = fact["status"]
            state.is_open = fact["status"] in OPEN_STATUSES
        state.changed_at = fact["changed_at"]
    if fact["status"] in DECISIONS and state.decided_at is None:
        _decide(session, state, fact)
    session.flush()
    return True


def _claim(session, fact):
    """The application's row, locked; created from this event's snapshot if there was none.

    An insert that yields to a concurrent one (ON CONFLICT DO NOTHING) instead of failing, so two
    events of a new application arriving together need no retry.
    """
    values = {
        "tracking_number": fact["tracking_number"],
        "service_code": fact["service_code"],
        "agency": fact["agency"],
        "district": fact["district"],
        "centre": fact["centre"],
        "channel": fact["channel"],
        "status": fact["status"],
        "is_open": fact["status"] in OPEN_STATUSES,
        "submitted_at": fact["submitted_at"],
        "submitted_day": local_date(fact["submitted_at"]),
        "due_date": fact["due_date"],
        "changed_at": fact["changed_at"],
    }
    connection = session.connection()
    created = connection.execute(_statement(connection.dialect.name, "claim"), values).first() is not None
    state = session.scalar(
        select(ApplicationState).where(ApplicationState.tracking_number == fact["tracking_number"])
        .with_for_update().execution_options(populate_existing=True)
    )
    return state, created


def _decide(session, state, fact):
    decided_at = fact["changed_at"]
    state.decision = fact["status"]
    state.decided_at = decided_at
    state.decided_day = local_date(decided_at)
    state.decided_on_time = fact["decided_on_time"] if fact["decided_on_time"] is not None else state.decided_day <= state.due_date
    state.processing_seconds = (decided_at - _aware(state.submitted_at)).total_seconds()
    deltas = {
        "approved": int(state.decision == "approved"),
        "rejected": int(state.decision == "rejected"),
        "on_time": int(state.decided_on_time),
        "late": int(not state.decided_on_time),
    }
    rows = [{"day": state.decided_day, "dimension": dimension, "value": _value(state, dimension), **deltas}
            for dimension in DECISION_DIMENSIONS]
    connection = session.connection()
    connection.execute(_statement(connection.dialect.name, "decide"), sorted(rows, key=_bucket_order))


def _count(session, day, changes):
    """Add each (dimension, value, delta) to the day's buckets; rows in one fixed order, so two
    transactions touching the same buckets never deadlock."""
    rows = [{"day": day, "dimension": dimension, "value": value, "applications": delta}
            for dimension, value, delta in changes]
    connection = session.connection()
    connection.execute(_statement(connection.dialect.name, "count"), sorted(rows, key=_bucket_order))


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


def _statement(dialect, purpose):
    """The read model's upserts, built once per dialect so that each compiles once."""
    key = (dialect, purpose)
    if key not in _STATEMENTS:
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        if purpose == "claim":
            table = ApplicationState.__table__
            columns = [column.name for column in table.columns if column.name not in _DECISION_COLUMNS]
            statement = (
                insert(table).values({name: bindparam(name) for name in columns})
                .on_conflict_do_nothing(index_elements=[table.c.tracking_number]).returning(table.c.tracking_number)
            )
        else:
            table = (DailyCount if purpose == "count" else DailyDecision).__table__
            sums = ["applications"] if purpose == "count" else list(_DECISION_SUMS)
            statement = insert(table).values({name: bindparam(name) for name in ["day", "dimension", "value", *sums]})
            statement = statement.on_conflict_do_update(
                index_elements=[table.c.day, table.c.dimension, table.c.value],
                set_={name: table.c[name] + statement.excluded[name] for name in sums},
            )
        _STATEMENTS[key] = statement
    return _STATEMENTS[key]


_DECISION_COLUMNS = frozenset({"decision", "decided_at", "decided_day", "decided_on_time", "processing_seconds"})
_DECISION_SUMS = ("approved", "rejected", "on_time", "late")


def _aware(moment):
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


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
    with session_factory() as session, session.begin():
        reset(session)
    after_id, read, applied = 0, 0, 0
    while True:
        page = export_page(after_id, page_size)
        with session_factory() as session, session.begin():
            for envelope in page["items"]:
                read += 1
                applied += apply_event(session, envelope)
        after_id = page["next_after_id"]
        if not page["more"]:
            return {"events_read": read, "events_applied": applied}


def rebuild_from_intake(config, page_size=1000):
    """`oss reporting rebuild --region <slug>`: replay the region's intake history into the
    DATABASE_URL of `config` (the regional reporting service's own settings)."""
    with ClusterRpcProxy(config, timeout=float(config.get("INTAKE_RPC_TIMEOUT") or 60)) as cluster:
        intake = getattr(cluster, f"intake_{config['REGION']}")
        return rebuild(session_factory(config["DATABASE_URL"]), intake.export_events, page_size)
