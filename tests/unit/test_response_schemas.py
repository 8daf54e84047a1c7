"""What the main endpoints answer agrees with their OpenAPI document: each entrypoint is called as HTTP calls it
(single workers on SQLite, as test_services_with_worker_factory.py builds them) and its JSON answer is checked
against the response schema the document gives for that path, method and status (the schemas views.py dumps with)."""
import hashlib
import json

import pytest
from jsonschema import Draft202012Validator
from nameko.testing.services import worker_factory
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from oss_common.auth import ANALYST, CATALOGUE_ADMIN, Principal
from oss_common.database import session_factory, upgrade
from oss_common.events import utc_now
from oss_common.http import PRINCIPAL_KEY
from oss_common.openapi import openapi_document
from services.catalogue.models import Base as CatalogueBase
from services.catalogue.service import CatalogueService
from services.intake.models import CatalogueEntry
from services.intake.open311.dependencies import Open311Settings
from services.intake.service import IntakeService
from services.notifications.models import Base as NotificationsBase
from services.notifications.service import NotificationService
from services.reporting import views as reporting_views
from services.reporting.service import NationalReportingService, ReportingService
from tests.conftest import CallerAs
from tests.unit.test_open311 import DEFINITION as OPEN311_SERVICE
from tests.unit.test_notifications_service import application_event, make_service
from tests.unit.test_reporting_projection import MIGRATIONS, _fee_event, apply_all, history
from tests.unit.test_services_with_worker_factory import (
    DEFINITION, L, OFFICER_ALIYEV, OPERATOR_AT_DESK as DESK, FakeCatalogue, IntakeBase, memory_session, submission,
)

ADMIN = Principal("editor", CATALOGUE_ADMIN)


def request(caller, method="GET", query=None, body=None):
    environ = EnvironBuilder(method=method, query_string=query, json=body).get_environ()
    environ[PRINCIPAL_KEY] = caller
    return Request(environ)


def agrees(service_cls, method, path, answer):
    """`answer` (what the entrypoint returned) as JSON, checked against the document's schema for it."""
    status, payload = (answer[0], answer[-1]) if isinstance(answer, tuple) else (200, answer)
    document = openapi_document(service_cls)
    schema = document["paths"][path][method.lower()]["responses"][str(status)]["content"]["application/json"]["schema"]
    body = json.loads(json.dumps(payload, default=str))
    validator = Draft202012Validator({**_json_schema(schema), "components": _json_schema(document["components"])})
    problems = [f"{'/'.join(map(str, error.absolute_path))}: {error.message}" for error in validator.iter_errors(body)]
    assert problems == [], f"{method} {path}"
    return body


def _json_schema(node):
    """OpenAPI 3.0's `nullable` as JSON Schema's null type."""
    if isinstance(node, list):
        return [_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    converted = {key: _json_schema(value) for key, value in node.items() if key != "nullable"}
    return {"anyOf": [converted, {"type": "null"}]} if node.get("nullable") else converted


@pytest.fixture
def catalogue():
    service = worker_factory(CatalogueService, db=memory_session(CatalogueBase), caller=CallerAs(ADMIN))
    service.load_catalogue({
        "groups": [{"code": "office-services", "names": L}], "agencies": [{"code": "oss-centre", "names": L}],
        "base_amounts": [{"effective_from": "2025-08-01", "amount_tiyin": 41_200_000}],
        "services": [{"code": "photocopying", "group": "office-services", "agency": "oss-centre", "names": L,
                      "descriptions": L, "fee": {"free": False, "bca_multiple": 0.002, "collection": "desk"},
                      "deadline_working_days": 1, "regions": "all"}],
    })
    return service


def test_the_catalogues_answers_are_what_its_document_says(catalogue):
    listed = agrees(CatalogueService, "GET", "/api/v1/services",
                    catalogue.http_list_services(request(None, query="lang=ru")))
    assert listed["items"][0]["name"] == "x" and listed["items"][0]["updated_at"].endswith("Z")
    agrees(CatalogueService, "GET", "/api/v1/services/{code}", catalogue.http_get_service(request(None), "photocopying"))
    agrees(CatalogueService, "POST", "/api/v1/services/{code}/retire",
           catalogue.http_retire(request(ADMIN, "POST"), "photocopying"))
    changes = agrees(CatalogueService, "GET", "/api/v1/services/{code}/changes",
                     catalogue.http_changes(request(ADMIN), "photocopying"))
    assert [change["state"] for change in changes["items"]] == ["published", "retired"]
    agrees(CatalogueService, "GET", "/api/v1/groups", catalogue.http_groups(request(None, query="lang=en")))
    agrees(CatalogueService, "GET", "/api/v1/agencies", catalogue.http_agencies(request(None)))


def test_intakes_answers_are_what_its_document_says():
    intake = worker_factory(IntakeService, db=memory_session(IntakeBase), catalogue=FakeCatalogue(DEFINITION),
                            caller=CallerAs(DESK, OFFICER_ALIYEV, region="jizzakh"), clock=utc_now)
    filed = agrees(IntakeService, "POST", "/api/v1/applications",
                   intake.http_submit(request(DESK, "POST", body=submission())))
    number = filed["tracking_number"]
    assert filed["status_code"] and filed["history"][0]["to"] == "submitted"
    agrees(IntakeService, "GET", "/api/v1/applications/{tracking_number}", intake.http_get(request(DESK), number))
    moved = agrees(IntakeService, "POST", "/api/v1/applications/{tracking_number}/transitions",
                   intake.http_transition(request(OFFICER_ALIYEV, "POST", body={"to": "accepted"}), number))
    assert moved["history"][-1]["from"] == "submitted"
    page = agrees(IntakeService, "GET", "/api/v1/applications", intake.http_list(request(DESK)))
    assert page["total"] == 1 and "history" not in page["items"][0]


def test_notifications_answers_are_what_its_document_says():
    service = make_service(memory_session(NotificationsBase))
    service.on_application_event(application_event(channel="email"))
    answer = agrees(NotificationService, "GET", "/api/v1/deliveries",
                    service.http_deliveries(request(DESK, query="tracking=JI-2026-000001")))
    assert [item["status"] for item in answer["items"]] == ["sent"] and answer["items"][0]["sent_at"].endswith("Z")


def test_reportings_answers_are_what_its_document_says(tmp_path):
    url = f"sqlite:///{tmp_path / 'reporting.db'}"
    upgrade(MIGRATIONS, url)
    Session = session_factory(url)
    apply_all(Session, history("JI-2026-000001", "submitted", "accepted", "approved"))
    apply_all(Session, [_fee_event("submitted", 1, "awaiting_payment", "issued"),
                        _fee_event("paid", 2, "submitted", "paid", "cash")])
    with Session() as session:
        analyst = Principal("a", ANALYST)
        service = worker_factory(ReportingService, reader=session, caller=CallerAs(analyst))
        summary = agrees(ReportingService, "GET", "/api/v1/reports/summary", service.http_summary(request(analyst)))
        assert summary["totals"]["applications"] == 2
        agrees(ReportingService, "GET", "/api/v1/reports/sla", service.http_sla(request(analyst)))
        agrees(ReportingService, "GET", "/api/v1/reports/overdue", service.http_overdue(request(analyst)))
        fees = agrees(ReportingService, "GET", "/api/v1/reports/fees", service.http_fees(request(analyst)))
        assert fees["from"] is None and fees["totals"]["paid_tiyin"] == 8_240_000 and fees["rows"][0]["month"] == "2026-03"


class TwoRegions:
    """National reporting's view of the regions: Jizzakh answers (through JSON, as over RPC), Samarkand does not."""

    slugs = ["jizzakh", "samarkand"]

    def __init__(self, answers):
        self.answers = answers

    def __call__(self, method, *args):
        return {"jizzakh": json.loads(json.dumps(self.answers[method]))}, ["samarkand"]


def test_national_reportings_answers_are_what_its_document_says(tmp_path):
    url = f"sqlite:///{tmp_path / 'reporting.db'}"
    upgrade(MIGRATIONS, url)
    Session = session_factory(url)
    apply_all(Session, history("JI-2026-000001", "submitted", "accepted", "approved"))
    apply_all(Session, [_fee_event("submitted", 1, "awaiting_payment", "issued")])
    with Session() as session:
        answers = {"regional_summary": reporting_views.regional_summary(session),
                   "monthly": reporting_views.monthly(session, None, None, today=utc_now().date())}
    analyst = Principal("a", ANALYST)
    service = worker_factory(NationalReportingService, regions=TwoRegions(answers), caller=CallerAs(analyst))
    summary = agrees(NationalReportingService, "GET", "/api/v1/reports/summary",
                     service.http_summary(request(analyst, query="from=2026-01-01")))
    assert summary["from"] == "2026-01-01" and summary["partial"] and summary["missing"] == ["samarkand"]
    assert summary["totals"]["applications"] == 2 and summary["regions"][0]["region"] == "jizzakh"
    assert summary["fees"]["by_region"][0]["outstanding_tiyin"] == 8_240_000
    monthly = agrees(NationalReportingService, "GET", "/api/v1/reports/monthly", service.http_monthly(request(analyst)))
    assert monthly["from"] is None and monthly["regions"][0]["names"] and monthly["totals"][0]["submitted"] >= 1


FEE = {"fee_amounts": [{"effective_from": "2025-08-01", "amount_tiyin": 82_400}]}
PAID = {**DEFINITION, "code": "passport", "fee": {"free": False, "bca_multiple": 0.002}, **FEE}
OFFICE = {**DEFINITION, "code": "printing", "fee": {"free": False, "bca_multiple": 0.002, "collection": "desk"}, **FEE}


class NoGuessing:
    """Status lookups never refused (the limit has tests of its own)."""

    def address(self, request):
        return "127.0.0.1"

    def refusal(self, address, tracking_number):
        return None

    def wrong(self, address, tracking_number):
        pass


def test_intakes_desk_and_public_answers_are_what_its_document_says():
    intake = worker_factory(IntakeService, db=memory_session(IntakeBase), catalogue=FakeCatalogue(PAID, OFFICE),
                            caller=CallerAs(DESK, OFFICER_ALIYEV, region="jizzakh"), clock=utc_now,
                            status_guesses=NoGuessing())
    filed = intake.http_submit(request(DESK, "POST", body=submission(service_code="passport")))[-1]
    number, amount = filed["tracking_number"], filed["invoice"]["amount_tiyin"]
    intake.http_pay_at_desk(request(DESK, "POST", body={"method": "cash", "receipt_number": "R-1",
                                                        "amount_tiyin": amount}), number)
    receipt = agrees(IntakeService, "GET", "/api/v1/applications/{tracking_number}/receipt",
                     intake.http_receipt(request(DESK), number))
    assert receipt["invoice"]["state"] == "paid" and receipt["service_name"] == PAID["names"]
    sale = agrees(IntakeService, "POST", "/api/v1/office-sales", intake.http_sell(
        request(DESK, "POST", body={"service_code": "printing", "quantity": 3, "method": "card"})))
    assert sale["amount_tiyin"] == 3 * 82_400 and sale["sold_at"].endswith("Z") and sale["currency"] == "UZS"
    takings = agrees(IntakeService, "GET", "/api/v1/office-sales/takings", intake.http_takings(request(DESK)))
    assert takings["total_tiyin"] == 3 * 82_400 + amount and len(takings["day"]) == 10
    assert [line["method"] for line in takings["office_sales"] + takings["fees"]] == ["card", "cash"]
    public = agrees(IntakeService, "POST", "/api/v1/status/{tracking_number}", intake.http_public_status(
        request(None, "POST", body={"code": filed["status_code"]}), number))
    assert public["status"] == "submitted" and [change["status"] for change in public["history"]] == \
        ["awaiting_payment", "submitted"] and len(public["submitted_on"]) == 10


OFFERED = {**OPEN311_SERVICE, "version": 3, "required_documents": DEFINITION["required_documents"]}


def test_open311s_json_answers_are_what_its_document_says():
    db = memory_session(IntakeBase)
    db.add(CatalogueEntry(code="photocopying", version=3, state="published", refreshed_at=utc_now(),
                          definition={**OPEN311_SERVICE, "public_interest": True}))
    db.commit()
    key = "k" * 32
    settings = Open311Settings({"OPEN311_API_KEYS": f"partner:{hashlib.sha256(key.encode()).hexdigest()}:*"})
    intake = worker_factory(IntakeService, db=db, catalogue=FakeCatalogue(OFFERED), open311_settings=settings,
                            caller=CallerAs(DESK, OFFICER_ALIYEV, region="jizzakh"), clock=utc_now)
    filing = submission(attributes={"pages": 2, "paper_size": "A4"})
    number = intake.http_submit(request(DESK, "POST", body=filing))[-1]["tracking_number"]

    def answer(path, response):
        return agrees(IntakeService, "GET", f"/open311/v2/{path}.{{format}}", json.loads(response.get_data()))

    discovery = answer("discovery", intake.open311_discovery(request(None), "json"))
    assert discovery["changeset"] == "2026-01-02T03:04:05Z" and discovery["endpoints"][0]["formats"]
    (service,) = answer("services", intake.open311_services(request(None, query="lang=en"), "json"))
    assert service == {"service_code": "photocopying", "service_name": "Copies", "description": "Photocopying",
                       "metadata": True, "type": "realtime", "keywords": "copy, print", "group": "office-services"}
    definition = answer("services/{service_code}", intake.open311_service_definition(request(None), "photocopying", "json"))
    assert [attribute["code"] for attribute in definition["attributes"]][:2] == ["pages", "paper_size"]
    assert "values" not in definition["attributes"][0] and definition["attributes"][1]["values"][0]["key"] == "A4"
    (listed,) = answer("requests", intake.open311_requests(request(None, query=f"api_key={key}"), "json"))
    (one,) = answer("requests/{service_request_id}", intake.open311_request(request(None), number, "json"))
    assert listed == one and one["service_request_id"] == number and one["requested_datetime"].endswith("Z")
    assert len(one["requested_datetime"]) == 20 and one["expected_datetime"].endswith("T18:59:59Z")
