"""Who may do what, against the real stack: tokens, roles, regions, centres and agencies, the audit
trail, and masked personal data."""
import time

import jwt
import requests

from oss_common.auth import SigningKey, issue_token
from tests.conftest import TEST_JWKS, TEST_SIGNING_KEY, TEST_SIGNING_KEY_FILE, forged_token, token
from tests.integration.conftest import auth, seed_service, valid_submission


def applications(stack, region):
    return f"{stack.urls[region]}/api/v1/applications"


def count(stack, region):
    response = requests.get(applications(stack, region), params={"page_size": 1}, headers=auth("operator", region),
                            timeout=10)
    assert response.status_code == 200, response.text
    return response.json()["total"]


def file(stack, region, centre=None, operator=None, **overrides):
    body = valid_submission(region, **overrides)
    if centre:
        body["centre"] = centre
    response = requests.post(applications(stack, region), json=body, timeout=30,
                             headers=operator or auth("operator", region))
    assert response.status_code == 201, response.text
    return response.json()


def test_without_a_valid_token_every_api_answers_401_and_changes_nothing(stack):
    expired = issue_token(TEST_SIGNING_KEY, "operator", "late", region="jizzakh", centres=["jizzakh-city"],
                          ttl_seconds=60, now=time.time() - 7200)
    forged = forged_token("operator", "jizzakh", subject="mallory", centres=["jizzakh-city"])
    before = count(stack, "jizzakh")
    for headers, reason in (({}, "required"), ({"Authorization": f"Bearer {expired}"}, "expired"),
                            ({"Authorization": f"Bearer {forged}"}, "invalid token"),
                            ({"Authorization": "Basic b3BlcmF0b3I6c2VjcmV0"}, "must be Bearer <token>")):
        for method, url, body in (
                ("POST", applications(stack, "jizzakh"), valid_submission("jizzakh")),
                ("GET", applications(stack, "jizzakh"), None),
                ("GET", f"{stack.urls['jizzakh']}/api/v1/districts", None),
                ("GET", f"{stack.urls['catalogue']}/api/v1/services", None),
                ("PUT", f"{stack.urls['catalogue']}/api/v1/services/new-service", {"code": "new-service"})):
            response = requests.request(method, url, json=body, headers=headers, timeout=10)
            assert response.status_code == 401, (method, url, response.text)
            assert response.headers["WWW-Authenticate"] == 'Bearer realm="oss"'
            assert response.json()["fields"] == {"Authorization": [reason]}
    assert count(stack, "jizzakh") == before


def test_health_openapi_and_open311_need_no_token(stack):
    for url in (f"{stack.urls['jizzakh']}/health", f"{stack.urls['catalogue']}/health",
                f"{stack.urls['jizzakh']}/openapi.json", f"{stack.urls['jizzakh']}/open311/v2/services.json"):
        assert requests.get(url, timeout=10).status_code == 200, url


def test_a_jizzakh_token_gets_403_on_namangan_reading_or_writing(stack):
    jizzakh = auth("operator", "jizzakh")
    before = count(stack, "namangan")
    submitted = requests.post(applications(stack, "namangan"), json=valid_submission("namangan"), headers=jizzakh, timeout=30)
    assert submitted.status_code == 403 and "jizzakh" in submitted.json()["message"]
    assert requests.get(applications(stack, "namangan"), headers=jizzakh, timeout=10).status_code == 403
    number = file(stack, "namangan")["tracking_number"]
    assert requests.get(f"{applications(stack, 'namangan')}/{number}", headers=jizzakh, timeout=10).status_code == 403
    moved = requests.post(f"{applications(stack, 'namangan')}/{number}/transitions", json={"to": "accepted"},
                          headers=auth("officer", "jizzakh"), timeout=10)
    assert moved.status_code == 403
    assert count(stack, "namangan") == before + 1


def test_an_operator_cannot_transition_and_an_officer_cannot_submit(stack):
    number = file(stack, "fergana")["tracking_number"]
    refused = requests.post(f"{applications(stack, 'fergana')}/{number}/transitions", json={"to": "accepted"},
                            headers=auth("operator", "fergana"), timeout=10)
    assert refused.status_code == 403 and refused.json()["error"] == "forbidden"
    before = count(stack, "fergana")
    assert requests.post(applications(stack, "fergana"), json=valid_submission("fergana"),
                         headers=auth("officer", "fergana"), timeout=10).status_code == 403
    assert count(stack, "fergana") == before
    detail = requests.get(f"{applications(stack, 'fergana')}/{number}", headers=auth("officer", "fergana"), timeout=10)
    assert detail.json()["status"] == "submitted" and len(detail.json()["history"]) == 1


def test_an_analyst_never_sees_an_applicant(stack):
    number = file(stack, "jizzakh")["tracking_number"]
    analyst = auth("analyst")
    for url in (applications(stack, "jizzakh"), f"{applications(stack, 'jizzakh')}/{number}"):
        response = requests.get(url, headers=analyst, timeout=10)
        assert response.status_code == 403
        assert "31234567890123" not in response.text and "Test Applicant" not in response.text


def test_operators_see_only_their_centres_and_officers_only_their_agencies(stack):
    at_city = auth("operator", "jizzakh", centres=["jizzakh-city"], subject="city-desk")
    at_arnasoy = auth("operator", "jizzakh", centres=["arnasoy"], subject="arnasoy-desk")
    city = file(stack, "jizzakh", centre="jizzakh-city", operator=at_city)
    assert city["centre"] == "jizzakh-city"
    # The operator's own centre is the default; another's centre is refused, naming the field.
    arnasoy = file(stack, "jizzakh", operator=at_arnasoy)
    assert arnasoy["centre"] == "arnasoy"
    elsewhere = requests.post(applications(stack, "jizzakh"), json=dict(valid_submission("jizzakh"), centre="jizzakh-city"),
                              headers=at_arnasoy, timeout=30)
    assert elsewhere.status_code == 403 and "centre" in elsewhere.json()["fields"]
    assert requests.get(f"{applications(stack, 'jizzakh')}/{city['tracking_number']}", headers=at_arnasoy,
                        timeout=10).status_code == 403
    listed = requests.get(applications(stack, "jizzakh"), params={"page_size": 500}, headers=at_arnasoy, timeout=10).json()
    assert arnasoy["tracking_number"] in {item["tracking_number"] for item in listed["items"]}
    assert {item["centre"] for item in listed["items"]} == {"arnasoy"}

    agency = city["agency"]
    other_agency = next(code for code in ("khokimiyat", "cadastre-agency") if code != agency)
    mine = auth("officer", "jizzakh", agencies=[agency])
    not_mine = auth("officer", "jizzakh", agencies=[other_agency])
    url = f"{applications(stack, 'jizzakh')}/{city['tracking_number']}"
    assert requests.get(url, headers=not_mine, timeout=10).status_code == 403
    refused = requests.post(f"{url}/transitions", json={"to": "accepted"}, headers=not_mine, timeout=10)
    assert refused.status_code == 403 and "agency" in refused.json()["fields"]
    assert requests.post(f"{url}/transitions", json={"to": "accepted"}, headers=mine, timeout=10).status_code == 200
    listed = requests.get(applications(stack, "jizzakh"), params={"page_size": 500}, headers=not_mine, timeout=10).json()
    assert {item["agency"] for item in listed["items"]} <= {other_agency}


def test_every_state_change_names_its_actor(stack):
    operator = auth("operator", "namangan", subject="desk-17")
    number = file(stack, "namangan", operator=operator)["tracking_number"]
    url = f"{applications(stack, 'namangan')}/{number}"
    for target, subject in (("accepted", "officer-a"), ("in_review", "officer-b"), ("approved", "officer-a")):
        moved = requests.post(f"{url}/transitions", json={"to": target}, headers=auth("officer", "namangan", subject=subject),
                              timeout=10)
        assert moved.status_code == 200, moved.text
    history = requests.get(url, headers=operator, timeout=10).json()["history"]
    assert [(change["to"], change["actor"]) for change in history] == [
        ("submitted", "operator:desk-17"), ("accepted", "officer:officer-a"), ("in_review", "officer:officer-b"),
        ("approved", "officer:officer-a")]


def test_catalogue_changes_need_an_admin_and_are_audited(stack):
    code = valid_submission("jizzakh")["service_code"]
    definition = {key: value for key, value in seed_service(code).items() if key not in ("state",)}
    definition["code"] = "audited-service"
    url = f"{stack.urls['catalogue']}/api/v1/services/audited-service"
    assert requests.put(url, json=definition, headers=auth("operator", "jizzakh"), timeout=10).status_code == 403
    assert requests.get(url, headers=auth("analyst"), timeout=10).status_code == 404
    admin = auth("catalogue-admin", subject="editor-1")
    created = requests.put(url, json=definition, headers=admin, timeout=10)
    assert created.status_code == 200, created.text
    assert requests.post(f"{url}/publish", headers=auth("officer", "jizzakh"), timeout=10).status_code == 403
    assert requests.post(f"{url}/publish", headers=auth("catalogue-admin", subject="editor-2"), timeout=10).status_code == 200
    changes = requests.get(f"{url}/changes", headers=auth("analyst"), timeout=10)
    assert changes.status_code == 200
    assert [(item["version"], item["state"], item["actor"]) for item in changes.json()["items"]] == [
        (1, "draft", "catalogue-admin:editor-1"), (2, "published", "catalogue-admin:editor-2")]
    assert requests.get(f"{url}/changes", headers=auth("operator", "jizzakh"), timeout=10).status_code == 403


def test_personal_data_is_masked_except_in_the_detail_view_for_the_region_staff(stack):
    created = file(stack, "fergana")
    number = created["tracking_number"]
    assert created["applicant"]["pinfl"] == "31234567890123"
    listed = requests.get(applications(stack, "fergana"), params={"page_size": 500}, headers=auth("operator", "fergana"),
                          timeout=10).json()
    item = next(item for item in listed["items"] if item["tracking_number"] == number)
    assert item["applicant"]["pinfl"] == "31**********23" and item["applicant"]["phone"].endswith("67")
    assert "1234567890" not in item["applicant"]["phone"] and item["applicant"]["full_name"] is None
    for role in ("operator", "officer"):
        detail = requests.get(f"{applications(stack, 'fergana')}/{number}", headers=auth(role, "fergana"), timeout=10).json()
        assert detail["applicant"]["pinfl"] == "31234567890123" and detail["applicant"]["full_name"] == "Test Applicant"


def oss(*args, **env):
    import subprocess
    import sys

    from oss_common.config import PROJECT_ROOT

    return subprocess.run([sys.executable, "-m", "oss_common.cli", *args], env={"PATH": "/usr/bin:/bin", **env},
                          cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60)


def test_the_token_command_makes_tokens_the_services_accept(stack):
    made = oss("token", "issue", "--role", "operator", "--region", "jizzakh", "--centre", "jizzakh-city,arnasoy",
               "--subject", "cli-desk", AUTH_SIGNING_KEY_FILE=TEST_SIGNING_KEY_FILE)
    assert made.returncode == 0, made.stderr
    issued = made.stdout.strip()
    response = requests.get(applications(stack, "jizzakh"), headers={"Authorization": f"Bearer {issued}"}, timeout=10)
    assert response.status_code == 200
    wrong = oss("token", "issue", "--role", "operator", "--region", "jizzakh", "--subject", "cli-desk",
                AUTH_SIGNING_KEY_FILE=TEST_SIGNING_KEY_FILE)
    assert wrong.returncode == 2 and "centre" in wrong.stderr
    too_long = oss("token", "issue", "--role", "analyst", "--subject", "a", "--ttl-hours", "24",
                   AUTH_SIGNING_KEY_FILE=TEST_SIGNING_KEY_FILE)
    assert too_long.returncode == 2 and "12 hours" in too_long.stderr


def test_catalogue_load_acts_with_a_catalogue_admins_token_only(stack):
    from tests.integration.conftest import SEED

    for env, status, said in (({}, 2, "OSS_TOKEN"), ({"OSS_TOKEN": token("operator", "jizzakh")}, 3, "Forbidden"),
                              ({"OSS_TOKEN": forged_token("catalogue-admin")}, 3, "Unauthorized")):
        refused = oss("catalogue", "load", str(SEED), AMQP_URI=stack.amqp_uri, OSS_VAR_DIR="/nonexistent", **env)
        assert refused.returncode == status and said in refused.stderr, (env, refused.stderr[-500:])
    loaded = oss("catalogue", "load", str(SEED), AMQP_URI=stack.amqp_uri, OSS_TOKEN=token("catalogue-admin"))
    assert loaded.returncode == 0, loaded.stderr[-2000:]
    assert "0 services changed" in loaded.stdout


def test_an_oblast_issuer_counts_for_its_own_staff_only_and_its_key_joins_and_leaves_without_restart(stack, tmp_path):
    """Fergana runs its own issuer: its key is added to the JWKS the services already read (they take
    it up at its first token, no restart); its tokens open Fergana's desk, not Jizzakh's, and sign
    no national role; once the key is retired its tokens stop counting."""
    key_file = tmp_path / "fergana.jwk"
    made = oss("keys", "new", "--region", "fergana", "--key", str(key_file), "--jwks", TEST_JWKS)
    assert made.returncode == 0, made.stderr
    kid = made.stdout.strip()
    fergana_key = SigningKey.load(key_file)
    assert fergana_key.region == "fergana" and fergana_key.kid == kid
    own = {"Authorization": f"Bearer {token('operator', 'fergana', signing_key=fergana_key)}"}
    assert requests.get(applications(stack, "fergana"), headers=own, timeout=10).status_code == 200
    assert requests.get(applications(stack, "jizzakh"), headers=own, timeout=10).status_code == 403
    now = int(time.time())
    for claims in ({"role": "operator", "region": "jizzakh", "centres": ["jizzakh-city"]}, {"role": "analyst"}):
        overreach = jwt.encode({"iss": "oss-fergana", "sub": "mallory", "iat": now, "exp": now + 600, **claims},
                               fergana_key.key, algorithm="EdDSA", headers={"kid": kid})
        for region in ("jizzakh", "fergana"):
            response = requests.get(applications(stack, region), headers={"Authorization": f"Bearer {overreach}"},
                                    timeout=10)
            assert response.status_code == 401, (claims, region, response.text)
    unsigned_issuer = jwt.encode({"iss": "oss", "sub": "mallory", "role": "operator", "region": "fergana",
                                  "centres": ["fergana-city"], "iat": now, "exp": now + 600},
                                 fergana_key.key, algorithm="EdDSA", headers={"kid": kid})
    assert requests.get(applications(stack, "fergana"), headers={"Authorization": f"Bearer {unsigned_issuer}"},
                        timeout=10).status_code == 401, "a regional key cannot pass for the ministry's issuer"
    retired = oss("keys", "retire", "--kid", kid, "--jwks", TEST_JWKS)
    assert retired.returncode == 0, retired.stderr
    fresh = {"Authorization": f"Bearer {token('operator', 'fergana', signing_key=fergana_key, subject='after')}"}
    deadline = time.monotonic() + 60
    while requests.get(applications(stack, "fergana"), headers=fresh, timeout=10).status_code != 401:
        assert time.monotonic() < deadline, "a retired key must stop counting once the services re-read the JWKS"
        time.sleep(2)
