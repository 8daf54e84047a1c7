"""Intake's unit of work: one use case's session, its repositories (applications, tracking numbers, the
stored catalogue copy, applied events, centres' closure days), the region's catalogue as served from memory and the events it
emits, committed together once.

A new application, its history entry and its event are one statement on PostgreSQL
(repository.py), so a submission still costs one round trip; the commit that follows finds no
transaction open and sends nothing.
"""
from collections.abc import Callable
from typing import Protocol

from sqlalchemy.orm import Session

from oss_common.regions import Region
from oss_common.unit_of_work import SqlUnitOfWork
from services.intake.models import OutboxEvent
from services.intake.repository import (
    Applications, CatalogueCopy, Closures, Invoices, OfficeSales, ProcessedEvents, TrackingNumberCounter,
)

PRODUCER_PREFIX = "intake"


class Catalogue(Protocol):
    """The region's copy of the catalogue (dependencies.CatalogueCache)."""

    def get(self, code: str) -> dict | None: ...


class IntakeUnitOfWork(SqlUnitOfWork):
    def __init__(self, session: Session, catalogue: Catalogue, region: Region,
                 pay_url: Callable[[object], str | None] | None = None):
        super().__init__(session, OutboxEvent, region.slug, f"{PRODUCER_PREFIX}_{region.slug}")
        self.catalogue = catalogue
        self.region = region
        # invoice -> where the citizen pays it online (the payment provider's checkout), or None
        self.pay_url = pay_url or (lambda invoice: None)
        self.invoices = Invoices(session)
        self.office_sales = OfficeSales(session)
        self.applications = Applications(session)
        self.tracking_numbers = TrackingNumberCounter(session)
        self.catalogue_copy = CatalogueCopy(session)
        self.processed_events = ProcessedEvents(session)
        self.closures = Closures(session)

    def _write_events(self, rows: list[dict]) -> None:
        self.applications.flush(rows)
