"""Service classes as single workers (nameko's worker_factory), on an in-memory SQLite session:
entrypoint logic without a broker."""
from datetime import datetime

import pytest
from marshmallow import ValidationError
from nameko.testing.services import worker_factory
from prometheus_client import REGISTRY
from sqlalchemy import create_engine, select
from sqlalchemy.orm import sessionmaker

from oss_common.auth import CATALOGUE_ADMIN, OFFICER, OPERATOR, Forbidden, Principal
from oss_common.events import utc_now
from oss_common.regions import get_region
from services.catalogue.models import Base as CatalogueBase, CatalogueChange, OutboxEvent as CatalogueOutbox
from services.catalogue.service import CatalogueService
from services.intake.exceptions import ApplicationInvalid, ExtensionInvalid, ServiceNotAvailable, TransitionRejected
from services.intake.models import Application, Base as IntakeBase, OutboxEvent as IntakeOutbox
from services.intake import use_cases, views
from services.intake.commands import SubmitApplication
from services.intake.schemas import SubmissionSchema
from services.intake.service import IntakeService
from tests.conftest import CallerAs


OPERATOR_AT_DESK = Principal("desk", OPERATOR, region="jizzakh", centres=("jizzakh-city",))
OFFICER_ALIYEV = Principal("aliyev", OFFICER, region="jizzakh", agencies=("oss-centre",))


def memory_session(base):
    engine = create_engine("sqlite://")
    base.metadata.create_all(engine)
    return sessionmaker(bind=engine, expire_on_commit=False)()


L = {"uz": "x", "ru": "x", "en": "x"}
DEFINITION = {
    "code": "photocopying", "version": 3, "state": "published", "regions": ["jizzakh"],
    "agency": {"code": "oss-centre", "names": L}, "names": {"uz": "Nusxa", "ru": "Копия", "en": "Copy"},
    "deadline_working_days": 2,
    "required_documents": [{"code": "identity-document", "names": L}],
    "attributes": [{"code": "pages", "datatype": "number", "required": True, "variable": True, "order": 1}],
}


class FakeCatalogue:
    region = "jizzakh"
    region_record = get_region("jizzakh")

    def __init__(self, *definitions):
        self.definitions = {definition["code"]: definition for definition in definitions}

    def get(self, code):
        return self.definitions.get(code)


def submission(**overrides):
    body = {"service_code": "photocopying", "district": "1708401", "documents": ["identity-document"],
            "attributes": {"pages": 2},
            "applicant": {"pinfl": "31234567890123", "full_name": "A B", "phone": "+998901234567",
                          "language": "ru", "channel": "sms"}}
    body.update(overrides)
    return body


@pytest.fixture
def intake():
    session = memory_session(IntakeBase)
    return worker_factory(IntakeService, db=session, catalogue=FakeCatalogue(DEFINITION),
                          caller=CallerAs(OPERATOR_AT_DESK, OFFICER_ALIYEV, region="jizzakh"), clock=utc_now)


def test_submission_stores_the_application_and_its_event_together(intake):
    view = intake.submit_application(submission())
    assert view["tracking_number"].startswith("JI-") and view["status"] == "submitted"
    assert view["centre"] == "jizzakh-city"
    events = intake.db.scalars(select(IntakeOutbox)).all()
    assert [event.routing_key for event in events] == ["jizzakh.application.submitted"]
    assert events[0].payload["data"]["service_name"]["ru"] == "Копия"
    assert "31234567890123" not in str(events[0].payload)


@pytest.mark.parametrize("body,error,field", [
    (submission(service_code="unknown-service"), ServiceNotAvailable, "service_code"),
    (submission(documents=[]), ApplicationInvalid, "documents"),
    (submission(attributes={}), ApplicationInvalid, "attributes.pages"),
    (submission(district="1714401"), ApplicationInvalid, "district"),
])
def test_refused_submission_writes_nothing(intake, body, error, field):
    with pytest.raises(error) as raised:
        intake.submit_application(body)
    assert field in raised.value.fields
    intake.db.rollback()
    assert intake.db.scalars(select(Application)).all() == []
    assert intake.db.scalars(select(IntakeOutbox)).all() == []


def test_schema_errors_surface_before_any_lookup(intake):
    with pytest.raises(ValidationError):
        intake.submit_application(submission(applicant={"pinfl": "1"}))


def test_transition_records_who_and_raises_an_event(intake):
    number = intake.submit_application(submission())["tracking_number"]
    view = intake.transition(number, "accepted")
    assert view["status"] == "accepted" and view["history"][-1]["actor"] == "officer:aliyev"
    with pytest.raises(TransitionRejected):
        intake.transition(number, "issued")
    routing_keys = [event.routing_key for event in intake.db.scalars(select(IntakeOutbox))]
    assert routing_keys == ["jizzakh.application.submitted", "jizzakh.application.status_changed"]


def test_catalogue_upsert_bumps_version_only_on_change():
    session = memory_session(CatalogueBase)
    catalogue = worker_factory(CatalogueService, db=session, caller=CallerAs(Principal("editor", CATALOGUE_ADMIN)))
    catalogue.load_catalogue({
        "groups": [{"code": "office-services", "names": L}],
        "agencies": [{"code": "oss-centre", "names": L}],
        "services": [{"code": "photocopying", "group": "office-services", "agency": "oss-centre", "names": L,
                      "descriptions": L, "fee": {"free": False, "bca_multiple": 0.002},
                      "deadline_working_days": 1, "regions": "all"}],
    })
    first = catalogue.get_service("photocopying")
    assert first["version"] == 1 and first["state"] == "published" and len(first["regions"]) == 14
    definition = {key: first[key] for key in ("code", "names", "descriptions", "group", "fee", "deadline_working_days", "regions")}
    definition["agency"] = "oss-centre"
    assert catalogue.upsert_service(definition)["version"] == 1
    definition["deadline_working_days"] = 2
    assert catalogue.upsert_service(definition)["version"] == 2
    assert catalogue.retire_service("photocopying")["state"] == "retired"
    types = [event.event_type for event in session.scalars(select(CatalogueOutbox))]
    assert types == ["catalogue.service_published", "catalogue.service_published", "catalogue.service_retired"]
    assert {change.actor for change in session.scalars(select(CatalogueChange))} == {"catalogue-admin:editor"}


def test_catalogue_writes_over_rpc_need_a_catalogue_admin():
    session = memory_session(CatalogueBase)
    for caller in (CallerAs(OPERATOR_AT_DESK, OFFICER_ALIYEV), CallerAs(Principal("a", "analyst"))):
        catalogue = worker_factory(CatalogueService, db=session, caller=caller)
        for call in (lambda: catalogue.load_catalogue({"groups": [], "agencies": [], "services": []}),
                     lambda: catalogue.upsert_service({"code": "x"}), lambda: catalogue.publish_service("x"),
                     lambda: catalogue.retire_service("x")):
            with pytest.raises(Forbidden):
                call()
    assert session.scalars(select(CatalogueOutbox)).all() == []


def test_intake_rpc_checks_its_caller_as_http_does(intake):
    number = intake.submit_application(submission())["tracking_number"]
    elsewhere = Principal("desk", OPERATOR, region="jizzakh", centres=("arnasoy",))
    other_region = Principal("desk", OPERATOR, region="namangan", centres=("namangan-city",))
    for caller in (CallerAs(elsewhere, region="jizzakh"), CallerAs(other_region, region="jizzakh")):
        intake.caller = caller
        with pytest.raises(Forbidden):
            intake.get_application(number)
        with pytest.raises(Forbidden):
            intake.transition(number, "accepted")
        with pytest.raises(Forbidden):
            intake.export_events()


@pytest.mark.parametrize("submitted_at,due_date", [
    # Thu 19 March 2026 + 2 working days: Eid (Fri), Navruz (Sat), Sunday and Navruz observed (Mon) skipped.
    ("2026-03-19T06:00:00+00:00", "2026-03-25"),
    # Fri 4 December + 2: the weekend and Constitution Day (Tue 8 December) skipped.
    ("2026-12-04T06:00:00+00:00", "2026-12-09"),
    # 21:00 UTC on Thu 3 December is already Friday the 4th in Tashkent.
    ("2026-12-03T21:00:00+00:00", "2026-12-09"),
    # Fri 11 December + 2: Saturday the 12th is a working day that year (its day off moved to the 31st).
    ("2026-12-11T06:00:00+00:00", "2026-12-14"),
])
def test_the_due_date_counts_uzbekistans_working_days(intake, submitted_at, due_date):
    application, created = submit_at(intake, submitted_at)
    assert created and views.application_view(application)["due_date"] == due_date


def submit_at(intake, submitted_at):
    command = SubmitApplication(SubmissionSchema().load(submission()), submitted_at=datetime.fromisoformat(submitted_at))
    return use_cases.submit(intake.unit_of_work(), command)


def breaches():
    return REGISTRY.get_sample_value("oss_sla_breaches_total", {"region": "jizzakh", "service_code": "photocopying"}) or 0.0


def decided(approved_or_rejected):
    return REGISTRY.get_sample_value("oss_applications_decided_total", {
        "region": "jizzakh", "service_code": "photocopying", "decision": approved_or_rejected}) or 0.0


def test_a_decision_after_the_due_date_counts_an_sla_breach_and_one_on_time_does_not(intake):
    on_time = intake.submit_application(submission())["tracking_number"]
    late, _ = submit_at(intake, "2026-01-05T06:00:00+00:00")  # due 7 January
    breaches_before, approved_before, rejected_before = breaches(), decided("approved"), decided("rejected")
    for number, decision in ((on_time, "approved"), (late.tracking_number, "rejected")):
        for status in ("accepted", "in_review", decision):
            intake.transition(number, status, reason="documents checked")
    assert breaches() == breaches_before + 1
    assert (decided("approved"), decided("rejected")) == (approved_before + 1, rejected_before + 1)


def test_the_clock_over_rpc_an_officers_extension_and_a_centre_heads_closure():
    session = memory_session(IntakeBase)
    clocked = {**DEFINITION, "clock": {"stops_on_return": True, "extension_working_days": 3, "max_extensions": 1}}
    head = Principal("head", "centre-head", region="jizzakh", centres=("jizzakh-city",))
    intake = worker_factory(IntakeService, db=session, catalogue=FakeCatalogue(clocked),
                            caller=CallerAs(OPERATOR_AT_DESK, OFFICER_ALIYEV, head, region="jizzakh"), clock=utc_now)
    filed = intake.submit_application(submission())
    number = filed["tracking_number"]
    with pytest.raises(ValidationError):
        intake.extend_deadline(number, 2, "")
    with pytest.raises(ExtensionInvalid) as refused:
        intake.extend_deadline(number, 4, "expert opinion awaited")
    assert "working_days" in refused.value.fields
    extended = intake.extend_deadline(number, 2, "expert opinion awaited")
    assert extended["clock"]["extensions"] == 1 and extended["history"][-1]["clock"] == "extended"
    assert extended["history"][-1]["actor"] == "officer:aliyev" and extended["due_date"] > filed["due_date"]
    closure = intake.declare_closure("jizzakh-city", extended["due_date"], "power cut")
    assert closure["declared_by"] == "centre-head:head" and closure["applications_moved"] == 1
    with pytest.raises(Forbidden):
        intake.declare_closure("zaamin", extended["due_date"], "power cut")
    types = [event.event_type for event in intake.db.scalars(select(IntakeOutbox))]
    assert types == ["application.submitted", "application.deadline_extended", "application.due_date_moved"]
