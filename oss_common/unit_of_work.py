"""The unit of work every service's use cases run in (after cosmicpython's service_layer/unit_of_work.py):
`with uow: ... uow.commit()`. It owns the session; the events a use case emits are written to the
service's outbox in the same commit as the state they describe, and the outbox relay publishes them
afterwards. Each `with` block commits once; leaving it without committing rolls back. A use case whose
work takes several transactions by design (a notification: recorded, claimed, settled) enters its unit
of work once for each."""
from datetime import datetime

from sqlalchemy.orm import Session

from oss_common.events import SCHEMA_VERSION, make_event
from oss_common.outbox import outbox_row


class AlreadyCommitted(Exception):
    """A unit of work commits once; a second commit is a bug in the use case."""


class UnitOfWork:
    """What every unit of work does, whatever stores its state: collect events, commit once."""

    def __init__(self, region: str, producer: str):
        self.region_slug = region
        self.producer = producer
        self.events: list[dict] = []
        self.committed = False

    def __enter__(self) -> "UnitOfWork":
        self.committed = False
        self.events = []
        return self

    def __exit__(self, *exc_info) -> None:
        if not self.committed:
            self.rollback()

    def emit(self, event_type: str, data: dict, occurred_at: datetime | None = None,
             schema_version: int = SCHEMA_VERSION) -> dict:
        """Record an event (e.g. `application.submitted`); it is stored with the commit."""
        envelope = make_event(event_type, self.region_slug, self.producer, data, occurred_at=occurred_at,
                              schema_version=schema_version)
        self.events.append(envelope)
        return envelope

    def commit(self) -> None:
        if self.committed:
            raise AlreadyCommitted("this unit of work has already committed")
        self._commit()
        self.committed = True

    def rollback(self) -> None:
        self.events.clear()
        self._rollback()

    def _commit(self) -> None:
        raise NotImplementedError

    def _rollback(self) -> None:
        raise NotImplementedError


class SqlUnitOfWork(UnitOfWork):
    """A unit of work on one SQLAlchemy session, whose events go to `outbox_model`'s table."""

    def __init__(self, session: Session, outbox_model: type, region: str, producer: str):
        super().__init__(region, producer)
        self.session = session
        self.outbox_model = outbox_model

    def _commit(self) -> None:
        self._write_events([outbox_row(event) for event in self.events])
        self.session.commit()

    def _write_events(self, rows: list[dict]) -> None:
        self.session.add_all(self.outbox_model(**row) for row in rows)

    def _rollback(self) -> None:
        self.session.rollback()
