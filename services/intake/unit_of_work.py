"""Intake's unit of work: one use case's session, repositories and events, committed together once.

Events a use case emits become outbox rows in the same commit as the state they describe, and the
service's outbox relay publishes them afterwards. A new application, its history entry and its
event are one statement on PostgreSQL (repository.py), so a submission still costs one round trip.
"""
from datetime import datetime
from typing import Protocol

from sqlalchemy.orm import Session

from oss_common.events import make_event
from oss_common.outbox import outbox_row
from oss_common.regions import Region
from services.intake.repository import Applications, TrackingNumberCounter

PRODUCER_PREFIX = "intake"


class Catalogue(Protocol):
    """The region's copy of the catalogue (dependencies.CatalogueCache)."""

    def get(self, code: str) -> dict | None: ...


class AlreadyCommitted(Exception):
    """A unit of work commits once; a second commit is a bug in the use case."""


class IntakeUnitOfWork:
    """`with uow: ... uow.commit()`; leaving the block without committing rolls back."""

    def __init__(self, session: Session, catalogue: Catalogue, region: Region):
        self.session = session
        self.catalogue = catalogue
        self.region = region
        self.applications = Applications(session)
        self.tracking_numbers = TrackingNumberCounter(session)
        self.events: list[dict] = []
        self.committed = False

    def __enter__(self) -> "IntakeUnitOfWork":
        return self

    def __exit__(self, *exc_info) -> None:
        if not self.committed:
            self.rollback()

    def emit(self, event_type: str, data: dict, occurred_at: datetime) -> dict:
        """Record an event of this region (e.g. `application.submitted`); it is stored at commit."""
        envelope = make_event(event_type, self.region.slug, f"{PRODUCER_PREFIX}_{self.region.slug}", data,
                              occurred_at=occurred_at)
        self.events.append(envelope)
        return envelope

    def commit(self) -> None:
        if self.committed:
            raise AlreadyCommitted("this unit of work has already committed")
        self.applications.flush([outbox_row(event) for event in self.events])
        # After a submission on PostgreSQL the session holds no transaction: nothing is sent.
        self.session.commit()
        self.committed = True

    def rollback(self) -> None:
        self.events.clear()
        self.session.rollback()
