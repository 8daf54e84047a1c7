"""Intake's unit of work costs its hot path no round trip: on PostgreSQL a submission's application,
history entry and event are one statement, and the unit of work's commit sends nothing after it."""
import pytest
from sqlalchemy import event
from psycopg2.extensions import cursor as PsycopgCursor

from oss_common import database
from oss_common.config import PROJECT_ROOT
from oss_common.regions import get_region
from services.intake import use_cases
from services.intake.commands import SubmitApplication
from services.intake.unit_of_work import IntakeUnitOfWork
from tests.unit.test_intake_use_cases import DEFINITION, body

SENT = []


class CountingCursor(PsycopgCursor):
    def execute(self, query, variables=None):
        SENT.append(query if isinstance(query, str) else query.decode())
        return super().execute(query, variables)


@pytest.fixture
def intake_session(databases):
    if databases.backend != "postgresql":
        pytest.skip("the single-statement submission is PostgreSQL's")
    url = databases.new("roundtrips")
    database.upgrade(PROJECT_ROOT / "services" / "intake" / "migrations", url)
    engine = database.get_engine(url)
    transactions = []
    event.listen(engine, "connect", lambda connection, _record: setattr(connection, "cursor_factory", CountingCursor))
    event.listen(engine, "begin", lambda connection: transactions.append(connection))
    session = database.session_factory(url)()
    yield session, transactions
    session.close()
    database.dispose_engines()


def test_a_submission_is_one_statement_and_its_commit_sends_nothing(intake_session):
    session, transactions = intake_session
    catalogue = type("Catalogue", (), {"get": staticmethod({DEFINITION["code"]: DEFINITION}.get)})()
    jizzakh = get_region("jizzakh")
    use_cases.submit(IntakeUnitOfWork(session, catalogue, jizzakh), SubmitApplication(body()))  # prepares on its connection
    SENT.clear()
    application, created = use_cases.submit(IntakeUnitOfWork(session, catalogue, jizzakh),
                                            SubmitApplication(body(attributes={"pages": 5})))
    assert created and application.id
    writes = [query for query in SENT if "tracking_sequences" not in query]
    assert len(writes) == 1 and writes[0].startswith("EXECUTE oss_"), SENT  # the CTE: application, history, outbox
    assert len(SENT) <= 2  # and at most the tracking counter, unless this process's block still had a number
    assert transactions == []  # no BEGIN, no COMMIT: the session never opened a transaction
