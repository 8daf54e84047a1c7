"""Staff sign in to the desk and the dashboard through the demo's OpenID Connect provider, with the
service as the pages' backend-for-frontend (oss_common.web_sessions): the code flow with PKCE ends in
an HttpOnly session cookie, never a token the page could read; the page's API calls are authenticated
by the session, refreshed at the provider, and refused once signed out, here and at the provider.
Driven as a client does, with requests and in headless Chromium."""
import re
import time
from urllib.parse import parse_qs, urljoin, urlparse

import pytest
import requests

from oss_common.web_sessions import SESSION_HEADER
from tests.conftest import free_port, token
from tests.integration.conftest import ARTIFACTS, auth, post, valid_submission
from tests.integration.oidc import AUDIENCE, start_provider
from tests.integration.test_web_pages import fill_attributes, new_page, web_service

pytestmark = pytest.mark.integration

REGION = "jizzakh"
PAGE = {SESSION_HEADER: "1"}
ACCESS_TTL = 31  # seconds: within REFRESH_AHEAD_SECONDS of expiry from the start, so every call refreshes


def password(login):
    return f"{login.replace('.', '-')}-demo"


@pytest.fixture(scope="module")
def signed_in(stack, tmp_path_factory):
    """A provider whose client may come back to a Jizzakh intake and a national reporting started
    on ports chosen first, both taking its tokens and signing staff in at it."""
    intake_port, reporting_port = free_port(), free_port()
    desk = f"http://127.0.0.1:{intake_port}/desk/"
    dashboard = f"http://127.0.0.1:{reporting_port}/dashboard/"
    with start_provider(tmp_path_factory.mktemp("oidc-web"), access_ttl=ACCESS_TTL, pages=(desk, dashboard)) as provider:
        settings = {"AUTH_OIDC_ISSUER": provider.issuer, "AUTH_OIDC_AUDIENCE": AUDIENCE}
        intake = stack.start("intake", region=REGION, database_url=stack.intake_db[REGION], migrate=False,
                             HTTP_PORT=intake_port, **settings)
        national = stack.start_national("reporting", HTTP_PORT=reporting_port, NATIONAL_TIMEOUT_SECONDS=2, **settings)
        try:
            yield type("SignedIn", (), {"provider": provider, "intake": intake, "national": national,
                                        "desk": desk, "dashboard": dashboard})
        finally:
            national.stop()
            intake.stop()


def sign_in(page, login):
    """The client's way: the page's sign-in link, the provider's login form, back to the page."""
    client = requests.Session()
    answer = client.get(f"{page}auth/sign-in", timeout=30)
    assert answer.status_code == 200 and 'name="password"' in answer.text, answer.text[:500]
    action = re.search(r'action="([^"]+)"', answer.text)[1]
    answer = client.post(urljoin(answer.url, action), data={"login": login, "password": password(login)}, timeout=30)
    assert answer.status_code == 200 and answer.url.split("?")[0] == page, answer.url
    return client, answer


def session_cookie(client, name):
    return next(cookie for cookie in client.cookies if cookie.name == name)


def test_an_operator_signs_in_with_pkce_and_the_page_holds_a_session_cookie_not_a_token(signed_in):
    started = requests.get(f"{signed_in.desk}auth/sign-in", allow_redirects=False, timeout=30)
    assert started.status_code == 303
    query = parse_qs(urlparse(started.headers["Location"]).query)
    assert started.headers["Location"].startswith(signed_in.provider.discovery["authorization_endpoint"])
    assert query["code_challenge_method"] == ["S256"] and len(query["code_challenge"][0]) == 43
    assert query["redirect_uri"] == [f"{signed_in.desk}auth/callback"] and query["nonce"] and query["state"]
    assert "HttpOnly" in started.headers["Set-Cookie"] and "SameSite=Lax" in started.headers["Set-Cookie"]

    client, page = sign_in(signed_in.desk, "jizzakh.operator")
    cookie = session_cookie(client, "oss_intake_jizzakh")
    assert cookie.has_nonstandard_attr("HttpOnly") and cookie.get_nonstandard_attr("SameSite") == "Strict"
    assert cookie.path == "/" and cookie.value.count(".") == 0  # an opaque id, not a JWT
    who = client.get(f"{signed_in.desk}auth/session", timeout=30).json()
    assert who["signed_in"] is True and who["provider"] == signed_in.provider.issuer
    assert who["principal"]["subject"] == "jizzakh.operator" and who["principal"]["role"] == "operator"
    assert who["principal"]["region"] == REGION and who["principal"]["centres"]
    assert "eyJ" not in page.text and "eyJ" not in str(who)  # no token reaches the page

    filed = client.post(f"{signed_in.intake.url}/api/v1/applications", json=valid_submission(REGION),
                         headers={**PAGE, "Idempotency-Key": f"web-sign-in-{time.time()}"}, timeout=30)
    assert filed.status_code == 201, filed.text
    assert filed.json()["history"][0]["actor"] == "operator:jizzakh.operator"
    # The cookie alone (a cross-site form could send it) authenticates nothing.
    bare = client.post(f"{signed_in.intake.url}/api/v1/applications", json=valid_submission(REGION), timeout=30)
    assert bare.status_code == 401


def test_the_session_refreshes_its_token_at_the_provider_and_ends_when_the_provider_session_does(signed_in):
    client, _page = sign_in(signed_in.desk, "jizzakh.officer")
    for _ in range(3):  # each call finds the token about to expire and refreshes it first
        listed = client.get(f"{signed_in.intake.url}/api/v1/applications", params={"page_size": 1}, headers=PAGE, timeout=30)
        assert listed.status_code == 200, listed.text
        time.sleep(1.1)
    # Signing out at the provider itself (another tab) ends its refresh tokens: the next call asks to sign in again.
    end = client.get(signed_in.provider.discovery["end_session_endpoint"], params={"client_id": "oss-web"}, timeout=30)
    form = dict(re.findall(r'name="(\w+)" value="([^"]*)"', end.text))
    client.post(urljoin(end.url, re.search(r'action="([^"]+)"', end.text)[1]), data={**form, "logout": "yes"}, timeout=30)
    refused = client.get(f"{signed_in.intake.url}/api/v1/applications", headers=PAGE, timeout=30)
    assert refused.status_code == 401 and refused.json()["fields"] == {"session": ["expired"]}, refused.text
    assert client.get(f"{signed_in.desk}auth/session", timeout=30).json()["signed_in"] is False


def test_signing_out_ends_the_session_here_and_at_the_provider(signed_in):
    client, _page = sign_in(signed_in.desk, "jizzakh.operator")
    assert client.post(f"{signed_in.desk}auth/sign-out", timeout=30).status_code == 403  # not from the page
    out = client.post(f"{signed_in.desk}auth/sign-out", headers=PAGE, timeout=30)
    assert out.status_code == 200
    end_session = out.json()["end_session_url"]
    assert end_session.startswith(signed_in.provider.discovery["end_session_endpoint"])
    assert parse_qs(urlparse(end_session).query)["post_logout_redirect_uri"] == [signed_in.desk]
    assert "id_token_hint" in parse_qs(urlparse(end_session).query)
    refused = client.get(f"{signed_in.intake.url}/api/v1/applications", headers=PAGE, timeout=30)
    assert refused.status_code == 401
    # At the provider: its sign-out page, confirmed, back to the desk; signing in again asks for the password.
    end = client.get(end_session, timeout=30)
    form = dict(re.findall(r'name="(\w+)" value="([^"]*)"', end.text))
    back = client.post(urljoin(end.url, re.search(r'action="([^"]+)"', end.text)[1]), data={**form, "logout": "yes"},
                        timeout=30)
    assert back.url == signed_in.desk
    again = client.get(f"{signed_in.desk}auth/sign-in", timeout=30)
    assert 'name="password"' in again.text


def test_staff_of_another_region_sign_in_but_are_refused_its_applications(signed_in):
    filed = post(f"{signed_in.intake.url}/api/v1/applications", valid_submission(REGION), **auth("operator", REGION))
    assert filed.status_code == 201, filed.text
    client, _page = sign_in(signed_in.desk, "fergana.officer")
    for path in (f"/api/v1/applications/{filed.json()['tracking_number']}", "/api/v1/applications"):
        refused = client.get(f"{signed_in.intake.url}{path}", headers=PAGE, timeout=30)
        assert refused.status_code == 403 and "fergana" in refused.json()["message"], refused.text


def test_the_ministry_signs_in_to_the_dashboard(signed_in):
    client, _page = sign_in(signed_in.dashboard, "ministry.analyst")
    summary = client.get(f"{signed_in.national.url}/api/v1/reports/summary", headers=PAGE, timeout=30)
    assert summary.status_code == 200, summary.text
    operator, _page = sign_in(signed_in.dashboard, "jizzakh.operator")
    assert operator.get(f"{signed_in.national.url}/api/v1/reports/summary", headers=PAGE, timeout=30).status_code == 403


def test_a_callback_not_started_by_this_browser_signs_nobody_in(signed_in):
    victim_started = requests.get(f"{signed_in.desk}auth/sign-in", allow_redirects=False, timeout=30)
    state = parse_qs(urlparse(victim_started.headers["Location"]).query)["state"][0]
    attacker = requests.Session()  # has no state cookie of that sign-in
    answer = attacker.get(f"{signed_in.desk}auth/callback", params={"state": state, "code": "x"}, allow_redirects=False,
                          timeout=30)
    assert answer.status_code == 303 and answer.headers["Location"].endswith("?signin_error=sign_in_refused")
    assert not any(cookie.name == "oss_intake_jizzakh" for cookie in attacker.cookies)
    denied = requests.get(f"{signed_in.desk}auth/callback", params={"error": "access_denied", "state": state},
                          allow_redirects=False, timeout=30)
    assert denied.headers["Location"].endswith("?signin_error=access_denied")


def test_a_pasted_token_is_the_fallback_only_where_no_provider_is_configured(stack, signed_in):
    operator = token("operator", REGION)
    refused = requests.post(f"{signed_in.desk}auth/token", json={"token": operator}, headers=PAGE, timeout=30)
    assert refused.status_code == 401 and refused.json()["fields"] == {"token": ["sign in at the identity provider"]}
    # The stack's own intake has no provider: the page takes the platform's demo token into a session.
    fallback = requests.Session()
    desk = f"{stack.urls[REGION]}/desk/"
    assert fallback.get(f"{desk}auth/session", timeout=30).json() == {"signed_in": False, "provider": None}
    assert fallback.post(f"{desk}auth/token", json={"token": "not-a-token"}, headers=PAGE, timeout=30).status_code == 401
    taken = fallback.post(f"{desk}auth/token", json={"token": operator}, headers=PAGE, timeout=30)
    assert taken.status_code == 200, taken.text
    assert fallback.get(f"{stack.urls[REGION]}/api/v1/districts", headers=PAGE, timeout=30).status_code == 200
    assert fallback.post(f"{desk}auth/sign-out", headers=PAGE, timeout=30).json() == {"end_session_url": None}
    assert fallback.get(f"{stack.urls[REGION]}/api/v1/districts", headers=PAGE, timeout=30).status_code == 401


# In Chromium (SQLite only, as the other browser tests)

def sign_in_in_browser(page, url, login, signed_in_mark="#sign-out:not([hidden])"):
    """The page's sign-in link, the provider's login form, back on the page signed in. (Waits for
    elements, not page.wait_for_url, which never returns under the tests' eventlet.)"""
    page.goto(url)
    page.select_option("#language", "en")
    page.click("#sign-in-link")
    page.wait_for_selector("#password")  # the provider's own login form
    assert "/interaction/" in page.url
    page.fill("#login", login)
    page.fill("#password", password(login))
    page.click("#sign-in")
    page.wait_for_selector(signed_in_mark)
    assert page.url == url


def no_token_in_the_page(page):
    stored = page.evaluate("() => JSON.stringify([Object.entries(localStorage), Object.entries(sessionStorage), document.cookie])")
    assert "eyJ" not in stored and "oss_" not in stored, stored  # no JWT, and the session cookie is HttpOnly


def test_an_operator_signs_in_at_the_provider_in_chromium_and_files(stack, signed_in, browser):
    problems = []
    service = web_service()
    desk = new_page(browser, problems)
    sign_in_in_browser(desk, signed_in.desk, "jizzakh.operator")
    desk.wait_for_selector("#who:not([hidden])")
    assert "jizzakh.operator" in desk.inner_text("#who-name")
    desk.wait_for_selector(f'#service option[value="{service["code"]}"]', state="attached")
    desk.select_option("#service", service["code"])
    desk.fill('[name="applicant.pinfl"]', "51234567890123")
    desk.fill('[name="applicant.full_name"]', "Sardor Provider Tursunov")
    desk.fill('[name="applicant.phone"]', "+998901112233")
    for box in desk.locator("#documents input[type=checkbox]").all():
        box.check()
    fill_attributes(desk, service)
    desk.click("#submit")
    desk.wait_for_selector("#receipt:not([hidden])")
    tracking = desk.inner_text("#receipt-tracking").strip()
    desk.screenshot(path=str(ARTIFACTS / "desk-signed-in-at-provider.png"), full_page=True)
    no_token_in_the_page(desk)
    history = requests.get(f"{signed_in.intake.url}/api/v1/applications/{tracking}", headers=auth("operator", REGION),
                           timeout=30).json()["history"]
    assert history[0]["actor"] == "operator:jizzakh.operator"
    assert problems == []


def test_an_officer_of_another_region_signs_in_in_chromium_and_is_refused_its_applications(signed_in, browser):
    filed = post(f"{signed_in.intake.url}/api/v1/applications", valid_submission(REGION), **auth("operator", REGION))
    assert filed.status_code == 201, filed.text
    problems = []
    officer = new_page(browser, problems)
    sign_in_in_browser(officer, signed_in.desk, "fergana.officer")
    officer.wait_for_selector("#officer-error:not([hidden])")
    assert officer.inner_text("#officer-error") == "You may not do this."
    assert officer.locator("#queue tbody tr[data-tracking]").count() == 0
    answer = officer.evaluate("""async (number) => {
        const response = await fetch("/api/v1/applications/" + number, {headers: {"X-OSS-Session": "1"}});
        return [response.status, await response.text()]; }""", filed.json()["tracking_number"])
    assert answer[0] == 403 and "fergana" in answer[1] and "Dilnoza" not in answer[1]
    officer.screenshot(path=str(ARTIFACTS / "desk-other-region-refused.png"), full_page=True)
    assert problems == []


def test_a_signed_out_session_cannot_call_the_api_in_chromium(signed_in, browser):
    problems = []
    desk = new_page(browser, problems)
    sign_in_in_browser(desk, signed_in.desk, "jizzakh.officer")
    desk.wait_for_selector("#tab-officer:not([hidden])")
    call = """async () => (await fetch("/api/v1/applications?page_size=1", {headers: {"X-OSS-Session": "1"}})).status"""
    assert desk.evaluate(call) == 200
    cookie = next(c for c in desk.context.cookies() if c["name"] == "oss_intake_jizzakh")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    desk.click("#sign-out")
    desk.wait_for_selector("#stay")  # the provider asks; signing out there ends its session too
    desk.click("#sign-out")
    desk.wait_for_selector("#provider-sign-in:not([hidden])")
    assert desk.url == signed_in.desk
    assert desk.evaluate(call) == 401
    replayed = requests.get(f"{signed_in.intake.url}/api/v1/applications", timeout=30,
                            headers=PAGE, cookies={cookie["name"]: cookie["value"]})
    assert replayed.status_code == 401  # the old cookie's session is gone on the server
    desk.click("#sign-in-link")
    desk.wait_for_selector("#password")  # the provider's session ended: it asks for the password again
    assert problems == []


def test_the_ministry_signs_in_to_the_dashboard_in_chromium(signed_in, browser):
    problems = []
    ministry = new_page(browser, problems)
    sign_in_in_browser(ministry, signed_in.dashboard, "ministry.analyst")
    ministry.wait_for_selector("#board:not([hidden])")
    ministry.wait_for_selector("#national .card")
    no_token_in_the_page(ministry)
    ministry.screenshot(path=str(ARTIFACTS / "dashboard-signed-in-at-provider.png"), full_page=True)
    assert problems == []


def test_when_the_provider_session_ends_the_page_asks_to_sign_in_again_in_chromium(signed_in, browser):
    problems = []
    desk = new_page(browser, problems)
    sign_in_in_browser(desk, signed_in.desk, "jizzakh.officer")
    desk.wait_for_selector("#tab-officer:not([hidden])")
    # Signed out at the provider in another tab: the desk's token cannot be refreshed any more.
    other_tab = desk.context.new_page()
    other_tab.goto(f"{signed_in.provider.discovery['end_session_endpoint']}?client_id=oss-web")
    other_tab.click("#sign-out")
    desk.wait_for_timeout(1500)  # past the access token's refresh margin (ACCESS_TTL)
    desk.click("#officer-refresh")
    desk.wait_for_selector("#provider-sign-in:not([hidden])")
    assert desk.inner_text("#sign-in-error") == "Your session has ended: sign in again."
    desk.screenshot(path=str(ARTIFACTS / "desk-session-ended.png"), full_page=True)
    assert problems == []
