"""The catalogue's unit of work: one change's session and the `national.catalogue.*` events it raises,
committed together once."""
from sqlalchemy.orm import Session

from oss_common.events import NATIONAL
from oss_common.unit_of_work import SqlUnitOfWork
from services.catalogue.models import OutboxEvent

PRODUCER = "catalogue"


class CatalogueUnitOfWork(SqlUnitOfWork):
    def __init__(self, session: Session):
        super().__init__(session, OutboxEvent, NATIONAL, PRODUCER)
