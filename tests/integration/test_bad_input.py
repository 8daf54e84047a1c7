"""Malformed requests: each answered 4xx naming the offending field, and nothing is written."""
import json

import pytest
import requests

from tests.conftest import as_caller
from tests.integration.conftest import auth, valid_submission

OPERATOR = auth("operator", "namangan")
OFFICER = auth("officer", "namangan")

REGION = "namangan"
REGION_ADMIN = as_caller("region-admin", REGION)


def without(body, *path):
    body = json.loads(json.dumps(body))
    target = body
    for key in path[:-1]:
        target = target[key]
    del target[path[-1]]
    return body


def with_value(body, value, *path):
    body = json.loads(json.dumps(body))
    target = body
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return body


def cases():
    good = valid_submission(REGION)
    return [
        # (id, body or raw bytes, headers, expected status, field named)
        ("missing service_code", without(good, "service_code"), {}, 400, "service_code"),
        ("missing applicant", without(good, "applicant"), {}, 400, "applicant"),
        ("missing pinfl", without(good, "applicant", "pinfl"), {}, 400, "applicant.pinfl"),
        ("missing full_name", without(good, "applicant", "full_name"), {}, 400, "applicant.full_name"),
        ("missing phone", without(good, "applicant", "phone"), {}, 400, "applicant.phone"),
        ("missing district", without(good, "district"), {}, 400, "district"),
        ("pinfl too short", with_value(good, "1234567890123", "applicant", "pinfl"), {}, 400, "applicant.pinfl"),
        ("pinfl with letters", with_value(good, "1234567890123A", "applicant", "pinfl"), {}, 400, "applicant.pinfl"),
        ("pinfl as number", with_value(good, 31234567890123, "applicant", "pinfl"), {}, 400, "applicant.pinfl"),
        ("phone not +998", with_value(good, "+79001234567", "applicant", "phone"), {}, 400, "applicant.phone"),
        ("bad language", with_value(good, "de", "applicant", "language"), {}, 400, "applicant.language"),
        ("bad channel", with_value(good, "pigeon", "applicant", "channel"), {}, 400, "applicant.channel"),
        ("email channel without email", with_value(good, "email", "applicant", "channel"), {}, 400, "applicant.email"),
        ("malformed email", with_value(with_value(good, "email", "applicant", "channel"), "not-an-email", "applicant", "email"),
         {}, 400, "applicant.email"),
        ("documents not a list", with_value(good, "passport", "documents"), {}, 400, "documents"),
        ("attributes not an object", with_value(good, ["a"], "attributes"), {}, 400, "attributes"),
        ("unknown top-level field", with_value(good, "x", "colour"), {}, 400, "colour"),
        ("unknown applicant field", with_value(good, "x", "applicant", "nickname"), {}, 400, "applicant.nickname"),
        ("unknown service", with_value(good, "teleportation-permit", "service_code"), {}, 422, "service_code"),
        ("draft service", with_value(good, "__draft__", "service_code"), {}, 422, "service_code"),
        ("not offered in this region", with_value(good, "__pilot__", "service_code"), {}, 422, "service_code"),
        ("district of another region", with_value(good, "1708401", "district"), {}, 422, "district"),
        ("unknown centre", with_value(good, "nowhere-centre", "centre"), {}, 422, "centre"),
        ("missing required document", with_value(good, [], "documents"), {}, 422, "documents"),
        ("unknown attribute", with_value(good, {"colour": "red"}, "attributes"), {}, 422, "attributes.colour"),
        ("invalid JSON", b'{"service_code": ', {"Content-Type": "application/json"}, 400, "body"),
        ("JSON array body", b"[1, 2, 3]", {"Content-Type": "application/json"}, 400, "body"),
        ("empty body", b"", {"Content-Type": "application/json"}, 400, "body"),
        ("invalid UTF-8", b'{"service_code": "\xff\xfe"}', {"Content-Type": "application/json"}, 400, "body"),
        ("oversized body", json.dumps(with_value(good, "x" * 200_000, "applicant", "full_name")).encode(),
         {"Content-Type": "application/json"}, 413, "body"),
        ("not JSON content type", b"service_code=x", {"Content-Type": "application/x-www-form-urlencoded"}, 415, "body"),
        ("deeply nested JSON", (b'{"attributes": ' + b"[" * 5000 + b"]" * 5000 + b"}"),
         {"Content-Type": "application/json"}, 400, "body"),
        ("bad idempotency key", good, {"Idempotency-Key": "x" * 300}, 400, "Idempotency-Key"),
    ]


def _resolve(body, services):
    if isinstance(body, dict) and body.get("service_code") in services:
        body = dict(body, service_code=services[body["service_code"]])
    return body


@pytest.fixture(scope="module")
def special_services(stack):
    with stack.rpc() as cluster:
        everything = cluster.catalogue.list_services(state="all")
    draft = next(s["code"] for s in everything if s["state"] == "draft")
    pilot = next(s["code"] for s in everything if s["state"] == "published" and REGION not in s["regions"])
    return {"__draft__": draft, "__pilot__": pilot}


# What the field's message says where the field alone does not tell the rules apart.
MESSAGES = {"unknown service": "unknown service", "draft service": "service is draft",
            "not offered in this region": f"not offered in {REGION}"}


def test_at_least_25_cases():
    assert len(cases()) >= 25


@pytest.mark.parametrize("case", cases(), ids=[case[0] for case in cases()])
def test_malformed_submission_is_refused_naming_the_field(stack, special_services, case):
    name, body, headers, status, field = case
    url = f"{stack.urls[REGION]}/api/v1/applications"
    before = requests.get(url, params={"page_size": 1}, timeout=10, headers=OPERATOR).json()["total"]
    with stack.rpc(caller=REGION_ADMIN) as cluster:
        events_before = _event_count(cluster)
    if isinstance(body, bytes):
        response = requests.post(url, data=body, headers={**OPERATOR, **headers}, timeout=30)
    else:
        response = requests.post(url, json=_resolve(body, special_services), headers={**OPERATOR, **headers}, timeout=30)
    assert response.status_code == status, response.text
    error = response.json()
    assert set(error) == {"error", "message", "fields"}
    assert field in error["fields"], error
    if name in MESSAGES:
        assert error["fields"][field] == [MESSAGES[name]], error
    assert "31234567890123" not in response.text
    assert requests.get(url, params={"page_size": 1}, timeout=10, headers=OPERATOR).json()["total"] == before
    with stack.rpc(caller=REGION_ADMIN) as cluster:
        assert _event_count(cluster) == events_before


def _event_count(cluster):
    count, after = 0, 0
    while True:
        page = getattr(cluster, f"intake_{REGION}").export_events(after_id=after, limit=5000)
        count += len(page["items"])
        after = page["next_after_id"]
        if not page["more"]:
            return count


@pytest.mark.parametrize("body,status,field", [
    ({"to": "approved"}, 409, "to"),
    ({"to": "teleported"}, 400, "to"),
    ({"to": "returned_for_correction"}, 422, "reason"),
    ({}, 400, "to"),
    # The actor is the token's holder; a body cannot name another one.
    ({"to": "accepted", "actor": "officer:someone-else"}, 400, "actor"),
    ({"to": "accepted", "extra": 1}, 400, "extra"),
])
def test_malformed_transition_is_refused(stack, body, status, field):
    created = requests.post(f"{stack.urls[REGION]}/api/v1/applications", json=valid_submission(REGION), timeout=30,
                            headers=OPERATOR).json()
    url = f"{stack.urls[REGION]}/api/v1/applications/{created['tracking_number']}"
    response = requests.post(f"{url}/transitions", json=body, timeout=30, headers=OFFICER)
    assert response.status_code == status, response.text
    assert field in response.json()["fields"]
    detail = requests.get(url, timeout=10, headers=OFFICER).json()
    assert detail["status"] == "submitted" and len(detail["history"]) == 1


def test_unknown_application_is_404(stack):
    response = requests.get(f"{stack.urls[REGION]}/api/v1/applications/NG-2026-999999", timeout=10, headers=OFFICER)
    assert response.status_code == 404 and response.json()["fields"] == {"tracking_number": ["unknown"]}
    response = requests.post(f"{stack.urls[REGION]}/api/v1/applications/NG-2026-999999/transitions",
                             json={"to": "accepted"}, timeout=10, headers=OFFICER)
    assert response.status_code == 404


def test_unknown_paths_and_methods_answer_in_the_error_format(stack):
    missing = requests.get(f"{stack.urls[REGION]}/api/v1/no-such-thing", headers=OPERATOR, timeout=10)
    assert missing.status_code == 404 and missing.headers["Content-Type"] == "application/json"
    assert missing.json()["error"] == "not_found" and missing.json()["fields"] == {"url": ["unknown path"]}
    # An empty tracking number: a path no route takes.
    empty = requests.post(f"{stack.urls[REGION]}/api/v1/applications//transitions", json={"to": "accepted"},
                          headers=OFFICER, timeout=10)
    assert empty.status_code in (404, 405) and set(empty.json()) == {"error", "message", "fields"}
    wrong = requests.delete(f"{stack.urls[REGION]}/api/v1/applications", headers=OPERATOR, timeout=10)
    assert wrong.status_code == 405 and wrong.json()["error"] == "method_not_allowed"
    assert {"GET", "POST"} <= {method.strip() for method in wrong.headers["Allow"].split(",")}
    catalogue = requests.patch(f"{stack.urls['catalogue']}/api/v1/services", timeout=10)
    assert catalogue.status_code == 405 and catalogue.json()["fields"] == {"method": ["not allowed"]}
