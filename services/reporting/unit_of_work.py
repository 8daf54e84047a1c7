"""Reporting's unit of work: the read model's session and repository, committed once per block. Reporting
publishes no events, so there is no outbox to write."""
from sqlalchemy.orm import Session

from oss_common.events import NATIONAL
from oss_common.unit_of_work import UnitOfWork
from services.reporting.repository import ReadModel


class ReportingUnitOfWork(UnitOfWork):
    def __init__(self, session: Session):
        super().__init__(NATIONAL, "reporting")
        self.session = session
        self.read_model = ReadModel(session)

    def _commit(self) -> None:
        if self.events:
            raise RuntimeError("reporting publishes no events")
        self.session.commit()

    def _rollback(self) -> None:
        self.session.rollback()
