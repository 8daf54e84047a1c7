"""Intake's use cases with a fake unit of work (as cosmicpython tests its handlers): no database, no broker."""
from datetime import date, datetime, timedelta, timezone
from types import SimpleNamespace

import pytest

from oss_common import application_events
from oss_common.auth import CENTRE_HEAD, OFFICER, OPERATOR, REGION_ADMIN, Forbidden, Principal
from oss_common.regions import get_region
from oss_common.unit_of_work import AlreadyCommitted, UnitOfWork
from services.intake import use_cases
from services.intake.commands import DeclareClosure, ExtendDeadline, SubmitApplication, Transition
from services.intake.domain import AWAITING_DECISION
from services.intake.exceptions import (
    ApplicationInvalid, ApplicationNotFound, ClosureExists, ExtensionInvalid, ExtensionNotAllowed, IdempotencyKeyReused,
    ServiceNotAvailable, TransitionRejected, UnknownCentre,
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

    def open_at(self, centre, due_from):
        return [a for a in self.stored.values() if a.centre == centre and a.status in AWAITING_DECISION
                and (a.due_date >= due_from or a.clock_paused_on is not None)]

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


class FakeClosures:
    def __init__(self):
        self.days = {}  # (centre, day) -> closure

    def after(self, centre, day):
        return frozenset(d for (c, d) in self.days if c == centre and d > day)

    def get(self, centre, day):
        return self.days.get((centre, day))

    def add(self, **values):
        closure = self.days[(values["centre"], values["day"])] = SimpleNamespace(**values)
        return closure


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
        self.closures = FakeClosures()
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


# The legal clock. MONDAY is 14 December 2026; photocopying (DEFINITION) has 2 working days: due Wed 16.
CLOCKED = {**DEFINITION, "deadline_working_days": 10,
           "clock": {"stops_on_return": True, "extension_working_days": 3, "max_extensions": 1}}


def day(n):
    """06:00 UTC (11:00 in Tashkent) of December 2026's day n."""
    return MONDAY + timedelta(days=n - 14)


def test_returning_stops_the_clock_and_resubmission_resumes_it_with_the_days_left():
    uow = FakeUnitOfWork(get_region("jizzakh"), CLOCKED)
    number = submitted(uow)
    # Mon 14 Dec + 10: 15, 16, 17, 18, 21, 22, 23, 24, 25, 28 December
    assert uow.applications.get(number).due_date == date(2026, 12, 28)
    use_cases.transition(uow.again(), Transition(number, "returned_for_correction", "officer:f", "no stamp", at=day(16)))
    application = uow.applications.get(number)
    assert application.clock_paused_on == date(2026, 12, 16) and application.working_days_left == 8
    paused = application_events.load(uow.published[-1])
    assert (paused["clock_change"], paused["clock_paused"], paused["working_days_left"]) == ("paused", True, 8)
    assert application.history[-1].clock == "paused" and application.history[-1].working_days == 8
    use_cases.transition(uow.again(), Transition(number, "resubmitted", "operator:o", None, at=day(21)))
    # 8 after Mon 21: 22, 23, 24, 25, 28, 29, 30, (31 off, 1-2 Jan holidays) 4 Jan 2027
    assert application.due_date == date(2027, 1, 4) and application.clock_paused_on is None
    resumed = application_events.load(uow.published[-1])
    assert (resumed["clock_change"], resumed["clock_paused"], resumed["due_date"]) == ("resumed", False, date(2027, 1, 4))


def test_a_service_whose_clock_runs_on_return_keeps_its_due_date():
    running = {**CLOCKED, "clock": {"stops_on_return": False, "extension_working_days": 0, "max_extensions": 1}}
    uow = FakeUnitOfWork(get_region("jizzakh"), running)
    number = submitted(uow)
    use_cases.transition(uow.again(), Transition(number, "returned_for_correction", "officer:f", "no stamp", at=day(16)))
    use_cases.transition(uow.again(), Transition(number, "resubmitted", "operator:o", None, at=day(21)))
    assert uow.applications.get(number).due_date == date(2026, 12, 28)
    assert [application_events.load(event)["clock_change"] for event in uow.published] == [None, None, None]


def extend(uow, number, days, reason="expert opinion awaited", caller=None):
    return use_cases.extend_deadline(uow.again(), ExtendDeadline(number, days, reason, "officer:f", caller, at=day(15)))


def test_an_extension_moves_the_due_date_once_with_who_and_why():
    uow = FakeUnitOfWork(get_region("jizzakh"), CLOCKED)
    number = submitted(uow)
    application = extend(uow, number, 3)
    assert application.due_date == date(2027, 1, 4)  # 28 Dec + 3: 29, 30, (31 off, 1 holiday, 2-3 weekend) 4 January
    event = uow.published[-1]
    fact = application_events.load(event)
    assert event["type"] == "application.deadline_extended"
    assert (fact["extended_by"], fact["actor"], fact["reason"], fact["extensions"]) == (3, "officer:f", "expert opinion awaited", 1)
    assert (application.history[-1].clock, application.history[-1].from_status, application.history[-1].to_status) == \
        ("extended", "submitted", "submitted")
    with pytest.raises(ExtensionNotAllowed) as refused:
        extend(uow, number, 1)
    assert "extensions" in refused.value.fields and refused.value.status == 409
    assert application.due_date == date(2027, 1, 4) and len(uow.published) == 2


@pytest.mark.parametrize("days,reason,error,field", [
    (4, "why", ExtensionInvalid, "working_days"),
    (2, " ", ApplicationInvalid, "reason"),
])
def test_an_extension_outside_the_rules_names_the_field_and_changes_nothing(days, reason, error, field):
    uow = FakeUnitOfWork(get_region("jizzakh"), CLOCKED)
    number = submitted(uow)
    with pytest.raises(error) as refused:
        extend(uow, number, days, reason)
    assert field in refused.value.fields and refused.value.status == 422
    assert uow.applications.get(number).due_date == date(2026, 12, 28) and uow.commits == 1


def test_a_decided_application_is_not_extended():
    uow = FakeUnitOfWork(get_region("jizzakh"), CLOCKED)
    number = submitted(uow)
    move(uow, number, "accepted")
    move(uow, number, "in_review")
    move(uow, number, "approved")
    with pytest.raises(ExtensionNotAllowed) as refused:
        extend(uow, number, 1)
    assert "status" in refused.value.fields


def close(uow, centre, on, caller=None):
    return use_cases.declare_closure(uow.again(), DeclareClosure(centre, on, "power cut", "region-admin:r", caller,
                                                                 at=day(17)))


def test_a_closure_day_moves_the_open_applications_of_that_centre_only():
    uow = FakeUnitOfWork(get_region("jizzakh"), CLOCKED)
    here = submitted(uow)
    there, _ = submit(uow.again(), submission=body(centre="zaamin"))
    closure, moved = close(uow, "jizzakh-city", date(2026, 12, 16))
    assert moved == 1 and closure.declared_by == "region-admin:r"
    assert uow.applications.get(here).due_date == date(2026, 12, 29)
    assert uow.applications.get(there.tracking_number).due_date == date(2026, 12, 28)
    event = uow.published[-1]
    assert event["type"] == "application.due_date_moved"
    assert application_events.load(event)["clock_change"] == "closure"
    later, _ = submit(uow.again())  # filed on Monday 14th after the closure of Wednesday 16th was declared
    assert later.due_date == date(2026, 12, 29)
    with pytest.raises(ClosureExists):
        close(uow, "jizzakh-city", date(2026, 12, 16))
    with pytest.raises(UnknownCentre):
        close(uow, "no-such-centre", date(2026, 12, 16))


def test_only_a_region_admin_or_the_centres_head_declares_a_closure():
    uow = FakeUnitOfWork(get_region("jizzakh"), CLOCKED)
    head = Principal("h", CENTRE_HEAD, "jizzakh", centres=("zaamin",))
    with pytest.raises(Forbidden):
        close(uow, "jizzakh-city", date(2026, 12, 16), caller=head)
    assert close(uow, "zaamin", date(2026, 12, 16), caller=head)[1] == 0
    assert close(uow, "jizzakh-city", date(2026, 12, 16), caller=Principal("r", REGION_ADMIN, "jizzakh"))[1] == 0
