"""Intake's use cases with a fake unit of work (as cosmicpython tests its handlers): no database, no broker."""
from datetime import datetime, timezone
from types import SimpleNamespace

import pytest

from oss_common import application_events
from oss_common.auth import OFFICER, OPERATOR, Forbidden, Principal
from oss_common.regions import get_region
from oss_common.unit_of_work import AlreadyCommitted, UnitOfWork
from services.intake import use_cases
from services.intake.commands import SubmitApplication, Transition
from services.intake.exceptions import (
    ApplicationInvalid, ApplicationNotFound, IdempotencyKeyReused, ServiceNotAvailable, TransitionRejected,
)
from services.intake.repository import IdempotencyKeyTaken
from services.intake.schemas import SubmissionSchema
from tests.unit.test_services_with_worker_factory import DEFINITION, submission

MONDAY = datetime(2026, 12, 14, 6, 0, tzinfo=timezone.utc)


class FakeApplications:
    def __init__(self):
        self.stored = {}
        self.staged = None
        self.key_race = False  # the next flush finds the key taken by a concurrent submission

    def get(self, tracking_number, for_update=False):
        return self.stored.get(tracking_number)

    def by_idempotency_key(self, key):
        return next((a for a in self.stored.values() if a.idempotency_key == key), None)

    def key_taken(self, key):
        return self.by_idempotency_key(key) is not None

    def add(self, values, first_change, invoice=None):
        self.staged = SimpleNamespace(**values, id=None, history=[SimpleNamespace(**first_change)],
                                      invoice=SimpleNamespace(**invoice) if invoice else None)
        return self.staged

    def append_history(self, application, **change):
        application.history.append(SimpleNamespace(**change))

    def flush(self, outbox_rows):
        if self.staged is not None:
            if self.key_race:
                winner = SimpleNamespace(**{**vars(self.staged), "tracking_number": "JI-2026-999999"})
                self.stored[winner.tracking_number] = winner
                self.staged = None
                raise IdempotencyKeyTaken(winner.idempotency_key)
            self.staged.id = len(self.stored) + 1
            self.stored[self.staged.tracking_number] = self.staged
            self.staged = None


class FakeTrackingNumbers:
    def __init__(self):
        self.last = 0

    def take(self, year):
        self.last += 1
        return self.last


class FakeUnitOfWork(UnitOfWork):
    def __init__(self, region=get_region("jizzakh"), *definitions):
        super().__init__(region.slug, f"intake_{region.slug}")
        self.region = region
        self.catalogue = SimpleNamespace(get={d["code"]: d for d in definitions or (DEFINITION,)}.get)
        self.applications = FakeApplications()
        self.tracking_numbers = FakeTrackingNumbers()
        self.invoices = SimpleNamespace(of_application=lambda tracking_number, for_update=False: None)
        self.pay_url = lambda invoice: None
        self.published = []  # what reached the outbox
        self.commits = 0

    def _commit(self):
        self.applications.flush(self.events)
        self.published.extend(self.events)
        self.commits += 1

    def _rollback(self):
        self.applications.staged = None

    def again(self):
        """A new unit of work on the same stored state (the next request)."""
        self.committed, self.events = False, []
        return self


def body(**overrides):
    return SubmissionSchema().load(submission(**overrides))


def submit(uow, **command):
    return use_cases.submit(uow, SubmitApplication(command.pop("submission", None) or body(), submitted_at=MONDAY, **command))


def test_a_submission_is_numbered_stored_and_announced_in_one_commit():
    uow = FakeUnitOfWork()
    application, created = submit(uow)
    assert created and uow.commits == 1
    assert application.tracking_number == "JI-2026-000001" and application.centre == "jizzakh-city"
    assert application.due_date.isoformat() == "2026-12-16" and application.history[0].actor == "centre:jizzakh-city"
    (event,) = uow.published
    assert event["type"] == "application.submitted" and event["schema_version"] == application_events.VERSION
    fact = application_events.load(event)
    assert (fact["open"], fact["decided"], fact["final"]) == (True, False, False)
    assert "31234567890123" not in str(event) and "A B" not in str(event)


@pytest.mark.parametrize("submission,error,field", [
    (body(service_code="unknown-service"), ServiceNotAvailable, "service_code"),
    (body(documents=[]), ApplicationInvalid, "documents"),
    (body(attributes={}), ApplicationInvalid, "attributes.pages"),
    (body(centre="no-such-centre"), ApplicationInvalid, "centre"),
])
def test_a_refused_submission_stores_nothing_and_takes_no_number(submission, error, field):
    uow = FakeUnitOfWork()
    with pytest.raises(error) as refused:
        submit(uow, submission=submission)
    assert field in refused.value.fields
    assert (uow.commits, uow.published, uow.applications.stored, uow.tracking_numbers.last) == (0, [], {}, 0)


def test_the_same_idempotency_key_replays_the_same_body_and_refuses_another():
    uow = FakeUnitOfWork()
    first, _ = submit(uow, idempotency_key="k-1")
    again, created = submit(uow.again(), idempotency_key="k-1")
    assert again is first and not created and uow.commits == 1
    with pytest.raises(IdempotencyKeyReused):
        submit(uow.again(), idempotency_key="k-1", submission=body(attributes={"pages": 3}))


def test_a_key_taken_by_a_concurrent_submission_replays_the_winner():
    uow = FakeUnitOfWork()
    uow.applications.key_race = True
    application, created = submit(uow, idempotency_key="k-2")
    assert not created and application.tracking_number == "JI-2026-999999"


def test_an_operator_files_at_its_own_centres_only():
    elsewhere = Principal("o", OPERATOR, "jizzakh", centres=("zaamin",))
    uow = FakeUnitOfWork()
    application, _ = submit(uow, caller=elsewhere, actor="operator:o")
    assert application.centre == "zaamin" and application.history[0].actor == "operator:o"  # its first, not the main
    with pytest.raises(Forbidden):
        submit(uow.again(), caller=elsewhere, submission=body(centre="jizzakh-city"))


def submitted(uow):
    return submit(uow)[0].tracking_number


def move(uow, number, to, reason=None, caller=None):
    return use_cases.transition(uow.again(), Transition(number, to, "officer:f", reason, caller, at=MONDAY))


def test_a_transition_moves_records_and_announces_in_one_commit():
    uow = FakeUnitOfWork()
    number = submitted(uow)
    application = move(uow, number, "accepted")
    assert application.status == "accepted" and application.history[-1].from_status == "submitted"
    assert uow.commits == 2
    fact = application_events.load(uow.published[-1])
    assert (fact["status"], fact["previous_status"], fact["actor"]) == ("accepted", "submitted", "officer:f")
    move(uow, number, "in_review")
    decided = application_events.load(move(uow, number, "rejected", "no stamp") and uow.published[-1])
    assert (decided["open"], decided["decided"], decided["final"], decided["reason"]) == (False, True, False, "no stamp")
    assert decided["decided_on_time"] is True
    issued = application_events.load(move(uow, number, "issued") and uow.published[-1])
    assert (issued["open"], issued["decided"], issued["final"]) == (False, False, True)


def test_a_refused_transition_commits_nothing():
    uow = FakeUnitOfWork()
    number = submitted(uow)
    with pytest.raises(TransitionRejected) as refused:
        move(uow, number, "issued")
    assert refused.value.fields == {"to": ["allowed from submitted: accepted, returned_for_correction, withdrawn"]}
    with pytest.raises(ApplicationInvalid) as refused:
        move(uow, number, "withdrawn")
    assert "reason" in refused.value.fields
    with pytest.raises(ApplicationNotFound):
        move(uow, "JI-2026-000404", "accepted")
    assert uow.commits == 1 and uow.applications.get(number).status == "submitted"


def test_an_officer_moves_only_its_agencies_applications():
    uow = FakeUnitOfWork()
    number = submitted(uow)
    with pytest.raises(Forbidden):
        move(uow, number, "accepted", caller=Principal("f", OFFICER, "jizzakh", agencies=("khokimiyat",)))
    assert uow.commits == 1
    assert move(uow, number, "accepted", caller=Principal("f", OFFICER, "jizzakh", agencies=("oss-centre",))).status == "accepted"


def test_a_unit_of_work_commits_once():
    uow = FakeUnitOfWork()
    submitted(uow)
    with pytest.raises(AlreadyCommitted):
        uow.commit()


def test_a_region_without_the_service_refuses_it():
    namangan = FakeUnitOfWork(get_region("namangan"))
    with pytest.raises(ServiceNotAvailable, match="not offered in namangan"):
        submit(namangan, submission=body(district="1408401"))
