"""The catalogue's unit of work: one change's session, its repositories (services, agencies, groups, the
audit trail, the base calculation amount) and the `national.catalogue.*` events it raises, committed together once."""
from sqlalchemy.orm import Session

from oss_common.events import NATIONAL
from oss_common.unit_of_work import SqlUnitOfWork
from services.catalogue.models import Agency, Group, OutboxEvent
from services.catalogue.repository import BaseAmounts, Changes, NamedCodes, Services

PRODUCER = "catalogue"


class CatalogueUnitOfWork(SqlUnitOfWork):
    def __init__(self, session: Session):
        super().__init__(session, OutboxEvent, NATIONAL, PRODUCER)
        self.services = Services(session)
        self.agencies = NamedCodes(session, Agency)
        self.groups = NamedCodes(session, Group)
        self.changes = Changes(session)
        self.base_amounts = BaseAmounts(session)
