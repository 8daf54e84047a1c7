"""The demo's OpenID Connect provider (deploy/local/oidc/: npm oidc-provider run by node), driven
as a browser-less client would: discovery, the authorization-code flow with PKCE through its login
form, a JWT access token for the services' audience with the staff claims, checked against the
provider's JWKS; refresh, a wrong password, a flow without PKCE, and signing out at the provider."""
import re
import time
from urllib.parse import urljoin

import pytest
import requests

from tests.integration.oidc import CLIENT, authorize, pkce_pair, tokens_for, verified

pytestmark = pytest.mark.integration


def test_discovery_names_what_the_services_need(oidc_provider):
    discovery = oidc_provider.discovery
    assert discovery["issuer"] == oidc_provider.issuer
    assert {"authorization_code", "refresh_token"} <= set(discovery["grant_types_supported"])
    assert discovery["code_challenge_methods_supported"] == ["S256"]
    assert discovery["end_session_endpoint"].startswith(oidc_provider.issuer)
    keys = requests.get(discovery["jwks_uri"], timeout=10).json()["keys"]
    assert [(key["kty"], key["crv"], key["alg"]) for key in keys] == [("OKP", "Ed25519", "EdDSA")]
    assert all("d" not in key for key in keys)  # the public half only


def test_an_operator_signs_in_with_pkce_and_gets_a_token_the_services_can_check(oidc_provider):
    tokens, _session = tokens_for(oidc_provider, "jizzakh.operator", "jizzakh-operator-demo")
    claims = verified(oidc_provider, tokens["access_token"])
    assert claims["sub"] == "jizzakh.operator" and claims["role"] == "operator" and claims["region"] == "jizzakh"
    assert "jizzakh-city" in claims["centres"] and "agencies" not in claims
    assert 0 < claims["exp"] - time.time() <= 120
    assert tokens["refresh_token"] and tokens["id_token"]
    officer = verified(oidc_provider, tokens_for(oidc_provider, "fergana.officer", "fergana-officer-demo")[0]["access_token"])
    assert officer["role"] == "officer" and officer["region"] == "fergana" and "interior-ministry" in officer["agencies"]
    ministry = verified(oidc_provider, tokens_for(oidc_provider, "ministry.analyst", "ministry-analyst-demo")[0]["access_token"])
    assert ministry["role"] == "analyst" and "region" not in ministry


def test_a_refresh_token_gives_a_new_access_token(oidc_provider):
    tokens, _session = tokens_for(oidc_provider, "namangan.officer", "namangan-officer-demo")
    refreshed = requests.post(oidc_provider.discovery["token_endpoint"], data={
        "grant_type": "refresh_token", "refresh_token": tokens["refresh_token"], "client_id": CLIENT}, timeout=10)
    assert refreshed.status_code == 200, refreshed.text
    assert verified(oidc_provider, refreshed.json()["access_token"])["sub"] == "namangan.officer"


def test_a_wrong_password_gets_no_code(oidc_provider):
    _verifier, challenge = pkce_pair()
    response, _session = authorize(oidc_provider, "jizzakh.operator", "guess", challenge)
    assert response.status_code == 401 and "Wrong login or password" in response.text
    assert "Location" not in response.headers


def test_pkce_is_required(oidc_provider):
    response, _session = authorize(oidc_provider, "jizzakh.operator", "jizzakh-operator-demo")
    location = response.headers.get("Location", "")
    assert "code=" not in location and "error=invalid_request" in location


def test_signing_out_at_the_provider_ends_the_session_and_its_refresh_token(oidc_provider):
    tokens, session = tokens_for(oidc_provider, "fergana.operator", "fergana-operator-demo")
    end = session.get(oidc_provider.discovery["end_session_endpoint"], params={
        "id_token_hint": tokens["id_token"], "post_logout_redirect_uri": oidc_provider.redirect, "client_id": CLIENT},
        allow_redirects=False, timeout=10)
    assert end.status_code == 200, end.text  # the provider's "sign out?" form, with its xsrf token
    form = dict(re.findall(r'name="(\w+)" value="([^"]*)"', end.text))
    confirmed = session.post(urljoin(end.url, re.search(r'action="([^"]+)"', end.text)[1]),
                             data={**form, "logout": "yes"}, allow_redirects=False, timeout=10)
    assert confirmed.status_code in (302, 303) and confirmed.headers["Location"].startswith(oidc_provider.redirect)
    refreshed = requests.post(oidc_provider.discovery["token_endpoint"], data={
        "grant_type": "refresh_token", "refresh_token": tokens["refresh_token"], "client_id": CLIENT}, timeout=10)
    assert refreshed.status_code == 400 and refreshed.json()["error"] == "invalid_grant"
    # Signing in again asks for the password again.
    again = session.get(oidc_provider.discovery["authorization_endpoint"], params={
        "client_id": CLIENT, "response_type": "code", "redirect_uri": oidc_provider.redirect, "scope": "openid oss",
        "code_challenge": pkce_pair()[1], "code_challenge_method": "S256"}, timeout=10)
    assert 'name="password"' in again.text


def test_the_signing_key_is_kept_private(oidc_provider):
    assert oidc_provider.key_file.stat().st_mode & 0o077 == 0
