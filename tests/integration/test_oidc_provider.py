"""The demo's OpenID Connect provider (deploy/local/oidc/: npm oidc-provider run by node), driven
as a browser-less client would: discovery, the authorization-code flow with PKCE through its login
form, a JWT access token for the services' audience with the staff claims, checked against the
provider's JWKS; refresh, a wrong password, a flow without PKCE, and signing out at the provider."""
import base64
import hashlib
import re
import secrets
import shutil
import subprocess
import time
from pathlib import Path
from urllib.parse import parse_qs, urljoin, urlparse

import jwt
import pytest
import requests

from oss_common.config import PROJECT_ROOT
from tests.conftest import free_port, missing_tool

pytestmark = pytest.mark.integration

OIDC_DIR = PROJECT_ROOT / "deploy" / "local" / "oidc"
CLIENT = "oss-web"
AUDIENCE = "urn:oss:api"


@pytest.fixture(scope="module")
def provider(tmp_path_factory):
    if shutil.which("node") is None or not (OIDC_DIR / "node_modules" / "oidc-provider").is_dir():
        missing_tool("node or deploy/local/oidc/node_modules is missing: run deploy/local/ensure-oidc.sh")
    tmp = tmp_path_factory.mktemp("oidc")
    issuer = f"http://127.0.0.1:{free_port()}"
    redirect = "http://127.0.0.1:8104/desk/"
    log = (tmp / "oidc.log").open("w")
    process = subprocess.Popen(
        ["node", "server.js"], cwd=OIDC_DIR, stdout=log, stderr=subprocess.STDOUT,
        env={"PATH": "/usr/bin:/bin:/usr/local/bin", "OIDC_ISSUER": issuer, "OIDC_KEYS_FILE": str(tmp / "key.json"),
             "OIDC_REDIRECT_URIS": redirect, "OIDC_ACCESS_TOKEN_TTL": "120"})
    deadline = time.monotonic() + 30
    while True:
        try:
            discovery = requests.get(f"{issuer}/.well-known/openid-configuration", timeout=2).json()
            break
        except requests.RequestException:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the provider did not start: {Path(log.name).read_text()}")
            time.sleep(0.2)
    yield type("Provider", (), {"issuer": issuer, "redirect": redirect, "discovery": discovery, "key_file": tmp / "key.json"})
    process.terminate()
    process.wait(timeout=10)
    log.close()


def pkce_pair():
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def authorize(provider, login, password, challenge=None, session=None):
    """Through /auth and the login form, as a browser goes; the last response (the redirect to the
    page with `code`, or the answer that stopped it) and the session (its cookies)."""
    session = session or requests.Session()
    params = {"client_id": CLIENT, "response_type": "code", "redirect_uri": provider.redirect,
              "scope": "openid oss", "state": secrets.token_hex(8), "prompt": "consent"}
    if challenge:
        params.update(code_challenge=challenge, code_challenge_method="S256")
    response = session.get(provider.discovery["authorization_endpoint"], params=params, allow_redirects=False, timeout=10)
    for _ in range(10):
        if response.status_code not in (302, 303):
            return response, session
        location = urljoin(response.url, response.headers["Location"])
        if location.startswith(provider.redirect):
            return response, session
        response = session.get(location, allow_redirects=False, timeout=10)
        if response.status_code == 200 and 'name="password"' in response.text:
            action = re.search(r'action="([^"]+)"', response.text)[1]
            response = session.post(urljoin(location, action), data={"login": login, "password": password},
                                    allow_redirects=False, timeout=10)
    raise AssertionError("the flow did not end")


def code_of(response, provider):
    query = parse_qs(urlparse(response.headers["Location"]).query)
    assert "code" in query, response.headers["Location"]
    assert query.get("iss") == [provider.issuer]
    return query["code"][0]


def tokens_for(provider, login, password):
    verifier, challenge = pkce_pair()
    response, session = authorize(provider, login, password, challenge)
    token = requests.post(provider.discovery["token_endpoint"], data={
        "grant_type": "authorization_code", "code": code_of(response, provider), "redirect_uri": provider.redirect,
        "client_id": CLIENT, "code_verifier": verifier}, timeout=10)
    assert token.status_code == 200, token.text
    return token.json(), session


def verified(provider, access_token):
    key = jwt.PyJWKClient(provider.discovery["jwks_uri"]).get_signing_key_from_jwt(access_token)
    return jwt.decode(access_token, key.key, algorithms=["EdDSA"], audience=AUDIENCE, issuer=provider.issuer)


def test_discovery_names_what_the_services_need(provider):
    discovery = provider.discovery
    assert discovery["issuer"] == provider.issuer
    assert {"authorization_code", "refresh_token"} <= set(discovery["grant_types_supported"])
    assert discovery["code_challenge_methods_supported"] == ["S256"]
    assert discovery["end_session_endpoint"].startswith(provider.issuer)
    keys = requests.get(discovery["jwks_uri"], timeout=10).json()["keys"]
    assert [(key["kty"], key["crv"], key["alg"]) for key in keys] == [("OKP", "Ed25519", "EdDSA")]
    assert all("d" not in key for key in keys)  # the public half only


def test_an_operator_signs_in_with_pkce_and_gets_a_token_the_services_can_check(provider):
    tokens, _session = tokens_for(provider, "jizzakh.operator", "jizzakh-operator-demo")
    claims = verified(provider, tokens["access_token"])
    assert claims["sub"] == "jizzakh.operator" and claims["role"] == "operator" and claims["region"] == "jizzakh"
    assert "jizzakh-city" in claims["centres"] and "agencies" not in claims
    assert 0 < claims["exp"] - time.time() <= 120
    assert tokens["refresh_token"] and tokens["id_token"]
    officer = verified(provider, tokens_for(provider, "fergana.officer", "fergana-officer-demo")[0]["access_token"])
    assert officer["role"] == "officer" and officer["region"] == "fergana" and "interior-ministry" in officer["agencies"]
    ministry = verified(provider, tokens_for(provider, "ministry.analyst", "ministry-analyst-demo")[0]["access_token"])
    assert ministry["role"] == "analyst" and "region" not in ministry


def test_a_refresh_token_gives_a_new_access_token(provider):
    tokens, _session = tokens_for(provider, "namangan.officer", "namangan-officer-demo")
    refreshed = requests.post(provider.discovery["token_endpoint"], data={
        "grant_type": "refresh_token", "refresh_token": tokens["refresh_token"], "client_id": CLIENT}, timeout=10)
    assert refreshed.status_code == 200, refreshed.text
    assert verified(provider, refreshed.json()["access_token"])["sub"] == "namangan.officer"


def test_a_wrong_password_gets_no_code(provider):
    _verifier, challenge = pkce_pair()
    response, _session = authorize(provider, "jizzakh.operator", "guess", challenge)
    assert response.status_code == 401 and "Wrong login or password" in response.text
    assert "Location" not in response.headers


def test_pkce_is_required(provider):
    response, _session = authorize(provider, "jizzakh.operator", "jizzakh-operator-demo")
    location = response.headers.get("Location", "")
    assert "code=" not in location and "error=invalid_request" in location


def test_signing_out_at_the_provider_ends_the_session_and_its_refresh_token(provider):
    tokens, session = tokens_for(provider, "fergana.operator", "fergana-operator-demo")
    end = session.get(provider.discovery["end_session_endpoint"], params={
        "id_token_hint": tokens["id_token"], "post_logout_redirect_uri": provider.redirect, "client_id": CLIENT},
        allow_redirects=False, timeout=10)
    assert end.status_code == 200, end.text  # the provider's "sign out?" form, with its xsrf token
    form = dict(re.findall(r'name="(\w+)" value="([^"]*)"', end.text))
    confirmed = session.post(urljoin(end.url, re.search(r'action="([^"]+)"', end.text)[1]),
                             data={**form, "logout": "yes"}, allow_redirects=False, timeout=10)
    assert confirmed.status_code in (302, 303) and confirmed.headers["Location"].startswith(provider.redirect)
    refreshed = requests.post(provider.discovery["token_endpoint"], data={
        "grant_type": "refresh_token", "refresh_token": tokens["refresh_token"], "client_id": CLIENT}, timeout=10)
    assert refreshed.status_code == 400 and refreshed.json()["error"] == "invalid_grant"
    # Signing in again asks for the password again.
    again = session.get(provider.discovery["authorization_endpoint"], params={
        "client_id": CLIENT, "response_type": "code", "redirect_uri": provider.redirect, "scope": "openid oss",
        "code_challenge": pkce_pair()[1], "code_challenge_method": "S256"}, timeout=10)
    assert 'name="password"' in again.text


def test_the_signing_key_is_kept_private(provider):
    assert provider.key_file.stat().st_mode & 0o077 == 0
