"""The anonymous faces of a real regional intake reveal nothing about a person: Open311 lists only
public-interest services without a key (a partner's key adds its own), anonymous pages are small,
the citizen's status needs the receipt's status code and walking the tracking numbers without it
answers 404 then 429, and every public endpoint is rate-limited per client address, counted in
metrics without an address or a number in the labels."""
import re
import uuid
from types import SimpleNamespace

import pytest
import requests

from services.intake.open311.dependencies import key_digest
from tests.integration.conftest import auth, post, valid_submission

pytestmark = pytest.mark.integration

REGION = "namangan"
PUBLIC_SERVICE = "street-light-fault"
KEY = f"insurer-key-{uuid.uuid4().hex}"
LIMITED_BURST = 30


def personal_service():
    return valid_submission(REGION)["service_code"]


def file(stack, service_code=None):
    """File an application at the region's desk; (tracking number, status code)."""
    filed = post(f"{stack.urls[REGION]}/api/v1/applications", valid_submission(REGION, service_code),
                 **auth("operator", REGION))
    assert filed.status_code == 201, filed.text
    return filed.json()["tracking_number"], filed.json()["status_code"]


@pytest.fixture(scope="module")
def faces(stack):
    """Two more intake processes of the region on its database, behind one proxy (FORWARDED_HOPS=1,
    so X-Forwarded-For tells callers apart): one with an insurer's key that may see the personal
    service and tight limits on wrong status codes, one with a small anonymous rate limit."""
    keyed = stack.start("intake", region=REGION, database_url=stack.intake_db[REGION], migrate=False, wait=False,
                        OPEN311_API_KEYS=f"insurer:{key_digest(KEY)}:{personal_service()}", FORWARDED_HOPS=1,
                        STATUS_GUESSES_PER_ADDRESS="4/3600", STATUS_GUESSES_PER_TRACKING_NUMBER="3/3600")
    limited = stack.start("intake", region=REGION, database_url=stack.intake_db[REGION], migrate=False, wait=False,
                          FORWARDED_HOPS=1, ANONYMOUS_RATE_LIMIT=f"{LIMITED_BURST}/3600")
    keyed.wait_healthy()
    limited.wait_healthy()
    yield SimpleNamespace(keyed=keyed, limited=limited)
    limited.stop()
    keyed.stop()


@pytest.fixture(scope="module")
def filed(stack):
    """One application of a personal service, one of photocopying (personal too), one public-interest."""
    return SimpleNamespace(personal=file(stack)[0], photocopying=file(stack, "photocopying")[0],
                           public=file(stack, PUBLIC_SERVICE)[0])


def listed(url, fmt="json", **params):
    response = requests.get(f"{url}/open311/v2/requests.{fmt}", params=params, timeout=30)
    assert response.status_code == 200, response.text
    return response


def ids(url, **params):
    return {record["service_request_id"] for record in listed(url, **params).json()}


def public_codes(stack):
    services = requests.get(f"{stack.urls['catalogue']}/api/v1/services", params={"public_interest": "true"},
                            headers=auth("analyst"), timeout=30).json()["items"]
    return {service["code"] for service in services}


def test_the_catalogue_marks_public_interest_services(stack):
    codes = public_codes(stack)
    assert {PUBLIC_SERVICE, "khokimiyat-written-appeal"} <= codes
    assert not {"disability-allowance", "low-income-family-allowance", "no-criminal-record-certificate",
                "photocopying", personal_service()} & codes


def test_anonymous_open311_lists_no_personal_service(stack, filed):
    url = stack.urls[REGION]
    records = listed(url).json()
    assert records and {record["service_code"] for record in records} <= public_codes(stack)
    assert filed.public in {record["service_request_id"] for record in records}
    everything = f"{filed.personal},{filed.photocopying},{filed.public}"
    assert ids(url, service_request_id=everything) == {filed.public}
    assert ids(url, service_code=f"{personal_service()},photocopying") == set()
    assert filed.personal not in listed(url, "xml").text and filed.photocopying not in listed(url, "xml").text
    # One that is personal and one that does not exist answer alike.
    hidden = requests.get(f"{url}/open311/v2/requests/{filed.personal}.json", timeout=30)
    absent = requests.get(f"{url}/open311/v2/requests/NG-1999-000001.json", timeout=30)
    assert hidden.status_code == absent.status_code == 404
    assert hidden.text.replace(filed.personal, "X") == absent.text.replace("NG-1999-000001", "X")
    assert requests.get(f"{url}/open311/v2/requests/{filed.public}.json", timeout=30).status_code == 200


def test_a_partner_key_sees_only_its_services(faces, filed):
    url = faces.keyed.url
    everything = f"{filed.personal},{filed.photocopying},{filed.public}"
    assert ids(url, service_request_id=everything, api_key=KEY) == {filed.personal, filed.public}
    assert ids(url, service_request_id=everything) == {filed.public}
    assert requests.get(f"{url}/open311/v2/requests/{filed.personal}.json", params={"api_key": KEY},
                        timeout=30).status_code == 200
    assert requests.get(f"{url}/open311/v2/requests/{filed.photocopying}.json", params={"api_key": KEY},
                        timeout=30).status_code == 404
    wrong = requests.get(f"{url}/open311/v2/requests.json", params={"api_key": "guess"}, timeout=30)
    assert wrong.status_code == 403 and wrong.json()[0]["code"] == 403


def test_anonymous_pages_are_small(faces, filed):
    url = f"{faces.keyed.url}/open311/v2/requests.json"
    too_big = requests.get(url, params={"page_size": 51}, timeout=30)
    assert too_big.status_code == 400 and too_big.json()[0]["description"].startswith("page_size")
    assert requests.get(url, params={"page_size": 50}, timeout=30).status_code == 200
    assert requests.get(url, params={"page_size": 1000, "api_key": KEY}, timeout=30).status_code == 200
    assert requests.get(url, params={"page_size": 1001, "api_key": KEY}, timeout=30).status_code == 400


def status(url, tracking, code, address):
    return requests.post(f"{url}/api/v1/status/{tracking}", json={"code": code} if code is not None else {},
                         headers={"X-Forwarded-For": address}, timeout=30)


def earlier(tracking, count):
    """The `count` tracking numbers before this one (later ones are left for the other tests to file)."""
    prefix, number = tracking.rsplit("-", 1)
    return [f"{prefix}-{int(number) - offset:06d}" for offset in range(1, count + 1)]


def test_walking_tracking_numbers_without_the_code_answers_404_then_429(stack, faces):
    url = faces.keyed.url
    tracking, code = file(stack)
    walker = "198.51.100.7"
    answers = [status(url, number, "AAAA-AAAA", walker) for number in earlier(tracking, 4)]
    assert [answer.status_code for answer in answers] == [404] * 4
    assert len({answer.text for answer in answers}) == 1  # an existing number and a missing one look the same
    refused = status(url, tracking, code, walker)  # the walker's guesses are used up, a right code included
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 60
    assert refused.json()["error"] == "too_many_requests" and tracking not in refused.text
    citizen = status(url, tracking, code.lower().replace("-", " "), "203.0.113.20")
    assert citizen.status_code == 200, citizen.text
    assert citizen.json()["tracking_number"] == tracking and citizen.json()["status"] == "submitted"
    for personal in ("31234567890123", "Test Applicant", "+998901234567"):
        assert personal not in citizen.text
    missing = status(url, tracking, None, "203.0.113.20")
    assert missing.status_code == 400 and "code" in missing.json()["fields"]


def test_wrong_codes_for_one_number_from_many_addresses_are_limited_too(stack, faces):
    url = faces.keyed.url
    tracking, code = file(stack)
    wrong = [status(url, tracking, "BBBB-BBBB", f"192.0.2.{index}") for index in range(1, 4)]
    assert [answer.status_code for answer in wrong] == [404, 404, 404]
    locked = status(url, tracking, code, "192.0.2.99")
    assert locked.status_code == 429 and "Retry-After" in locked.headers
    other, other_code = file(stack)
    assert status(url, other, other_code, "192.0.2.99").status_code == 200  # the address itself is not locked


def metric_samples(process, name):
    text = requests.get(f"http://127.0.0.1:{process.metrics_port}/metrics", timeout=30).text
    return {line.split(" ")[0]: float(line.split(" ")[1]) for line in text.splitlines() if line.startswith(name + "{")}, text


def test_every_public_endpoint_is_rate_limited_per_address_and_counted(stack, faces):
    url = faces.limited.url
    caller = {"X-Forwarded-For": "198.51.100.50"}
    paths = ["/open311/v2/services.json", "/health", "/status/", "/open311/v2/discovery.xml", "/openapi.json"]
    answers = [requests.get(f"{url}{paths[index % len(paths)]}", headers=caller, timeout=30)
               for index in range(LIMITED_BURST)]
    assert all(answer.status_code in (200, 503) for answer in answers), [a.status_code for a in answers]
    for path in paths:
        refused = requests.get(f"{url}{path}", headers=caller, timeout=30)
        assert refused.status_code == 429, (path, refused.status_code)
        assert int(refused.headers["Retry-After"]) >= 1
    georeport = requests.get(f"{url}/open311/v2/requests.xml", headers=caller, timeout=30)
    assert georeport.status_code == 429 and "<errors>" in georeport.text  # in the format the URL asked for
    refused_status = requests.post(f"{url}/api/v1/status/NG-2026-000001", json={"code": "x"}, headers=caller, timeout=30)
    assert refused_status.status_code == 429
    # Another address has its own allowance; a signed-in caller is not limited.
    assert requests.get(f"{url}/open311/v2/services.json", headers={"X-Forwarded-For": "198.51.100.51"},
                        timeout=30).status_code == 200
    signed_in = requests.get(f"{url}/api/v1/applications", params={"page_size": 1},
                             headers={**caller, **auth("operator", REGION)}, timeout=30)
    assert signed_in.status_code == 200, signed_in.text
    samples, text = metric_samples(faces.limited, "oss_anonymous_requests_refused_total")
    by_entrypoint = {re.search(r'entrypoint="([^"]+)"', name)[1]: value for name, value in samples.items()
                     if 'limit="address"' in name}
    assert by_entrypoint["open311_services"] >= 1 and by_entrypoint["health"] >= 1
    assert by_entrypoint["http_public_status"] >= 1
    assert "198.51.100" not in text and "NG-2026" not in text


def test_refused_status_guesses_are_counted_without_numbers_or_addresses(faces):
    samples, text = metric_samples(faces.keyed, "oss_status_lookups_total")
    outcomes = {re.search(r'outcome="([^"]+)"', name)[1]: value for name, value in samples.items()}
    assert outcomes.get("not_found", 0) >= 1 and outcomes.get("refused", 0) >= 1 and outcomes.get("found", 0) >= 1
    refused, _ = metric_samples(faces.keyed, "oss_anonymous_requests_refused_total")
    assert any('limit="status_address"' in name for name in refused)
    assert any('limit="status_tracking"' in name for name in refused)
    assert not re.search(r"[A-Z]{2}-\d{4}-\d{6}", text) and "192.0.2." not in text and "198.51.100" not in text


def test_a_lost_receipt_gets_a_new_status_code_and_the_old_one_stops_working(stack):
    """The desk reissues the code (the citizen lost the receipt): only the new one answers, only a
    token of the region's operators may ask, and nothing else about the application changes."""
    url = stack.urls[REGION]
    tracking, old_code = file(stack)
    address = f"10.9.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}"
    before = status(url, tracking, old_code, address)
    assert before.status_code == 200, before.text
    reissue = f"{url}/api/v1/applications/{tracking}/status-code"
    assert requests.post(reissue, timeout=30).status_code == 401
    assert requests.post(reissue, headers=auth("operator", "jizzakh"), timeout=30).status_code == 403
    assert requests.post(reissue, headers=auth("officer", REGION), timeout=30).status_code == 403
    missing = requests.post(f"{url}/api/v1/applications/{tracking[:-6]}999999/status-code",
                            headers=auth("operator", REGION), timeout=30)
    assert missing.status_code == 404, missing.text
    assert status(url, tracking, old_code, address).status_code == 200  # the refused requests changed nothing
    answer = requests.post(reissue, headers=auth("operator", REGION), timeout=30)
    assert answer.status_code == 200, answer.text
    assert set(answer.json()) == {"tracking_number", "status_code"} and answer.json()["tracking_number"] == tracking
    new_code = answer.json()["status_code"]
    assert new_code != old_code
    assert status(url, tracking, old_code, address).status_code == 404
    after = status(url, tracking, new_code, address)
    assert after.status_code == 200 and after.json() == before.json()
