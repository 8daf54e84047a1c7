"""The services take the access tokens of a standard OpenID Connect provider (here the demo's,
deploy/local/oidc/, signed in to through its login form with PKCE): an intake configured with the
provider's issuer and audience finds its JWKS through discovery, maps its claims, and holds its
staff to their region, centres and agencies as it holds the platform's own tokens' holders."""
import base64
import json

import jwt
import pytest
import requests
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.integration.conftest import auth, post, valid_submission
from tests.integration.oidc import AUDIENCE, tokens_for

pytestmark = pytest.mark.integration

REGION = "jizzakh"


@pytest.fixture(scope="module")
def intake(stack, oidc_provider):
    """Jizzakh's intake, one more process on its database, taking the provider's tokens too."""
    process = stack.start("intake", region=REGION, database_url=stack.intake_db[REGION], migrate=False,
                          AUTH_OIDC_ISSUER=oidc_provider.issuer, AUTH_OIDC_AUDIENCE=AUDIENCE)
    yield process
    process.stop()


def bearer(oidc_provider, login):
    tokens, _session = tokens_for(oidc_provider, login, f"{login.replace('.', '-')}-demo")
    return {"Authorization": f"Bearer {tokens['access_token']}"}


def test_an_operator_signed_in_at_the_provider_files_and_is_named_in_the_history(intake, oidc_provider):
    operator = bearer(oidc_provider, "jizzakh.operator")
    filed = post(f"{intake.url}/api/v1/applications", valid_submission(REGION), **operator)
    assert filed.status_code == 201, filed.text
    tracking = filed.json()["tracking_number"]
    assert filed.json()["history"][0]["actor"] == "operator:jizzakh.operator"
    officer = bearer(oidc_provider, "jizzakh.officer")
    assert requests.get(f"{intake.url}/api/v1/applications/{tracking}", headers=officer, timeout=30).status_code == 200


def test_staff_of_another_region_are_refused_this_regions_applications(intake, oidc_provider):
    filed = post(f"{intake.url}/api/v1/applications", valid_submission(REGION), **auth("operator", REGION))
    assert filed.status_code == 201, filed.text
    tracking = filed.json()["tracking_number"]
    fergana_officer = bearer(oidc_provider, "fergana.officer")
    for path in (f"/api/v1/applications/{tracking}", "/api/v1/applications"):
        refused = requests.get(f"{intake.url}{path}", headers=fergana_officer, timeout=30)
        assert refused.status_code == 403 and "fergana" in refused.json()["message"], refused.text
    namangan_operator = bearer(oidc_provider, "namangan.operator")
    assert post(f"{intake.url}/api/v1/applications", valid_submission(REGION), **namangan_operator).status_code == 403
    analyst = bearer(oidc_provider, "ministry.analyst")
    assert requests.get(f"{intake.url}/api/v1/applications", headers=analyst, timeout=30).status_code == 403


def test_a_forged_or_altered_provider_token_is_401(intake, oidc_provider):
    genuine = bearer(oidc_provider, "jizzakh.operator")["Authorization"].split(" ", 1)[1]
    header, payload, signature = genuine.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    widened = base64.urlsafe_b64encode(json.dumps({**claims, "region": "namangan"}).encode()).rstrip(b"=").decode()
    forged = jwt.encode({**claims, "role": "catalogue-admin"}, Ed25519PrivateKey.generate(), algorithm="EdDSA",
                        headers={"kid": jwt.get_unverified_header(genuine)["kid"]})
    other_audience = jwt.encode({**claims, "aud": "someone-else"}, Ed25519PrivateKey.generate(), algorithm="EdDSA")
    for token in (f"{header}.{widened}.{signature}", forged, other_audience):
        answer = requests.get(f"{intake.url}/api/v1/applications", headers={"Authorization": f"Bearer {token}"},
                              timeout=30)
        assert answer.status_code == 401, answer.text


def test_the_platforms_own_tokens_still_count(intake):
    assert requests.get(f"{intake.url}/api/v1/applications", params={"page_size": 1}, headers=auth("officer", REGION),
                        timeout=30).status_code == 200
