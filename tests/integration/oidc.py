"""The demo's OpenID Connect provider for the tests: started from deploy/local/oidc/ on a free port
(`start_provider`), and signed in to as the pages do, the authorization-code flow with PKCE through
its login form (`tokens_for`)."""
import base64
import contextlib
import hashlib
import re
import secrets
import shutil
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import parse_qs, urljoin, urlparse

import jwt
import requests

from oss_common.config import PROJECT_ROOT
from tests.conftest import free_port, missing_tool

OIDC_DIR = PROJECT_ROOT / "deploy" / "local" / "oidc"
CLIENT = "oss-web"
AUDIENCE = "urn:oss:api"


@contextlib.contextmanager
def start_provider(tmp, redirect="http://127.0.0.1:8104/desk/", access_ttl=120, pages=()):
    """The provider on a free port, its signing key under `tmp`; yields its issuer, discovery and redirect URI.
    `pages`: pages that sign in through their service (their callback and themselves are registered too)."""
    redirects = [redirect, *pages, *(f"{page}auth/callback" for page in pages)]
    if shutil.which("node") is None or not (OIDC_DIR / "node_modules" / "oidc-provider").is_dir():
        missing_tool("node or deploy/local/oidc/node_modules is missing: run deploy/local/ensure-oidc.sh")
    issuer = f"http://127.0.0.1:{free_port()}"
    log = (tmp / f"oidc-{issuer.rsplit(':', 1)[1]}.log").open("w")
    process = subprocess.Popen(
        ["node", "server.js"], cwd=OIDC_DIR, stdout=log, stderr=subprocess.STDOUT,
        env={"PATH": "/usr/bin:/bin:/usr/local/bin", "OIDC_ISSUER": issuer, "OIDC_KEYS_FILE": str(tmp / "key.json"),
             "OIDC_REDIRECT_URIS": ",".join(redirects), "OIDC_ACCESS_TOKEN_TTL": str(access_ttl)})
    deadline = time.monotonic() + 30
    while True:
        try:
            discovery = requests.get(f"{issuer}/.well-known/openid-configuration", timeout=2).json()
            break
        except requests.RequestException:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the provider did not start: {Path(log.name).read_text()}")
            time.sleep(0.2)
    try:
        yield SimpleNamespace(issuer=issuer, redirect=redirect, discovery=discovery, key_file=tmp / "key.json")
    finally:
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


