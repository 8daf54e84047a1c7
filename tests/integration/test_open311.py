"""Open311 GeoReport v2 on a real regional intake: a conformance table (every endpoint, both
formats, field by field against the specification's examples), jurisdictions, partners' API keys,
realtime and queued (token) creation, filters, attributes checked against the service definition,
no personal data in any answer, and property-based POST forms (hypothesis) that never get a 5xx."""
import os
import re
import time
import uuid
from types import SimpleNamespace

import defusedxml.ElementTree as SafeXML
import pytest
import requests
from hypothesis import HealthCheck, given, settings, strategies as st

from services.intake.open311.dependencies import key_digest
from services.intake.open311.formats import XML_DECLARATION
from tests.conftest import wait_for
from tests.integration.conftest import auth, post, seed_service, valid_submission
from tests.unit.test_open311 import (
    SPEC_CREATED_XML, SPEC_DEFINITION_XML, SPEC_DISCOVERY_XML, SPEC_ERRORS_XML, SPEC_REQUESTS_XML, SPEC_SERVICES_XML,
    SPEC_TOKEN_XML, spark,
)

pytestmark = pytest.mark.integration

REGION = "fergana"
KEY = f"partner-key-{uuid.uuid4().hex}"
# The partner's key lets it see requests of the services it files (photocopying and printing are
# personal: an anonymous GET lists none of them; tests/integration/test_public_faces.py shows that).
SEES = {"api_key": KEY}
PINFL = "41234567890123"
PHONE_DIGITS = "901112233"
FIRST_NAME, LAST_NAME = "Dilnoza", "Yusupova"
FORM_EXAMPLES = int(os.environ.get("OSS_OPEN311_EXAMPLES", "1000"))
W3C_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
FORMATS = ("json", "xml")
# JSON types of every field GeoReport v2 defines, by the record it belongs to ("?" may be null).
TYPES = {
    "service": {"service_code": "str", "service_name": "str", "description": "str", "metadata": "bool",
                "type": "str", "keywords": "str", "group": "str"},
    "service_definition": {"service_code": "str", "attributes": "list"},
    "attribute": {"variable": "bool", "code": "str", "datatype": "str", "required": "bool",
                  "datatype_description": "str?", "order": "int", "description": "str", "values": "list"},
    "value": {"key": "str", "name": "str"},
    "request": {"service_request_id": "str", "status": "str", "status_notes": "str?", "service_name": "str?",
                "service_code": "str", "description": "str?", "agency_responsible": "str?",
                "service_notice": "str?", "requested_datetime": "datetime", "updated_datetime": "datetime",
                "expected_datetime": "datetime?", "address": "str?", "address_id": "str", "zipcode": "str?",
                "lat": "number?", "long": "number?", "media_url": "str?", "token": "str", "account_id": "str?"},
    "error": {"code": "int", "description": "str"},
    "discovery": {"changeset": "str", "contact": "str", "key_service": "str", "endpoints": "list",
                  "extensions": "list"},
    "endpoint": {"specification": "str", "url": "str", "changeset": "str", "type": "str", "formats": "list"},
    "extension": {"name": "str", "applies_to": "str", "required": "bool", "description": "str"},
}
ITEMS = {"services": "service", "attributes": "attribute", "values": "value", "service_requests": "request",
         "errors": "error", "endpoints": "endpoint", "extensions": "extension"}


def form(service_code="photocopying", **overrides):
    """A POST form that fits the seed catalogue's service, with the documented extension fields."""
    service = seed_service(service_code)
    submission = valid_submission(REGION, service_code)
    fields = {"api_key": KEY, "jurisdiction_id": REGION, "service_code": service_code,
              "address_id": submission["district"], "address_string": "Mustaqillik ko‘chasi 1",
              "first_name": FIRST_NAME, "last_name": LAST_NAME, "phone": f"+998 {PHONE_DIGITS}", "pinfl": PINFL,
              "language": "ru", "email": "dilnoza@example.uz", "description": "Please hurry",
              "lat": "40.38", "long": "71.78", "documents": ",".join(d["code"] for d in service["required_documents"])}
    for code, value in submission["attributes"].items():
        if isinstance(value, list):
            fields[f"attribute[{code}][]"] = value
        else:
            fields[f"attribute[{code}]"] = str(value)
    fields.update(overrides)
    return {name: value for name, value in fields.items() if value is not None}


@pytest.fixture(scope="module")
def open311(stack):
    """Two more intake processes of the region on its database: one creating requests at once,
    one queueing them (batch); both know the partner's key (only its SHA-256)."""
    keys = f"civic-app:{key_digest(KEY)}:photocopying|printing"
    realtime = stack.start("intake", region=REGION, database_url=stack.intake_db[REGION], migrate=False, wait=False,
                           OPEN311_API_KEYS=keys)
    batch = stack.start("intake", region=REGION, database_url=stack.intake_db[REGION], migrate=False, wait=False,
                        OPEN311_API_KEYS=keys, OPEN311_REQUEST_MODE="batch")
    realtime.wait_healthy()
    batch.wait_healthy()
    yield SimpleNamespace(url=f"{realtime.url}/open311/v2", batch=f"{batch.url}/open311/v2", own=realtime.url)
    batch.stop()
    realtime.stop()


def create(open311, fmt="json", **overrides):
    response = requests.post(f"{open311.url}/requests.{fmt}", data=form(**overrides), timeout=30)
    assert response.status_code == 200, response.text
    return response


def created_id(open311, **overrides):
    return create(open311, **overrides).json()[0]["service_request_id"]


def wait_for_token(open311, token, timeout=20.0):
    def resolved():
        response = requests.get(f"{open311.url}/tokens/{token}.json", timeout=10)
        assert response.status_code in (200, 404), response.text
        return response if response.status_code == 200 else None

    return wait_for(resolved, timeout, message=f"token {token} resolved")


@pytest.fixture(scope="module")
def requests_made(open311, stack):
    """One open request, one closed (withdrawn through intake's own API) and one queued."""
    open_id = created_id(open311)
    closed_id = created_id(open311)
    withdrawn = post(f"{stack.urls[REGION]}/api/v1/applications/{closed_id}/transitions",
                     {"to": "withdrawn", "reason": "applicant asked"}, **auth("officer", REGION))
    assert withdrawn.status_code == 200, withdrawn.text
    queued = requests.post(f"{open311.batch}/requests.json", data=form(), timeout=30)
    assert queued.status_code == 200, queued.text
    token = queued.json()[0]["token"]
    queued_id = wait_for_token(open311, token).json()[0]["service_request_id"]
    return SimpleNamespace(open=open_id, closed=closed_id, token=token, queued=queued_id)


# The conformance table

def spec_shape(example_xml):
    """The specification example's structure: its root element and, per record, its field names."""
    root = SafeXML.fromstring(example_xml.encode())
    return root.tag, spark(root)


def as_xml_text(value):
    """A JSON value as its XML element reads by the Spark convention."""
    if isinstance(value, list):
        return [as_xml_text(item) for item in value]
    if isinstance(value, dict):
        return {key: as_xml_text(item) for key, item in value.items()}
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value).strip() or None


def check_types(record, kind):
    for name, value in record.items():
        expected = TYPES[kind][name]
        if expected.endswith("?") and value is None:
            continue
        expected = expected.rstrip("?")
        if expected == "datetime":
            assert isinstance(value, str) and W3C_DATETIME.match(value), (name, value)
        elif expected == "number":
            assert isinstance(value, (int, float)) and not isinstance(value, bool), (name, value)
        elif expected == "list":
            assert isinstance(value, list), (name, value)
            for item in value:
                if isinstance(item, dict):
                    check_types(item, ITEMS[name])
                else:
                    assert isinstance(item, str), (name, item)
        else:
            assert type(value).__name__ == expected, (name, value)


def check_names(ours, spec, extra=(), missing=()):
    """Our record has the example's field names (less `missing`, plus `extra`), nested lists included."""
    assert set(ours) == (set(spec) - set(missing)) | set(extra), (sorted(ours), sorted(spec))
    for name, value in ours.items():
        if isinstance(value, list) and value and isinstance(value[0], dict) and spec.get(name):
            for item in value:
                check_names(item, spec[name][0], missing=() if "values" in item else ("values",))


def endpoint_rows(made):
    """(id, method, URL template, specification example, what differs from the example by design)."""
    return [
        ("discovery", "GET", "discovery.{fmt}", SPEC_DISCOVERY_XML, {"extra": ("extensions",)}),
        ("services", "GET", "services.{fmt}", SPEC_SERVICES_XML, {}),
        ("service_definition", "GET", "services/photocopying.{fmt}", SPEC_DEFINITION_XML, {}),
        ("post_requests", "POST", "requests.{fmt}", SPEC_CREATED_XML, {}),
        ("post_requests_queued", "POST batch", "requests.{fmt}", SPEC_CREATED_XML,
         {"extra": ("token",), "missing": ("service_request_id",)}),
        ("tokens", "GET", f"tokens/{made.token}.{{fmt}}", SPEC_TOKEN_XML, {}),
        ("get_requests", "GET", "requests.{fmt}", SPEC_REQUESTS_XML, {}),
        ("get_request", "GET", f"requests/{made.open}.{{fmt}}", SPEC_REQUESTS_XML, {}),
        ("errors", "GET", "requests/FA-1999-000001.{fmt}", SPEC_ERRORS_XML, {}),
    ]


ROW_IDS = ["discovery", "services", "service_definition", "post_requests", "post_requests_queued", "tokens",
           "get_requests", "get_request", "errors"]


def call(open311, method, template, fmt):
    if method == "GET":
        return requests.get(f"{open311.url}/{template.format(fmt=fmt)}", params=SEES, timeout=30)
    base = open311.batch if method == "POST batch" else open311.url
    return requests.post(f"{base}/{template.format(fmt=fmt)}", data=form(), timeout=30)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("row", ROW_IDS)
def test_conformance_with_the_specifications_examples(open311, requests_made, row, fmt):
    _id, method, template, example, differences = next(r for r in endpoint_rows(requests_made) if r[0] == row)
    spec_root, spec_document = spec_shape(example)
    response = call(open311, method, template, fmt)
    assert response.status_code == (404 if row == "errors" else 200), response.text
    assert response.headers["Content-Type"] == ("text/xml" if fmt == "xml" else "application/json") + "; charset=utf-8"
    if fmt == "xml":
        assert response.text.startswith(XML_DECLARATION)
        root = SafeXML.fromstring(response.content)
        assert root.tag == spec_root
        document = spark(root)
    else:
        document = response.json()
    # A list answer is a list in JSON and the root with one item element each in XML, as in the example.
    assert isinstance(document, list) == isinstance(spec_document, list)
    records = document if isinstance(document, list) else [document]
    spec_record = spec_document[0] if isinstance(spec_document, list) else spec_document
    assert records
    for record in records:
        check_names(record, spec_record, **differences)
        if fmt == "json":
            check_types(record, {"services": "service", "service_requests": "request", "errors": "error"}.get(spec_root, spec_root))
    if fmt == "xml" and method == "GET":
        as_json = requests.get(f"{open311.url}/{template.format(fmt='json')}", params=SEES, timeout=30).json()
        assert document == as_xml_text(as_json)  # the same document in both formats


def test_every_route_of_the_table_is_one_the_service_documents(open311):
    document = requests.get(f"{open311.own}/openapi.json", timeout=10).json()
    documented = {path for path in document["paths"] if path.startswith("/open311/")}
    assert documented == {"/open311/v2/discovery.{format}", "/open311/v2/services.{format}",
                          "/open311/v2/services/{service_code}.{format}", "/open311/v2/requests.{format}",
                          "/open311/v2/requests/{service_request_id}.{format}", "/open311/v2/tokens/{token}.{format}"}


# Jurisdiction, lookups, keys

GET_PATHS = ["discovery", "services", "services/photocopying", "requests", "tokens/" + "0" * 32]


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("path", GET_PATHS)
def test_a_wrong_jurisdiction_is_a_404_in_the_specs_error_format(open311, path, fmt):
    response = requests.get(f"{open311.url}/{path}.{fmt}", params={"jurisdiction_id": "jizzakh"}, timeout=10)
    assert response.status_code == 404
    errors = spark(SafeXML.fromstring(response.content)) if fmt == "xml" else response.json()
    assert [str(error["code"]) for error in errors] == ["404"]
    assert "jurisdiction_id" in errors[0]["description"]


def test_the_right_or_no_jurisdiction_is_served(open311):
    for params in ({"jurisdiction_id": REGION}, {"jurisdiction_id": ""}, {}):
        assert requests.get(f"{open311.url}/services.json", params=params, timeout=10).status_code == 200


@pytest.mark.parametrize("path", [
    "services/alcohol-retail-licence",  # retired
    "services/solar-panel-grid-connection",  # draft
    "services/agro-subsidy-application",  # offered in Jizzakh only
    "services/no-such-service", "requests/FA-2026-999999", "requests/not-a-number", "tokens/not-a-token",
    "tokens/" + uuid.uuid4().hex, "nothing-here", "requests.yaml",
])
def test_what_does_not_exist_is_a_404_in_the_specs_format(open311, path):
    response = requests.get(f"{open311.url}/{path}.json" if "." not in path else f"{open311.url}/{path}", timeout=10)
    assert response.status_code == 404, response.text
    assert response.json()[0]["code"] == 404


def test_the_service_list_is_what_the_region_offers(open311):
    codes = {service["service_code"] for service in requests.get(f"{open311.url}/services.json", timeout=10).json()}
    assert "photocopying" in codes and "agro-subsidy-application" not in codes
    assert "alcohol-retail-licence" not in codes and "solar-panel-grid-connection" not in codes


def test_names_come_in_the_language_asked_for(open311):
    names = {lang: requests.get(f"{open311.url}/services/photocopying.json", params={"lang": lang}, timeout=10)
             .json()["attributes"][0]["description"] for lang in ("uz", "ru", "en")}
    assert len(set(names.values())) == 3
    by_header = requests.get(f"{open311.url}/services/photocopying.json", headers={"Accept-Language": "en-GB,en;q=0.8"},
                             timeout=10).json()["attributes"][0]["description"]
    assert by_header == names["en"]


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("api_key", [None, "", "wrong-key", KEY.upper()])
def test_posting_without_a_valid_api_key_is_a_403_and_creates_nothing(open311, stack, api_key, fmt):
    before = requests.get(f"{stack.urls[REGION]}/api/v1/applications", params={"page_size": 1}, timeout=10, headers=auth("officer", REGION)).json()["total"]
    response = requests.post(f"{open311.url}/requests.{fmt}", data=form(api_key=api_key), timeout=10)
    assert response.status_code == 403
    errors = spark(SafeXML.fromstring(response.content)) if fmt == "xml" else response.json()
    assert [str(error["code"]) for error in errors] == ["403"] and "api_key" in errors[0]["description"]
    assert requests.get(f"{stack.urls[REGION]}/api/v1/applications", params={"page_size": 1}, timeout=10, headers=auth("officer", REGION)).json()["total"] == before


def test_the_stack_without_keys_refuses_every_post(stack):
    response = requests.post(f"{stack.urls[REGION]}/open311/v2/requests.json", data=form(), timeout=10)
    assert response.status_code == 403


def test_the_key_may_come_in_the_query_string(open311):
    data = form()
    key = data.pop("api_key")
    response = requests.post(f"{open311.url}/requests.json", params={"api_key": key}, data=data, timeout=30)
    assert response.status_code == 200, response.text


def test_a_wrong_jurisdiction_on_post_is_a_404(open311):
    response = requests.post(f"{open311.url}/requests.json", data=form(jurisdiction_id="namangan"), timeout=10)
    assert response.status_code == 404 and "jurisdiction_id" in response.json()[0]["description"]


# Creation, tokens, mapping

def test_a_realtime_request_is_created_at_once_and_reads_back(open311, stack):
    response = create(open311, "xml")
    created = spark(SafeXML.fromstring(response.content))[0]
    request_id = created["service_request_id"]
    assert set(created) == {"service_request_id", "service_notice", "account_id"} and created["account_id"] is None
    detail = requests.get(f"{open311.url}/requests/{request_id}.json", params=SEES, timeout=10).json()[0]
    own = requests.get(f"{stack.urls[REGION]}/api/v1/applications/{request_id}", timeout=10, headers=auth("officer", REGION)).json()
    assert detail["status"] == "open" and detail["service_code"] == "photocopying"
    assert detail["expected_datetime"].startswith(own["due_date"])
    assert detail["address_id"] == own["district"]
    assert own["applicant"]["pinfl"] == PINFL and own["applicant"]["phone"] == f"+998{PHONE_DIGITS}"
    assert own["applicant"]["full_name"] == f"{FIRST_NAME} {LAST_NAME}" and own["applicant"]["language"] == "ru"
    assert own["attributes"] == valid_submission(REGION, "photocopying")["attributes"]
    assert [(change["to"], change["actor"]) for change in own["history"]] == [("submitted", "open311:civic-app")]


def test_a_queued_request_answers_a_token_that_resolves_to_its_id(open311, requests_made, stack):
    assert re.fullmatch(r"[0-9a-f]{32}", requests_made.token)
    resolved = wait_for_token(open311, requests_made.token)
    assert resolved.json() == [{"service_request_id": requests_made.queued, "token": requests_made.token}]
    xml = requests.get(f"{open311.url}/tokens/{requests_made.token}.xml", timeout=10)
    assert spark(SafeXML.fromstring(xml.content)) == [{"service_request_id": requests_made.queued,
                                                       "token": requests_made.token}]
    own = requests.get(f"{stack.urls[REGION]}/api/v1/applications/{requests_made.queued}", timeout=10, headers=auth("officer", REGION)).json()
    assert own["service_code"] == "photocopying" and own["applicant"]["pinfl"] == PINFL
    assert [(change["to"], change["actor"]) for change in own["history"]] == [("submitted", "open311:civic-app")]


def test_services_are_batch_on_a_queueing_intake(open311):
    types = {service["type"] for service in requests.get(f"{open311.batch}/services.json", timeout=10).json()}
    assert types == {"batch"}
    assert {service["type"] for service in requests.get(f"{open311.url}/services.json", timeout=10).json()} == {"realtime"}


def test_a_queued_request_is_checked_before_it_is_queued(open311):
    response = requests.post(f"{open311.batch}/requests.json", data=form(**{"attribute[pages]": "many"}), timeout=10)
    assert response.status_code == 400 and response.json()[0]["description"].startswith("attribute[pages]")


def test_status_filters_split_open_from_closed(open311, requests_made):
    def ids(**params):
        return {r["service_request_id"] for r in requests.get(f"{open311.url}/requests.json", params={**params, **SEES},
                                                               timeout=10).json()}

    assert requests_made.open in ids(status="open") and requests_made.open not in ids(status="closed")
    assert requests_made.closed in ids(status="closed") and requests_made.closed not in ids(status="open")
    assert {requests_made.open, requests_made.closed} <= ids(status="open,closed")
    closed = requests.get(f"{open311.url}/requests/{requests_made.closed}.json", params=SEES, timeout=10).json()[0]
    assert closed["status"] == "closed" and "Withdrawn" in closed["status_notes"]
    assert "applicant asked" not in str(closed)  # officers' free text stays inside intake


def test_ids_override_every_other_argument(open311, requests_made):
    response = requests.get(f"{open311.url}/requests.json", params={
        **SEES, "service_request_id": f"{requests_made.open},{requests_made.closed},nonsense", "status": "closed",
        "start_date": "2001-01-01T00:00:00Z", "end_date": "2001-02-01T00:00:00Z"}, timeout=10)
    assert {r["service_request_id"] for r in response.json()} == {requests_made.open, requests_made.closed}


def test_dates_and_service_codes_filter(open311, requests_made):
    def ids(**params):
        response = requests.get(f"{open311.url}/requests.json", params={**params, **SEES}, timeout=10)
        assert response.status_code == 200, response.text
        return {r["service_request_id"] for r in response.json()}

    assert requests_made.open in ids(service_code="photocopying,printing")
    assert requests_made.open not in ids(service_code="printing")
    assert requests_made.open not in ids(start_date="2001-01-01T00:00:00Z", end_date="2001-03-01T00:00:00Z")
    assert requests_made.open in ids(start_date=time.strftime("%Y-%m-%d", time.gmtime(time.time() - 86400)))
    assert requests_made.open not in ids(end_date="2001-01-01")


@pytest.mark.parametrize("params,field", [
    ({"start_date": "2026-01-01T00:00:00Z", "end_date": "2026-06-01T00:00:00Z"}, "end_date"),
    ({"start_date": "2026-02-01T00:00:00Z", "end_date": "2026-01-01T00:00:00Z"}, "start_date"),
    ({"start_date": "last tuesday"}, "start_date"),
    ({"status": "pending"}, "status"),
    ({"page_size": "5000"}, "page_size"),
])
def test_bad_arguments_are_400_naming_them(open311, params, field):
    response = requests.get(f"{open311.url}/requests.xml", params=params, timeout=10)
    assert response.status_code == 400
    errors = spark(SafeXML.fromstring(response.content))
    assert errors[0]["code"] == "400" and errors[0]["description"].startswith(field)


def test_pages_go_through_the_requests(open311, requests_made):
    first = requests.get(f"{open311.url}/requests.json", params={"page_size": 1, **SEES}, timeout=10).json()
    second = requests.get(f"{open311.url}/requests.json", params={"page_size": 1, "page": 2, **SEES}, timeout=10).json()
    assert len(first) == len(second) == 1 and first != second


@pytest.mark.parametrize("overrides,field", [
    ({"attribute[pages]": None}, "attribute[pages]"),
    ({"attribute[paper_size]": "B5"}, "attribute[paper_size]"),
    ({"attribute[colour]": "red"}, "attribute[colour]"),
    ({"attribute[pages][0]": "1"}, "attribute[pages][0]"),
    ({"pinfl": "123"}, "pinfl"),
    ({"phone": "+7 900 123 45 67"}, "phone"),
    ({"address_id": "9999999"}, "address_id"),
    ({"address_id": None}, "address_id"),
    ({"documents": "passport"}, "documents"),
    ({"first_name": None}, "first_name"),
    ({"channel": "email", "email": None}, "email"),
])
def test_attributes_and_fields_are_checked_against_the_service_definition(open311, overrides, field):
    response = requests.post(f"{open311.url}/requests.json", data=form(**overrides), timeout=10)
    assert response.status_code == 400, response.text
    assert any(error["description"].startswith(field) for error in response.json()), response.json()


def test_multi_value_attributes_arrive_as_repeated_fields(open311, stack):
    request_id = created_id(open311, service_code="individual-entrepreneur-registration")
    own = requests.get(f"{stack.urls[REGION]}/api/v1/applications/{request_id}", timeout=10, headers=auth("officer", REGION)).json()
    expected = valid_submission(REGION, "individual-entrepreneur-registration")["attributes"]
    assert own["attributes"] == expected and isinstance(next(v for v in expected.values() if isinstance(v, list)), list)


def test_a_form_must_be_form_encoded(open311):
    response = requests.post(f"{open311.url}/requests.json", json=form(), timeout=10)
    assert response.status_code in (400, 403)
    assert response.json()[0]["code"] == response.status_code


def test_no_open311_answer_carries_a_name_pinfl_or_phone(open311, requests_made):
    answers = [requests.get(f"{open311.url}/{path}", params=SEES, timeout=10).text for path in (
        "requests.json", "requests.xml", f"requests/{requests_made.open}.json", f"requests/{requests_made.open}.xml",
        f"tokens/{requests_made.token}.xml", "discovery.json", "services.xml")]
    answers += [requests.post(f"{open311.url}/requests.{fmt}", data=form(), timeout=30).text for fmt in FORMATS]
    for text in answers:
        for personal in (PINFL, PHONE_DIGITS, FIRST_NAME, LAST_NAME, "dilnoza@"):
            assert personal not in text


# Property-based: any POST form gets a 2xx/4xx in the specification's format, never a 5xx

def attribute_value(attribute):
    keys = [value["key"] for value in attribute.get("values", [])]
    return {"string": st.text("abcdefgh ", min_size=1, max_size=20), "text": st.text(min_size=1, max_size=50),
            "number": st.integers(0, 10_000).map(str), "datetime": st.dates().map(lambda day: day.isoformat()),
            "singlevaluelist": st.sampled_from(keys or ["x"]),
            "multivaluelist": st.lists(st.sampled_from(keys or ["x"]), min_size=1, max_size=2, unique=True),
            }[attribute["datatype"]]


def form_fields():
    """Forms for a service with list, multi-value and text attributes and a required document:
    valid, then up to three fields (attributes included) dropped or replaced by arbitrary text,
    and at times unknown attribute fields added."""
    service = seed_service("individual-entrepreneur-registration")
    attributes = {f"attribute[{a['code']}]" + ("[]" if a["datatype"] == "multivaluelist" else ""): attribute_value(a)
                  for a in service["attributes"]}
    plain = {name: value for name, value in form(service["code"]).items() if not name.startswith("attribute")}
    valid = st.fixed_dictionaries({**{name: st.just(value) for name, value in plain.items()}, **attributes})
    names = sorted(set(plain) - {"api_key"} | set(attributes))
    mutations = st.dictionaries(st.sampled_from(names), st.one_of(st.none(), st.text(max_size=40)), max_size=3)
    extra = st.dictionaries(st.from_regex(r"attribute\[[a-z_]{1,10}\](\[\])?", fullmatch=True), st.text(max_size=10),
                            max_size=2)

    def assemble(parts):
        fields, changed, added, fmt = parts
        merged = {**fields, **changed, **added}
        return {name: value for name, value in merged.items() if value is not None}, fmt

    return st.tuples(valid, mutations, st.one_of(st.just({}), extra), st.sampled_from(FORMATS)).map(assemble)


@settings(max_examples=FORM_EXAMPLES, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(case=form_fields())
def test_any_post_form_gets_an_answer_in_the_specs_format_never_a_5xx(open311, case):
    data, fmt = case
    response = requests.post(f"{open311.url}/requests.{fmt}", data=data, timeout=30)
    assert response.status_code in (200, 400, 404), response.text
    document = spark(SafeXML.fromstring(response.content)) if fmt == "xml" else response.json()
    assert isinstance(document, list) and document
    if response.status_code == 200:
        assert re.fullmatch(r"FA-\d{4}-\d{6,}", document[0]["service_request_id"])
    else:
        assert all(str(error["code"]) == str(response.status_code) and error["description"] for error in document)
    for personal in (PINFL, PHONE_DIGITS, FIRST_NAME, LAST_NAME):
        assert personal not in response.text


@settings(max_examples=max(FORM_EXAMPLES // 4, 10), deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(values=st.fixed_dictionaries({
    a["code"]: st.sampled_from([v["key"] for v in a["values"]]) if a["datatype"] == "singlevaluelist"
    else st.integers(1, 500) for a in seed_service("photocopying")["attributes"]}))
def test_valid_forms_are_always_created(open311, values):
    data = form(**{f"attribute[{code}]": str(value) for code, value in values.items()})
    response = requests.post(f"{open311.url}/requests.json", data=data, timeout=30)
    assert response.status_code == 200, response.text
    detail = requests.get(f"{open311.url}/requests/{response.json()[0]['service_request_id']}.json", params=SEES,
                          timeout=10)
    assert detail.status_code == 200 and detail.json()[0]["service_code"] == "photocopying"
