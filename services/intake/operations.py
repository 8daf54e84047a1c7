"""Intake's units of work: submit an application, move it through its workflow, query and export."""
import hashlib
import json
import time
from datetime import datetime, timedelta, timezone
from datetime import time as clock_time
from types import SimpleNamespace

from eventlet.semaphore import Semaphore
from sqlalchemy import bindparam, func, insert, select, text
from sqlalchemy.exc import IntegrityError

from oss_common.calendar import TASHKENT, add_working_days, local_date
from oss_common.database import UNSYNCED_COMMIT, PreparedStatement
from oss_common.events import make_event, rfc3339, utc_now
from oss_common.outbox import outbox_row
from services.intake.domain import (
    DECISIONS, FINAL, ApplicationWorkflow, ReasonRequired, Status, TransitionNotAllowed,
    missing_documents, tracking_number, unknown_documents, validate_attributes,
)
from services.intake.exceptions import (
    ApplicationInvalid, ApplicationNotFound, IdempotencyKeyReused, ServiceNotAvailable, TransitionRejected,
)
from services.intake.models import Application, CatalogueEntry, OutboxEvent, StatusChange
from services.intake.schemas import mask_phone, mask_pinfl

PRODUCER_PREFIX = "intake"


def fingerprint(submission):
    return hashlib.sha256(json.dumps(submission, sort_keys=True, default=str).encode()).hexdigest()


def check_against_catalogue(region, definition, submission):
    """Everything the catalogue and the region registry say about a submission; 422 naming fields."""
    code = submission["service_code"]
    if definition is None:
        raise ServiceNotAvailable(f"no service {code!r} in the catalogue", fields={"service_code": ["unknown service"]})
    if definition["state"] != "published":
        raise ServiceNotAvailable(f"service {code!r} is not published", fields={"service_code": [f"service is {definition['state']}"]})
    if region.slug not in definition["regions"]:
        raise ServiceNotAvailable(f"service {code!r} is not offered in {region.slug}",
                                  fields={"service_code": [f"not offered in {region.slug}"]})
    fields = {}
    if region.district(submission["district"]) is None:
        fields["district"] = [f"not a district of {region.slug}"]
    centre = submission.get("centre") or region.main_centre
    if region.centre(centre) is None:
        fields["centre"] = [f"not an OSS centre of {region.slug}"]
    missing = missing_documents(definition["required_documents"], submission["documents"])
    unknown = unknown_documents(definition["required_documents"], submission["documents"])
    if missing:
        fields["documents"] = [f"missing required document: {code}" for code in missing]
    if unknown:
        fields.setdefault("documents", []).extend(f"not a document of this service: {code}" for code in unknown)
    attributes, attribute_errors = validate_attributes(definition["attributes"], submission["attributes"])
    for attribute, messages in attribute_errors.items():
        fields[f"attributes.{attribute}"] = messages
    if fields:
        raise ApplicationInvalid(f"the application does not fit service {code!r}: {', '.join(sorted(fields))}", fields=fields)
    return centre, attributes


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


def next_sequence(session, year, count=1):
    """Take `count` tracking sequence numbers of `year` in one atomic upsert (so concurrent processes
    never share one); returns the last of them.

    On PostgreSQL the upsert commits on its own, outside the submission's statement
    (`PreparedStatement.first`, with UNSYNCED_COMMIT, so not waiting for the WAL flush): inside the
    submission's transaction, the year's row stayed locked through every later statement and the
    commit's WAL flush, so all submissions of a region queued on that one row. A submission that
    fails afterwards leaves a gap in the numbers, never a duplicate. On SQLite the submission's transaction holds the file's
    write lock anyway, so the upsert stays inside it.
    """
    bind = session.get_bind()
    parameters = {"year": year, "count": count}
    if bind.dialect.name == "postgresql":
        # Not prepared on the server: PREPARE takes one statement, and this string holds two.
        return _prepare(_NEXT_SEQUENCE_UNSYNCED, bind.dialect, server_side=False).first(bind, parameters)[0]
    return session.connection().execute(_NEXT_SEQUENCE, parameters).scalar_one()


class _Block:
    __slots__ = ("next", "last", "size", "taken_at")

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

    def take(self, session, year):
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


def find_by_key(session, key):
    return session.scalar(select(Application).where(Application.idempotency_key == key))


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


def _key_taken(session, key):
    """Whether an application already holds `key`; on PostgreSQL without opening a transaction."""
    bind = session.get_bind()
    if bind.dialect.name == "postgresql":
        return _prepare(_KEY_TAKEN, bind.dialect).first(bind, {"key": key}) is not None
    return session.connection().execute(_KEY_TAKEN, {"key": key}).first() is not None


def _store(session, application, change, event):
    """Write the submission's three rows (dicts of column values), atomically; returns the application's id."""
    parameters = {**{"a_" + name: value for name, value in application.items()},
                  **{"h_" + name: value for name, value in change.items()},
                  **{"o_" + name: value for name, value in outbox_row(event).items()}}
    bind = session.get_bind()
    dialect = bind.dialect
    if dialect.name == "postgresql":
        return _prepare(_SUBMIT_IN_ONE_STATEMENT, dialect).first(bind, parameters)[0]
    connection = session.connection()  # the transaction that holds SQLite's write lock (and took the number)
    application_id = _prepare(_INSERT_APPLICATION, dialect).first_in(connection, parameters)[0]
    _prepare(_INSERT_HISTORY, dialect).first_in(connection, {**parameters, "h_application_id": application_id})
    _prepare(_INSERT_OUTBOX, dialect).first_in(connection, parameters)
    session.commit()
    return application_id


def submit(session, region, definition, submission, idempotency_key=None, now=None, actor=None):
    """File an application; returns (application, created). Nothing is written when it fails.

    `actor` (the operator's `role:subject`) goes into the audit trail; RPC callers default to the centre.
    """
    request_fingerprint = fingerprint(submission)
    if idempotency_key and _key_taken(session, idempotency_key):
        return _replay(find_by_key(session, idempotency_key), request_fingerprint), False
    centre, attributes = check_against_catalogue(region, definition, submission)
    now = now or utc_now()
    applicant = submission["applicant"]
    year = local_date(now).year
    row = {
        "tracking_number": tracking_number(region.prefix, year, TRACKING_NUMBERS.take(session, year)),
        "idempotency_key": idempotency_key,
        "request_fingerprint": request_fingerprint,
        "service_code": definition["code"],
        "service_version": definition["version"],
        "agency": definition["agency"]["code"],
        "district": submission["district"],
        "centre": centre,
        "status": Status.SUBMITTED.value,
        "applicant_pinfl": applicant["pinfl"],
        "applicant_name": applicant["full_name"],
        "applicant_phone": applicant["phone"],
        "applicant_email": applicant.get("email"),
        "language": applicant["language"],
        "channel": applicant["channel"],
        "documents": sorted(set(submission["documents"])),
        "attributes": attributes,
        "submitted_at": now,
        "due_date": add_working_days(local_date(now), definition["deadline_working_days"]),
        "updated_at": now,
        "decided_at": None,
    }
    actor = actor or f"centre:{centre}"
    change = {"from_status": None, "to_status": Status.SUBMITTED.value, "actor": actor, "reason": None, "occurred_at": now}
    # What was written, as the views and events read it (attribute access, like a stored Application;
    # it is not in the session: the rows were written with Core statements).
    application = SimpleNamespace(**row, history=[SimpleNamespace(**change)])
    event = make_event("application.submitted", region.slug, f"{PRODUCER_PREFIX}_{region.slug}",
                       event_data(application, definition, actor=actor), occurred_at=now)
    try:
        application.id = _store(session, row, change, event)
    except IntegrityError:
        # Only the idempotency key can collide: another request with the same key won the race.
        session.rollback()
        existing = find_by_key(session, idempotency_key) if idempotency_key else None
        if existing is None:
            raise
        return _replay(existing, request_fingerprint), False
    return application, True


def _replay(existing, request_fingerprint):
    if existing.request_fingerprint != request_fingerprint:
        raise IdempotencyKeyReused("this Idempotency-Key was used for a different application",
                                   fields={"idempotency_key": ["already used with a different body"]})
    return existing


def transition(session, record, region, definition, tracking, target, actor, reason=None, now=None):
    application = get_application(session, tracking, for_update=True)
    workflow = ApplicationWorkflow(application.status)
    try:
        previous = workflow.transition(target, reason)
    except TransitionNotAllowed as exc:
        raise TransitionRejected(str(exc), fields={"to": [f"allowed from {exc.current}: {', '.join(ApplicationWorkflow(exc.current).allowed) or 'none'}"]}) from exc
    except ReasonRequired as exc:
        raise ApplicationInvalid(str(exc), fields={"reason": [f"required for {exc.target}"]}) from exc
    now = now or utc_now()
    application.status = workflow.status.value
    application.updated_at = now
    if workflow.status in DECISIONS:
        application.decided_at = now
    application.history.append(StatusChange(from_status=previous.value, to_status=workflow.status.value,
                                            actor=actor, reason=reason, occurred_at=now))
    data = event_data(application, definition, actor=actor)
    data.update(previous_status=previous.value, reason=reason)
    record(session, make_event("application.status_changed", region.slug, f"{PRODUCER_PREFIX}_{region.slug}", data, occurred_at=now))
    session.commit()
    return application


def event_data(application, definition, actor):
    """What others need to react to an application event: no PINFL, no name.

    The contact the applicant chose travels in the body (never in a routing key) so that
    notifications need not call back.
    """
    data = {
        "tracking_number": application.tracking_number,
        "service_code": application.service_code,
        "service_version": application.service_version,
        "agency": application.agency,
        "district": application.district,
        "centre": application.centre,
        "status": application.status,
        "previous_status": None,
        "reason": None,
        "actor": actor,
        "submitted_at": rfc3339(application.submitted_at),
        "changed_at": rfc3339(application.updated_at),
        "due_date": application.due_date.isoformat(),
        "language": application.language,
        "channel": application.channel,
        "contact": {"phone": application.applicant_phone, "email": application.applicant_email},
    }
    if definition is not None:
        data["service_name"] = definition["names"]
    if application.decided_at is not None and application.status in {s.value for s in DECISIONS}:
        data["decided_on_time"] = local_date(application.decided_at) <= application.due_date
    return data


def get_application(session, tracking, for_update=False):
    query = select(Application).where(Application.tracking_number == tracking)
    if for_update:
        # Re-read under the lock: another process may have moved it since this session last looked.
        query = query.with_for_update().execution_options(populate_existing=True)
    application = session.scalar(query)
    if application is None:
        raise ApplicationNotFound(f"no application {tracking!r} in this region", fields={"tracking_number": ["unknown"]})
    return application


def application_view(application, with_history=True, reveal_personal_data=True):
    applicant = {
        "pinfl": application.applicant_pinfl if reveal_personal_data else mask_pinfl(application.applicant_pinfl),
        "full_name": application.applicant_name if reveal_personal_data else None,
        "phone": application.applicant_phone if reveal_personal_data else mask_phone(application.applicant_phone),
        "language": application.language,
        "channel": application.channel,
    }
    if reveal_personal_data:
        applicant["email"] = application.applicant_email
    view = {
        "tracking_number": application.tracking_number,
        "service_code": application.service_code,
        "service_version": application.service_version,
        "agency": application.agency,
        "status": application.status,
        "allowed_transitions": ApplicationWorkflow(application.status).allowed,
        "district": application.district,
        "centre": application.centre,
        "applicant": applicant,
        "documents": application.documents,
        "attributes": application.attributes,
        "submitted_at": rfc3339(application.submitted_at),
        "updated_at": rfc3339(application.updated_at),
        "due_date": application.due_date.isoformat(),
    }
    if with_history:
        view["history"] = [
            {"from": change.from_status, "to": change.to_status, "actor": change.actor,
             "reason": change.reason, "at": rfc3339(change.occurred_at)}
            for change in application.history
        ]
    return view


def list_applications(session, query):
    conditions = []
    if query["status"]:
        conditions.append(Application.status == query["status"])
    if query["service"]:
        conditions.append(Application.service_code == query["service"])
    if query["district"]:
        conditions.append(Application.district == query["district"])
    if query["centre"]:
        conditions.append(Application.centre == query["centre"])
    if query.get("agency"):
        conditions.append(Application.agency == query["agency"])
    if query.get("active") is not None:
        finished = Application.status.in_([status.value for status in FINAL])
        conditions.append(~finished if query["active"] else finished)
    # The caller's scope: an operator's centres, an officer's agencies (None: no limit, as over RPC).
    if query.get("centres") is not None:
        conditions.append(Application.centre.in_(query["centres"]))
    if query.get("agencies") is not None:
        conditions.append(Application.agency.in_(query["agencies"]))
    if query["submitted_from"]:
        conditions.append(Application.submitted_at >= _start_of(query["submitted_from"]))
    if query["submitted_to"]:
        conditions.append(Application.submitted_at < _start_of(query["submitted_to"], days=1))
    total = session.scalar(select(func.count()).select_from(Application).where(*conditions))
    rows = session.scalars(
        select(Application).where(*conditions)
        .order_by(*((Application.due_date, Application.id) if query.get("order") == "due" else (Application.id.desc(),)))
        .offset((query["page"] - 1) * query["page_size"]).limit(query["page_size"])
    ).all()
    return {
        "items": [application_view(row, with_history=False, reveal_personal_data=False) for row in rows],
        "total": total,
        "page": query["page"],
        "page_size": query["page_size"],
    }


def offered_services(session, region_slug):
    """The published catalogue services the region offers, from its copy, by group and code."""
    rows = session.scalars(select(CatalogueEntry).where(CatalogueEntry.state == "published")).all()
    return sorted((row.definition for row in rows if region_slug in row.definition["regions"]),
                  key=lambda definition: (definition["group"], definition["code"]))


def open311_requests(session, tracking_numbers=None, service_codes=None, statuses=None, start=None, end=None,
                     limit=1000, offset=0):
    """Applications for the Open311 face, newest first: by tracking number, or by service, status
    and submission time (aware datetimes, both ends included)."""
    conditions = []
    if tracking_numbers is not None:
        conditions.append(Application.tracking_number.in_(tracking_numbers))
    if service_codes:
        conditions.append(Application.service_code.in_(service_codes))
    if statuses:
        conditions.append(Application.status.in_(statuses))
    if start is not None:
        conditions.append(Application.submitted_at >= start.astimezone(timezone.utc))
    if end is not None:
        conditions.append(Application.submitted_at <= end.astimezone(timezone.utc))
    return session.scalars(
        select(Application).where(*conditions).order_by(Application.submitted_at.desc(), Application.id.desc())
        .offset(offset).limit(limit)
    ).all()


def _start_of(day, days=0):
    return datetime.combine(day + timedelta(days=days), clock_time.min, tzinfo=TASHKENT)


def export_events(session, after_id=0, limit=500):
    """The region's stored events in order, a page at a time (for rebuilding projections)."""
    rows = session.scalars(select(OutboxEvent).where(OutboxEvent.id > after_id).order_by(OutboxEvent.id).limit(limit)).all()
    return {
        "items": [row.payload for row in rows],
        "next_after_id": rows[-1].id if rows else after_id,
        "more": len(rows) == limit,
    }


def service_form(definition):
    """What a desk needs to file an application for a catalogue service: names, agency, deadline,
    fee, the documents to check and the form's attributes in order (fixed ones left out)."""
    attributes = sorted((attribute for attribute in definition["attributes"] if attribute.get("variable", True)),
                        key=lambda attribute: (attribute.get("order", 0), attribute["code"]))
    return {
        "code": definition["code"],
        "version": definition["version"],
        "group": definition["group"],
        "names": definition["names"],
        "agency": definition["agency"],
        "deadline_working_days": definition["deadline_working_days"],
        "fee": definition.get("fee"),
        "required_documents": [{"code": document["code"], "names": document["names"]}
                               for document in definition["required_documents"]],
        "attributes": [
            {"code": attribute["code"], "datatype": attribute["datatype"], "required": bool(attribute.get("required")),
             "description": attribute.get("description") or {},
             "values": [{"key": value["key"], "name": value.get("name") or {}} for value in attribute.get("values") or []]}
            for attribute in attributes
        ],
    }


def public_status(application, definition):
    """Where an application stands, for anyone holding its tracking number: the service, the status,
    the due date and the dates of its status changes; nothing about the applicant, no officer's
    reason, no actor."""
    return {
        "tracking_number": application.tracking_number,
        "service_code": application.service_code,
        "service_name": definition["names"] if definition is not None else None,
        "status": application.status,
        "final": not ApplicationWorkflow(application.status).allowed,
        "submitted_on": local_date(application.submitted_at).isoformat(),
        "due_date": application.due_date.isoformat(),
        "history": [{"status": change.to_status, "on": local_date(change.occurred_at).isoformat()}
                    for change in application.history],
    }
