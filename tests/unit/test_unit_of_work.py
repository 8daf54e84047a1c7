"""The unit of work every service runs its use cases in (oss_common/unit_of_work.py): state and events
commit together, once; leaving without a commit keeps neither."""
import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import sessionmaker

from oss_common.unit_of_work import AlreadyCommitted
from services.catalogue import use_cases
from services.catalogue.commands import LoadCatalogue
from services.catalogue.exceptions import UnknownReference
from services.catalogue.models import Agency, Base, Group, OutboxEvent, PublicService
from services.catalogue.unit_of_work import CatalogueUnitOfWork
from services.reporting.unit_of_work import ReportingUnitOfWork

L = {"uz": "x", "ru": "x", "en": "x"}


@pytest.fixture
def session():
    engine = create_engine("sqlite://")
    Base.metadata.create_all(engine)
    return sessionmaker(bind=engine, expire_on_commit=False)()


def service(code, agency="oss-centre"):
    return {"code": code, "group": "office-services", "agency": agency, "names": L, "descriptions": L,
            "fee": {"free": True}, "deadline_working_days": 1, "regions": ["jizzakh"], "state": "published"}


def document(*services):
    return {"groups": [{"code": "office-services", "names": L}], "agencies": [{"code": "oss-centre", "names": L}],
            "services": list(services)}


def test_the_state_and_its_events_commit_together(session):
    summary = use_cases.load_catalogue(CatalogueUnitOfWork(session),
                                       LoadCatalogue(document(service("photocopying")), "catalogue-admin:editor"))
    assert summary["services_changed"] == 1
    session.rollback()  # nothing is left to undo: it was committed
    assert [row.code for row in session.scalars(select(PublicService))] == ["photocopying"]
    assert [row.routing_key for row in session.scalars(select(OutboxEvent))] == ["national.catalogue.service_published"]


def test_a_failure_keeps_neither_the_state_nor_its_events(session):
    with pytest.raises(UnknownReference):
        use_cases.load_catalogue(CatalogueUnitOfWork(session), LoadCatalogue(
            document(service("photocopying"), service("notary", agency="nobody")), "catalogue-admin:editor"))
    for model in (PublicService, OutboxEvent, Agency, Group):
        assert session.scalars(select(model)).all() == []


def test_leaving_without_a_commit_rolls_back_and_drops_the_events(session):
    with CatalogueUnitOfWork(session) as uow:
        session.add(Group(code="office-services", names=L))
        uow.emit("catalogue.service_drafted", {"code": "x"})
    assert uow.events == [] and session.scalars(select(Group)).all() == []


def test_a_unit_of_work_commits_once(session):
    with CatalogueUnitOfWork(session) as uow:
        uow.commit()
        with pytest.raises(AlreadyCommitted):
            uow.commit()


def test_reporting_publishes_nothing(session):
    with ReportingUnitOfWork(session) as uow:
        uow.emit("application.submitted", {})
        with pytest.raises(RuntimeError, match="publishes no events"):
            uow.commit()
