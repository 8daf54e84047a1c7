"""Hostile input on both backends: injection strings, control characters, oversized, deep and
malformed bodies, absurd paging and dates, over-long URLs, and random JSON documents. Each is
refused with a 4xx naming what was wrong, or stored and returned exactly as sent; in either case
nothing else changes, and no answer is ever a 5xx."""
import copy
import json
import time
import uuid
from urllib.parse import quote

import defusedxml.ElementTree as SafeXML
import pytest
import requests
from hypothesis import HealthCheck, given, settings, strategies as st

from services.intake.open311.dependencies import key_digest
from tests.conftest import auth
from tests.integration.conftest import seed_service, valid_submission

pytestmark = pytest.mark.integration

REGION = "jizzakh"
SERVICE = "khokimiyat-written-appeal"  # a free-text `string` attribute (subject) and a `text` one (appeal_text)
OPERATOR = auth("operator", REGION)
OFFICER = auth("officer", REGION)
ANALYST = auth("analyst")
ADMIN = auth("catalogue-admin")
OPEN311_KEY = f"hostile-partner-{uuid.uuid4().hex}"
HOSTILE = {
    "sql": "'; DROP TABLE applications; --",
    "sql-or": "x' OR '1'='1",
    "jinja": "{{7*7}}",
    "dollar": "${7*7}",
    "script": "<script>alert(1)</script>",
    "format": "%s%n%x%d",
    "long": "A" * 10_000,  # beyond every text field's limit, within the body limit
}
# Text fields of a submission, as paths into the body (a trailing "*" stands for an attribute's name).
SUBMISSION_FIELDS = (
    ("service_code",), ("district",), ("centre",), ("documents", 0),
    ("applicant", "pinfl"), ("applicant", "full_name"), ("applicant", "phone"), ("applicant", "language"),
    ("applicant", "channel"), ("applicant", "email"),
    ("attributes", "subject"), ("attributes", "appeal_text"), ("attributes", "*"),
)
CONTROL_CHARACTERS = ["\x00", "\x01", "\x07", "\x08", "\x0b", "\x0c", "\x1b", "\x1f", "\x7f"]


def submission():
    return valid_submission(REGION, SERVICE)


def with_raw(body, path, raw_json):
    """`body` as JSON text with `raw_json` (text, e.g. a nesting too deep to build) at `path`."""
    return json.dumps(placed(body, path, "__RAW__")).replace('"__RAW__"', raw_json).encode()


def placed(body, path, value):
    """A copy of `body` with `value` at `path` (an attribute's name when the path ends with "*")."""
    body = copy.deepcopy(body)
    target = body
    for key in path[:-1]:
        target = target[key]
    if path[-1] == "*":
        target[value] = "x"
    else:
        target[path[-1]] = value
    return body


def dotted(path):
    """The field a path names in an error (an attribute's name is the attribute map's business)."""
    return "attributes" if path[-1] == "*" else ".".join(map(str, path))


def read(body, path):
    for key in path:
        body = body[key]
    return body


def names_field(response, field):
    error = response.json()
    assert set(error) == {"error", "message", "fields"}, error
    assert any(name == field or name.startswith(field + ".") for name in error["fields"]), (field, error)


def applications_url(stack):
    return f"{stack.urls[REGION]}/api/v1/applications"


def count(stack):
    response = requests.get(applications_url(stack), params={"page_size": 1}, headers=OPERATOR, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()["total"]


def submit(stack, body, **headers):
    return requests.post(applications_url(stack), json=body, headers={**OPERATOR, **headers}, timeout=30)


def created(stack):
    response = submit(stack, submission())
    assert response.status_code == 201, response.text
    return response.json()["tracking_number"]


# Submissions

@pytest.mark.parametrize("path", SUBMISSION_FIELDS, ids=lambda path: ".".join(map(str, path)))
def test_injection_strings_in_a_submission_are_refused_or_kept_verbatim(stack, path):
    before = count(stack)
    stored = 0
    for name, value in HOSTILE.items():
        response = submit(stack, placed(submission(), path, value))
        assert response.status_code in (201, 400, 422), (name, response.status_code, response.text[:500])
        if response.status_code == 201:
            stored += 1
            assert path[-1] != "*", "an unknown attribute was accepted"
            number = response.json()["tracking_number"]
            detail = requests.get(f"{applications_url(stack)}/{number}", headers=OPERATOR, timeout=30)
            assert detail.status_code == 200 and read(detail.json(), path) == value, (name, detail.text[:500])
        else:
            names_field(response, dotted(path))
        assert count(stack) == before + stored, f"{name}: something else changed"
    if path in (("applicant", "full_name"), ("attributes", "subject"), ("attributes", "appeal_text")):
        assert stored == len(HOSTILE) - 1, "free text takes every string within its limit, as it is"


@pytest.mark.parametrize("character", CONTROL_CHARACTERS, ids=lambda c: f"U+{ord(c):04X}")
@pytest.mark.parametrize("path", [("applicant", "full_name"), ("attributes", "appeal_text"), ("documents", 0)],
                         ids=lambda path: ".".join(map(str, path)))
def test_control_characters_in_text_are_400_naming_the_field(stack, path, character):
    before = count(stack)
    response = submit(stack, placed(submission(), path, f"Aziza{character}Karimova"))
    assert response.status_code == 400, response.text
    names_field(response, dotted(path))
    assert count(stack) == before


def test_tab_and_line_breaks_are_text(stack):
    body = placed(submission(), ("attributes", "appeal_text"), "First line\r\nsecond\tline\n")
    response = submit(stack, body)
    assert response.status_code == 201, response.text
    assert response.json()["attributes"]["appeal_text"] == "First line\r\nsecond\tline\n"


@pytest.mark.parametrize("character", ["\x00", "\x01"], ids=["NUL", "SOH"])
def test_a_control_character_in_an_attribute_name_is_refused_without_echoing_it(stack, character):
    response = submit(stack, placed(submission(), ("attributes", "*"), f"sub{character}ject"))
    assert response.status_code == 400, response.text
    names_field(response, "attributes")
    assert "sub\\u00" not in response.text and character not in response.text


# Transitions

def test_injection_strings_in_a_transition_reason_are_kept_verbatim_or_refused(stack):
    before = count(stack)
    for name, value in HOSTILE.items():
        number = created(stack)
        url = f"{applications_url(stack)}/{number}"
        response = requests.post(f"{url}/transitions", json={"to": "returned_for_correction", "reason": value},
                                 headers=OFFICER, timeout=30)
        detail = requests.get(url, headers=OPERATOR, timeout=30).json()
        if name == "long":
            assert response.status_code == 400, response.text
            names_field(response, "reason")
            assert detail["status"] == "submitted" and len(detail["history"]) == 1
        else:
            assert response.status_code == 200, (name, response.text[:500])
            assert detail["status"] == "returned_for_correction" and detail["history"][-1]["reason"] == value
    assert count(stack) == before + len(HOSTILE)


@pytest.mark.parametrize("value", [*HOSTILE.values(), "accepted\x00", "ACCEPTED", " accepted"],
                         ids=[*HOSTILE, "nul", "upper", "space"])
def test_injection_strings_as_the_target_status_are_400_naming_to(stack, value):
    number = created(stack)
    response = requests.post(f"{applications_url(stack)}/{number}/transitions", json={"to": value},
                             headers=OFFICER, timeout=30)
    assert response.status_code == 400, response.text
    names_field(response, "to")


@pytest.mark.parametrize("character", ["\x00", "\x01", "\x1b", "\x7f"], ids=lambda c: f"U+{ord(c):04X}")
def test_control_characters_in_a_reason_are_400_naming_it(stack, character):
    number = created(stack)
    response = requests.post(f"{applications_url(stack)}/{number}/transitions",
                             json={"to": "returned_for_correction", "reason": f"missing{character}page"},
                             headers=OFFICER, timeout=30)
    assert response.status_code == 400, response.text
    names_field(response, "reason")


@pytest.mark.parametrize("value", HOSTILE.values(), ids=HOSTILE.keys())
def test_injection_strings_as_a_tracking_number_are_4xx(stack, value):
    before = count(stack)
    url = f"{applications_url(stack)}/{quote(value, safe='')}"
    assert 400 <= requests.get(url, headers=OPERATOR, timeout=30).status_code < 500
    response = requests.post(f"{url}/transitions", json={"to": "accepted"}, headers=OFFICER, timeout=30)
    assert 400 <= response.status_code < 500, response.text[:500]
    assert count(stack) == before


# Query parameters

INTAKE_PARAMETERS = ("status", "service", "district", "centre", "agency", "submitted_from", "submitted_to",
                     "page", "page_size")


# Beyond every parameter's limit, yet a URL the server reads (one of 8 KiB is 414, see below).
QUERY_HOSTILE = {**HOSTILE, "long": "A" * 3000, "control": "a\x01b"}


@pytest.mark.parametrize("parameter", INTAKE_PARAMETERS)
def test_injection_strings_in_query_parameters_are_400_or_match_nothing(stack, parameter):
    total = count(stack)
    for name, value in {**QUERY_HOSTILE, "nul": "a\x00b"}.items():
        response = requests.get(applications_url(stack), params={parameter: value}, headers=OPERATOR, timeout=30)
        assert response.status_code in (200, 400), (name, response.status_code, response.text[:300])
        if response.status_code == 400:
            names_field(response, "url" if name == "nul" else parameter)
        else:
            assert response.json()["total"] == 0, f"{parameter}={value!r} widened the filter"
    assert count(stack) == total


@pytest.mark.parametrize("parameter,value", [
    ("page", "0"), ("page", "-1"), ("page", str(10**30)), ("page", "1e3"), ("page", "1.5"), ("page", "NaN"),
    ("page_size", "0"), ("page_size", "-50"), ("page_size", "501"), ("page_size", str(10**9)), ("page_size", "Infinity"),
    ("submitted_from", "0001-01-01"), ("submitted_from", "9999-12-31"), ("submitted_from", "99999-01-01"),
    ("submitted_from", "2026-02-30"), ("submitted_from", "2026-13-01"), ("submitted_from", "yesterday"),
    ("submitted_to", "9999-12-31"), ("submitted_to", "0001-01-01"), ("submitted_to", "1969-12-31"),
    ("submitted_to", "2026-01-01T00:00:00"),
])
def test_absurd_pages_and_dates_are_400_naming_the_parameter(stack, parameter, value):
    response = requests.get(applications_url(stack), params={parameter: value}, headers=OPERATOR, timeout=30)
    assert response.status_code == 400, response.text[:300]
    names_field(response, parameter)


def test_the_last_possible_page_is_empty_not_an_error(stack):
    response = requests.get(applications_url(stack), params={"page": 1_000_000, "page_size": 500},
                            headers=OPERATOR, timeout=30)
    assert response.status_code == 200 and response.json()["items"] == []


@pytest.mark.parametrize("parameter", ["region", "group", "state", "lang"])
def test_injection_strings_in_catalogue_queries_are_400_naming_them(stack, parameter):
    for value in QUERY_HOSTILE.values():
        response = requests.get(f"{stack.urls['catalogue']}/api/v1/services", params={parameter: value},
                                headers=ADMIN, timeout=30)
        assert response.status_code == 400, response.text[:300]
        names_field(response, parameter)


@pytest.mark.parametrize("length", [2_000, 7_000, 20_000, 100_000])
def test_an_over_long_url_is_a_4xx(stack, length):
    for url in (f"{applications_url(stack)}/{'A' * length}",
                f"{applications_url(stack)}?district={'1' * length}",
                f"{stack.urls['catalogue']}/api/v1/services/{'a' * length}"):
        try:
            response = requests.get(url, headers=OPERATOR, timeout=30)
        except requests.ConnectionError:
            pytest.fail(f"the server dropped a {length}-character URL instead of answering")
        assert 400 <= response.status_code < 500, (length, response.status_code)


# Bodies: size, depth, encoding, on every JSON endpoint

def json_endpoints(stack, number):
    return [
        ("submission", "POST", applications_url(stack), OPERATOR),
        ("transition", "POST", f"{applications_url(stack)}/{number}/transitions", OFFICER),
        ("catalogue edit", "PUT", f"{stack.urls['catalogue']}/api/v1/services/photocopying", ADMIN),
    ]


def send(method, url, data, headers, content_type="application/json"):
    return requests.request(method, url, data=data, headers={**headers, "Content-Type": content_type}, timeout=60)


def test_malformed_bodies_on_every_json_endpoint(stack):
    number = created(stack)
    before = count(stack)
    cases = [
        ("over the size limit", json.dumps({"reason": "x" * (256 * 1024 + 10)}).encode(), 413),  # the catalogue's
        ("far over the size limit", b'{"a": "' + b"x" * (4 * 1024 * 1024) + b'"}', 413),
        ("nested 30000 deep", b"[" * 30_000 + b"]" * 30_000, 400),
        ("objects nested 10000 deep", b'{"a":' * 10_000 + b"1" + b"}" * 10_000, 400),
        ("invalid UTF-8", b'{"to": "\xc3\x28", "reason": "\xff"}', 400),
        ("UTF-16", json.dumps({"to": "accepted"}).encode("utf-16"), 400),
        ("lone surrogate", b'{"to": "accepted", "reason": "\\ud800"}', 400),
        ("NaN and Infinity", b'{"to": NaN, "reason": Infinity}', 400),
        ("duplicate keys", b'{"to": "accepted", "to": "withdrawn", "reason": 1}', 400),
        ("a bare string", b'"accepted"', 400),
        ("trailing garbage", b'{"to": "accepted"} {"to": "withdrawn"}', 400),
    ]
    for name, method, url, headers in json_endpoints(stack, number):
        for case, data, status in cases:
            response = send(method, url, data, headers)
            assert response.status_code == status or (status == 400 and response.status_code == 422), \
                (name, case, response.status_code, response.text[:300])
            assert response.json()["fields"], (name, case)
    assert count(stack) == before
    detail = requests.get(f"{applications_url(stack)}/{number}", headers=OPERATOR, timeout=30).json()
    assert detail["status"] == "submitted" and len(detail["history"]) == 1
    assert requests.get(f"{stack.urls['catalogue']}/api/v1/services/photocopying", headers=ADMIN,
                        timeout=30).status_code == 200


def test_chunked_bodies_are_read_up_to_the_limit(stack):
    def chunks():
        yield b'{"service_code": "'
        for _ in range(200):
            yield b"x" * 1024
        yield b'"}'

    before = count(stack)
    response = requests.post(applications_url(stack), data=chunks(),
                             headers={**OPERATOR, "Content-Type": "application/json"}, timeout=60)
    assert response.status_code == 413, response.text[:300]
    assert count(stack) == before
    small = requests.post(applications_url(stack), data=iter([json.dumps(submission()).encode()]),
                          headers={**OPERATOR, "Content-Type": "application/json"}, timeout=60)
    assert small.status_code == 201, small.text[:300]  # a chunked body within the limit is read, not taken for empty


@pytest.mark.parametrize("depth", [50, 200, 500, 900, 990])
def test_deep_but_parseable_documents_are_refused_not_crashed_on(stack, depth):
    nested = "[" * depth + "]" * depth
    before = count(stack)
    for path in (("attributes", "subject"), ("attributes", "x"), ("applicant", "full_name"), ("documents",)):
        response = send("POST", applications_url(stack), with_raw(submission(), path, nested), OPERATOR)
        assert response.status_code in (400, 422), (depth, path, response.status_code, response.text[:300])
    number = created(stack)
    response = send("POST", f"{applications_url(stack)}/{number}/transitions",
                    with_raw({"to": "returned_for_correction"}, ("reason",), nested), OFFICER)
    assert response.status_code == 400, response.text[:300]
    assert count(stack) == before + 1


# The catalogue

CATALOGUE_FIELDS = (
    ("names", "uz"), ("descriptions", "en"), ("keywords", 0), ("required_documents", 0, "names", "ru"),
    ("attributes", 0, "description", "uz"), ("attributes", 0, "datatype_description"),
    ("agency",), ("group",), ("required_documents", 0, "code"), ("attributes", 0, "code"), ("regions", 0),
    ("fee", "bca_multiple"), ("deadline_working_days",),
)
FREE_TEXT = {("names", "uz"), ("descriptions", "en"), ("required_documents", 0, "names", "ru"),
             ("attributes", 0, "description", "uz"), ("attributes", 0, "datatype_description"), ("keywords", 0)}


@pytest.fixture(scope="module")
def hostile_service(stack):
    """A draft service of the test's own (offered in Jizzakh only), edited by the tests below."""
    definition = {key: value for key, value in copy.deepcopy(seed_service(SERVICE)).items() if key != "state"}
    definition.update(code=f"hostile-{uuid.uuid4().hex[:8]}", regions=[REGION])
    definition["attributes"][0]["datatype_description"] = "a description"
    response = requests.put(f"{stack.urls['catalogue']}/api/v1/services/{definition['code']}", json=definition,
                            headers=ADMIN, timeout=30)
    assert response.status_code in (200, 201), response.text
    return definition


def catalogue_state(stack):
    response = requests.get(f"{stack.urls['catalogue']}/api/v1/services", params={"state": "all"}, headers=ADMIN,
                            timeout=30)
    assert response.status_code == 200, response.text
    return {item["code"]: item for item in response.json()["items"]}


@pytest.mark.parametrize("path", CATALOGUE_FIELDS, ids=lambda path: ".".join(map(str, path)))
def test_injection_strings_in_a_catalogue_edit_are_refused_or_kept_verbatim(stack, hostile_service, path):
    code = hostile_service["code"]
    url = f"{stack.urls['catalogue']}/api/v1/services/{code}"
    others = {key: value for key, value in catalogue_state(stack).items() if key != code}
    stored = 0
    for name, value in {**HOSTILE, "control": "a\x01b"}.items():
        response = requests.put(url, json=placed(hostile_service, path, value), headers=ADMIN, timeout=30)
        assert response.status_code in (200, 201, 400, 422), (name, response.status_code, response.text[:300])
        if response.status_code in (200, 201):
            stored += 1
            assert path in FREE_TEXT and name not in ("long", "control"), (name, "accepted")
            assert read(requests.get(url, headers=ADMIN, timeout=30).json(), path) == value
        else:
            names_field(response, dotted(path))
    if path in FREE_TEXT:
        assert stored == len(HOSTILE) - 1
    after = catalogue_state(stack)
    assert {key: value for key, value in after.items() if key != code} == others, "another service changed"
    requests.put(url, json=hostile_service, headers=ADMIN, timeout=30)


def test_hostile_names_reach_open311_escaped_in_xml_and_json(stack, hostile_service, open311):
    code = hostile_service["code"]
    definition = placed(placed(hostile_service, ("names", "en"), HOSTILE["script"] + " & ]]> \"q\""),
                        ("descriptions", "en"), HOSTILE["jinja"])
    catalogue = stack.urls["catalogue"]
    assert requests.put(f"{catalogue}/api/v1/services/{code}", json=definition, headers=ADMIN, timeout=30).ok
    assert requests.post(f"{catalogue}/api/v1/services/{code}/publish", headers=ADMIN, timeout=30).ok
    try:
        records = []
        for _ in range(100):
            response = requests.get(f"{open311}/services.json", params={"lang": "en"}, timeout=30)
            assert response.status_code == 200, response.text[:300]
            records = [record for record in response.json() if record["service_code"] == code]
            if records and records[0]["service_name"] == definition["names"]["en"]:
                break
            time.sleep(0.1)
        assert records and records[0]["service_name"] == definition["names"]["en"]
        assert records[0]["description"] == HOSTILE["jinja"]
        xml = requests.get(f"{open311}/services.xml", params={"lang": "en"}, timeout=30)
        assert xml.status_code == 200
        names = {element.findtext("service_code"): element.findtext("service_name")
                 for element in SafeXML.fromstring(xml.content).iter("service")}
        assert names[code] == definition["names"]["en"]
        assert b"<script>" not in xml.content
    finally:
        requests.post(f"{catalogue}/api/v1/services/{code}/retire", headers=ADMIN, timeout=30)


# Open311 POST form

@pytest.fixture(scope="module")
def open311(stack):
    process = stack.start("intake", region=REGION, database_url=stack.intake_db[REGION], migrate=False,
                          OPEN311_API_KEYS=f"hostile-partner:{key_digest(OPEN311_KEY)}")
    yield f"{process.url}/open311/v2"
    process.stop()


def open311_form(**overrides):
    good = submission()
    fields = {"api_key": OPEN311_KEY, "jurisdiction_id": REGION, "service_code": SERVICE,
              "address_id": good["district"], "first_name": "Aziza", "last_name": "Karimova",
              "phone": "+998 90 123 45 67", "pinfl": "31234567890123", "language": "uz",
              "documents": ",".join(good["documents"]), "address_string": "Mustaqillik 1", "description": "Hello"}
    fields.update({f"attribute[{code}]": value for code, value in good["attributes"].items()})
    fields.update(overrides)
    return fields


OPEN311_FIELDS = ("first_name", "last_name", "address_string", "description", "phone", "pinfl", "service_code",
                  "address_id", "email", "device_id", "account_id", "media_url", "jurisdiction_id", "lat",
                  "attribute[subject]", "attribute[appeal_text]", "attribute[appeal_type]", "documents", "language")


@pytest.mark.parametrize("field", OPEN311_FIELDS)
@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_hostile_open311_form_fields_are_refused_in_the_specs_format_or_kept_verbatim(stack, open311, field, fmt):
    before = count(stack)
    stored = 0
    for name, value in {**HOSTILE, "control": "a\x01b", "nul": "a\x00b"}.items():
        response = requests.post(f"{open311}/requests.{fmt}", data=open311_form(**{field: value}), timeout=30)
        assert response.status_code in (200, 400, 403, 404), (name, response.status_code, response.text[:300])
        if response.status_code == 200:
            stored += 1
            record = response.json()[0] if fmt == "json" else {
                element.tag: element.text for element in SafeXML.fromstring(response.content).find("request")}
            detail = requests.get(f"{applications_url(stack)}/{record['service_request_id']}", headers=OPERATOR,
                                  timeout=30).json()
            if field in ("first_name", "last_name"):
                assert value in detail["applicant"]["full_name"]
            elif field.startswith("attribute["):
                assert detail["attributes"][field[10:-1]] == value
        elif fmt == "json":
            errors = response.json()
            assert errors and all(set(error) == {"code", "description"} for error in errors), errors
        else:
            assert SafeXML.fromstring(response.content).tag == "errors"
        assert count(stack) == before + stored, f"{field}={name}: something else changed"


# Random documents (hypothesis)

JSON_SCALARS = (st.none() | st.booleans() | st.integers(min_value=-(10**30), max_value=10**30)
                | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=300))
JSON_VALUES = st.recursive(JSON_SCALARS, lambda children: st.lists(children, max_size=5)
                           | st.dictionaries(st.text(max_size=20), children, max_size=5), max_leaves=25)


def mutated_submissions():
    """A valid submission with one field (or one level of it) replaced by a random value."""
    return st.tuples(st.sampled_from([path for path in SUBMISSION_FIELDS if path[-1] != "*"]
                                     + [("applicant",), ("attributes",), ("documents",)]), JSON_VALUES) \
        .map(lambda case: placed(submission(), case[0], case[1]))


SUBMISSION_DOCUMENTS = st.one_of(
    JSON_VALUES,
    st.dictionaries(st.sampled_from(["service_code", "applicant", "district", "centre", "documents", "attributes"]),
                    JSON_VALUES),
    mutated_submissions(),
)
TRANSITION_DOCUMENTS = st.one_of(
    JSON_VALUES,
    st.fixed_dictionaries({"to": JSON_VALUES}, optional={"reason": JSON_VALUES, "actor": JSON_VALUES}),
    st.fixed_dictionaries({"to": st.sampled_from(["accepted", "withdrawn", "returned_for_correction", "approved"]),
                           "reason": JSON_VALUES}),
)
RANDOM = settings(max_examples=150, deadline=None, database=None,
                  suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def never_a_5xx(response, document):
    assert response.status_code < 500, (document, response.status_code, response.text[:500])
    if response.status_code >= 400:
        assert set(response.json()) == {"error", "message", "fields"}


@RANDOM
@given(document=SUBMISSION_DOCUMENTS)
def test_random_json_at_the_submission_endpoint_never_gets_a_5xx(stack, document):
    response = requests.post(applications_url(stack), data=json.dumps(document), timeout=30,
                             headers={**OPERATOR, "Content-Type": "application/json"})
    never_a_5xx(response, document)


@pytest.fixture(scope="module")
def transition_target(stack):
    return created(stack)


@RANDOM
@given(document=TRANSITION_DOCUMENTS)
def test_random_json_at_the_transition_endpoint_never_gets_a_5xx(stack, transition_target, document):
    response = requests.post(f"{applications_url(stack)}/{transition_target}/transitions", data=json.dumps(document),
                             timeout=30, headers={**OFFICER, "Content-Type": "application/json"})
    never_a_5xx(response, document)


# Reporting

@pytest.fixture(scope="module")
def reporting(stack):
    process = stack.start("reporting", region=REGION, database_url=stack.databases.new(f"reporting-hostile-{REGION}"))
    yield process.url
    process.stop()


@pytest.mark.parametrize("path,parameter,value", [
    *[("summary", "from", value) for value in [*QUERY_HOSTILE.values(), "0001-01-01", "9999-12-31", "2026-02-30"]],
    *[("sla", "to", value) for value in [*QUERY_HOSTILE.values(), "0001-01-01", "9999-12-31"]],
    *[("summary", "format", value) for value in QUERY_HOSTILE.values()],
    *[("overdue", "limit", value) for value in ["0", "-1", str(10**30), "1e9", *QUERY_HOSTILE.values()]],
    *[("overdue", "offset", value) for value in ["-1", str(10**30), "NaN"]],
])
def test_hostile_report_parameters_are_400_naming_them(stack, reporting, path, parameter, value):
    response = requests.get(f"{reporting}/api/v1/reports/{path}", params={parameter: value}, headers=ANALYST, timeout=30)
    assert response.status_code == 400, response.text[:300]
    names_field(response, parameter)


def test_open_data_takes_no_hostile_period_either(stack, reporting):
    for value in [HOSTILE["sql"], "9999-12", "0001-01", "0000-01", "2026-00", *QUERY_HOSTILE.values()]:
        response = requests.get(f"{reporting}/api/v1/open-data/summary", params={"month": value}, timeout=30)
        assert response.status_code == 400, response.text[:300]
        names_field(response, "month")
    free_period = requests.get(f"{reporting}/api/v1/open-data/summary", params={"to": "2026-01-31"}, timeout=30)
    assert free_period.status_code == 400
    names_field(free_period, "to")
