"""Where notifications keeps its state: deliveries and the deadline watch's copy of applications. Every
query and every PostgreSQL/SQLite branch (the inserts that race) lives here."""
from datetime import date, datetime, timezone

from sqlalchemy import and_, case, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from oss_common import application_events
from oss_common.events import utc_now
from services.notifications.domain import AGENCY, DUE_SOON, FAILED, PENDING, SENT
from services.notifications.models import Delivery, WatchedApplication

MAX_ERROR_LENGTH = 300


def _insert(session):
    return postgresql.insert if session.connection().dialect.name == "postgresql" else sqlite.insert


class WatchedApplications:
    """Where each application stands as its newest event says."""

    def __init__(self, session: Session):
        self.session = session

    def keep(self, region: str, fact: dict) -> None:
        """Bring the application's row up to this event (an application_events fact) unless one of a higher
        version was seen; a new due date starts its deadline notices afresh."""
        changed_at = fact["changed_at"].astimezone(timezone.utc)
        values = {
            "tracking_number": fact["tracking_number"], "region": region, "service_code": fact["service_code"],
            "service_name": fact["service_name"], "agency": fact["agency"], "status": fact["status"],
            "is_open": fact["open"], "clock_paused": fact["clock_paused"], "due_date": fact["due_date"],
            "changed_at": changed_at,
            "version": application_events.stored_version(fact),
        }
        table = WatchedApplication.__table__
        inserted = self.session.connection().execute(
            _insert(self.session)(table).values(**values).on_conflict_do_nothing(index_elements=[table.c.tracking_number])
        ).rowcount
        if inserted:
            return
        updates = {key: values[key] for key in ("status", "is_open", "clock_paused", "due_date", "changed_at", "version")}
        if values["service_name"] is not None:
            updates["service_name"] = values["service_name"]
        updates["deadline_notice"] = case((table.c.due_date == values["due_date"], table.c.deadline_notice), else_=None)
        # application_events.supersedes, as SQL: by version, or by changed_at between version-2 bodies.
        newer = (table.c.version < values["version"]) if values["version"] else and_(
            table.c.version == 0, table.c.changed_at < changed_at)
        self.session.connection().execute(
            update(table).where(table.c.tracking_number == values["tracking_number"], newer).values(**updates)
        )

    def get(self, tracking_number: str) -> WatchedApplication | None:
        return self.session.get(WatchedApplication, tracking_number)

    def needing_notice(self, today: date, horizon: date, limit: int) -> list[WatchedApplication]:
        """Open applications with a running clock due by `horizon` whose agency has not heard of it yet (or heard `due_soon` of one
        now overdue), earliest due first."""
        return list(self.session.scalars(
            select(WatchedApplication).where(
                WatchedApplication.is_open.is_(True),
                WatchedApplication.clock_paused.is_(False),
                WatchedApplication.due_date <= horizon,
                or_(WatchedApplication.deadline_notice.is_(None),
                    and_(WatchedApplication.deadline_notice == DUE_SOON, WatchedApplication.due_date < today)),
            ).order_by(WatchedApplication.due_date, WatchedApplication.tracking_number).limit(limit)
        ))


class Deliveries:
    """Deliveries and their attempts; each change is guarded so that two workers never both make it."""

    def __init__(self, session: Session):
        self.session = session

    def open(self, **values) -> tuple[Delivery, bool]:
        """The delivery of (event_id, channel), created pending (or as given) if there is none yet;
        returns (delivery, created). Two workers racing here end with one row."""
        now = utc_now()
        row = {"status": PENDING, "attempts": 0, "created_at": now, "updated_at": now, **values}
        table = Delivery.__table__
        created = self.session.connection().execute(
            _insert(self.session)(table).values(**row)
            .on_conflict_do_nothing(index_elements=[table.c.event_id, table.c.channel])
        ).rowcount == 1
        delivery = self.session.scalar(
            select(Delivery).where(Delivery.event_id == values["event_id"], Delivery.channel == values["channel"])
            .execution_options(populate_existing=True)
        )
        return delivery, created

    def claim(self, delivery: Delivery, now: datetime) -> bool:
        """Take the next attempt of a pending delivery; False when another worker holds it or it is settled."""
        return self._change(delivery, [Delivery.attempt_started_at.is_(None)],
                            {"attempts": Delivery.attempts + 1, "attempt_started_at": now, "updated_at": now})

    def settle(self, delivery: Delivery, status: str, error: str | None = None,
               next_attempt_at: datetime | None = None) -> None:
        """Record an attempt's outcome (`pending` again, or `sent`) and release the claim."""
        now = utc_now()
        values = {"status": status, "last_error": error[:MAX_ERROR_LENGTH] if error else None, "attempt_started_at": None,
                  "next_attempt_at": next_attempt_at, "updated_at": now}
        if status == SENT:
            values["sent_at"] = now
        self._change(delivery, [], values)

    def fail(self, delivery: Delivery, error: str, now: datetime) -> bool:
        """Mark a pending delivery failed for good; False when it was already settled."""
        return self._change(delivery, [], {"status": FAILED, "last_error": error[:MAX_ERROR_LENGTH],
                                           "attempt_started_at": None, "next_attempt_at": None, "updated_at": now})

    def stale(self, started_before: datetime, limit: int) -> list[Delivery]:
        """Pending deliveries whose attempt started before `started_before` (left mid-send)."""
        return list(self.session.scalars(
            select(Delivery).where(Delivery.status == PENDING, Delivery.attempt_started_at < started_before)
            .order_by(Delivery.id).limit(limit)
        ))

    def due_agency_notices(self, now: datetime, limit: int) -> list[Delivery]:
        """Pending agency notices nobody is trying whose back-off has passed."""
        return list(self.session.scalars(
            select(Delivery).where(
                Delivery.audience == AGENCY, Delivery.status == PENDING, Delivery.attempt_started_at.is_(None),
                or_(Delivery.next_attempt_at.is_(None), Delivery.next_attempt_at <= now),
            ).order_by(Delivery.id).limit(limit)
        ))

    def of(self, tracking_number: str) -> list[Delivery]:
        return list(self.session.scalars(
            select(Delivery).where(Delivery.tracking_number == tracking_number).order_by(Delivery.id)))

    def pending_by_channel(self) -> dict[str, int]:
        return dict(self.session.execute(
            select(Delivery.channel, func.count()).where(Delivery.status == PENDING).group_by(Delivery.channel)
        ).all())

    def _change(self, delivery, conditions, values):
        """Change a still-pending delivery (and `conditions`); the row is read again either way."""
        changed = self.session.execute(
            update(Delivery).where(Delivery.id == delivery.id, Delivery.status == PENDING, *conditions).values(**values)
            .execution_options(synchronize_session=False)
        ).rowcount == 1
        self.session.refresh(delivery)
        return changed
