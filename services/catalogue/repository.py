"""Where the catalogue keeps its state: public services, their agencies and groups, the base calculation
amount, the audit trail.
Every query the use cases and views need lives here (the catalogue has no dialect branch)."""
from sqlalchemy import select
from sqlalchemy.orm import Session

from services.catalogue.models import Agency, BaseAmount, CatalogueChange, Group, PublicService


class Services:
    def __init__(self, session: Session):
        self.session = session

    def get(self, code: str) -> PublicService | None:
        return self.session.get(PublicService, code)

    def add(self, values: dict) -> PublicService:
        row = PublicService(**values)
        self.session.add(row)
        self.session.flush()
        return row

    def changed(self, row: PublicService) -> None:
        """Write a change to `row` now (its audit entry and event follow in the same commit)."""
        self.session.flush()

    def listed(self, region: str | None = None, group: str | None = None, state: str | None = "published",
               public_interest: bool | None = None) -> list[PublicService]:
        """Services by group and code; `state` "all" (or None) for every state."""
        query = select(PublicService).order_by(PublicService.group, PublicService.code)
        if group:
            query = query.where(PublicService.group == group)
        if public_interest is not None:
            query = query.where(PublicService.public_interest == public_interest)
        if state and state != "all":
            query = query.where(PublicService.state == state)
        rows = self.session.scalars(query).all()
        return [row for row in rows if region in row.definition["regions"]] if region else list(rows)


class NamedCodes:
    """Agencies or groups: a code and its names in uz/ru/en."""

    def __init__(self, session: Session, model: type[Agency] | type[Group]):
        self.session = session
        self.model = model

    def exists(self, code: str) -> bool:
        return self.session.get(self.model, code) is not None

    def all(self) -> list:
        return list(self.session.scalars(select(self.model).order_by(self.model.code)))

    def names(self) -> dict[str, dict]:
        return {row.code: row.names for row in self.session.scalars(select(self.model))}

    def keep(self, items: list[dict]) -> int:
        """Add or rename each item; returns how many changed."""
        changed = 0
        for item in items:
            row = self.session.get(self.model, item["code"])
            if row is None:
                self.session.add(self.model(code=item["code"], names=item["names"]))
                changed += 1
            elif row.names != item["names"]:
                row.names = item["names"]
                changed += 1
        self.session.flush()
        return changed


class BaseAmounts:
    """The base calculation amount (BHM) in tiyin from each day it took effect."""

    def __init__(self, session: Session):
        self.session = session

    def all(self) -> list[tuple]:
        """(day it took effect, tiyin), oldest first."""
        return [(row.effective_from, row.amount_tiyin)
                for row in self.session.scalars(select(BaseAmount).order_by(BaseAmount.effective_from))]

    def keep(self, values: list[dict], actor: str, now) -> int:
        """Store the values not yet recorded as they are; returns how many changed."""
        changed = 0
        for value in values:
            row = self.session.get(BaseAmount, value["effective_from"])
            if row is None:
                self.session.add(BaseAmount(effective_from=value["effective_from"], amount_tiyin=value["amount_tiyin"],
                                            actor=actor, recorded_at=now))
                changed += 1
            elif row.amount_tiyin != value["amount_tiyin"]:
                row.amount_tiyin, row.actor, row.recorded_at = value["amount_tiyin"], actor, now
                changed += 1
        self.session.flush()
        return changed


class Changes:
    """The audit trail: every change of a service and who made it."""

    def __init__(self, session: Session):
        self.session = session

    def record(self, row: PublicService, actor: str) -> None:
        self.session.add(CatalogueChange(code=row.code, version=row.version, state=row.state, actor=actor,
                                         occurred_at=row.updated_at))

    def of(self, code: str) -> list[CatalogueChange]:
        """The service's changes, oldest first."""
        return list(self.session.scalars(select(CatalogueChange).where(CatalogueChange.code == code)
                                         .order_by(CatalogueChange.id)))
