"""The pages' sign-in sessions (oss_common.web_sessions) with the provider replaced: a sign-in only
completes in the browser that started it, within its time; parallel calls of one page refresh an
expiring token once; a session the provider will not refresh, or left idle, is over. (Against the
real provider: tests/integration/test_web_sign_in.py.)"""
from types import SimpleNamespace

import eventlet
import pytest

from oss_common import web_sessions
from oss_common.auth import Principal, Unauthorized
from oss_common.web_sessions import SIGN_IN_SECONDS, SignInRefused, WebSession, WebSessions

OPERATOR = Principal(subject="jizzakh.operator", role="operator", region="jizzakh", centres=("jizzakh-city",))


class Clock:
    def __init__(self):
        self.now = 1_000_000.0

    def __call__(self):
        return self.now


class Provider:
    issuer = "https://id.example.uz/realms/oss"
    discovery = {"authorization_endpoint": f"{issuer}/auth", "token_endpoint": f"{issuer}/token",
                 "end_session_endpoint": f"{issuer}/logout"}


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def sessions(clock, monkeypatch):
    class Sessions(WebSessions):
        keys = SimpleNamespace(oidc=Provider())

    sessions = Sessions(clock=clock)
    sessions.container = SimpleNamespace(config={"WEB_SESSION_IDLE_SECONDS": "600"}, service_name="intake_jizzakh")
    sessions.setup()
    sessions.token_requests = []
    monkeypatch.setattr(web_sessions, "read_token", lambda keys, token: OPERATOR)
    return sessions


def request_with(sessions, session_id):
    return SimpleNamespace(cookies={sessions.cookie: session_id})


def test_a_sign_in_completes_only_in_the_browser_that_started_it_and_only_once(sessions, monkeypatch):
    url, state = sessions.begin("http://127.0.0.1:8104/desk/auth/callback")
    assert url.startswith(Provider.discovery["authorization_endpoint"]) and "code_challenge_method=S256" in url
    monkeypatch.setattr(sessions, "_token_request", lambda form: pytest.fail("no code is exchanged"))
    with pytest.raises(SignInRefused):
        sessions.complete(state, "another-browsers-state", "code")
    with pytest.raises(SignInRefused):  # the state is spent by the refused attempt too
        sessions.complete(state, state, "code")


def test_a_sign_in_left_at_the_provider_too_long_is_refused(sessions, clock, monkeypatch):
    _url, state = sessions.begin("http://127.0.0.1:8104/desk/auth/callback")
    clock.now += SIGN_IN_SECONDS + 1
    monkeypatch.setattr(sessions, "_token_request", lambda form: pytest.fail("no code is exchanged"))
    with pytest.raises(SignInRefused):
        sessions.complete(state, state, "code")


def test_an_answer_from_another_issuer_is_refused(sessions, monkeypatch):
    _url, state = sessions.begin("http://127.0.0.1:8104/desk/auth/callback")
    monkeypatch.setattr(sessions, "_token_request", lambda form: pytest.fail("no code is exchanged"))
    with pytest.raises(SignInRefused) as refused:
        sessions.complete(state, state, "code", issuer="https://evil.example/")
    assert refused.value.fields == {"iss": ["not this provider"]}


def test_parallel_calls_of_one_page_refresh_an_expiring_token_once(sessions, clock, monkeypatch):
    def refresh(form):
        sessions.token_requests.append(form)
        eventlet.sleep(0.05)  # the provider takes a moment: the other calls arrive meanwhile
        return {"access_token": "access-2", "refresh_token": "refresh-2", "expires_in": 300}

    monkeypatch.setattr(sessions, "_token_request", refresh)
    session_id = sessions._store(WebSession(OPERATOR, "access-1", clock.now + 10, "refresh-1", "id-1"))
    calls = [eventlet.spawn(sessions.access_token, request_with(sessions, session_id)) for _ in range(5)]
    assert [call.wait() for call in calls] == ["access-2"] * 5
    assert sessions.token_requests == [{"grant_type": "refresh_token", "refresh_token": "refresh-1"}]
    assert sessions.access_token(request_with(sessions, session_id)) == "access-2"  # fresh now: no request
    assert len(sessions.token_requests) == 1


def test_a_session_the_provider_will_not_refresh_is_over(sessions, clock, monkeypatch):
    def refused(form):
        raise SignInRefused("the identity provider refused: invalid_grant")

    monkeypatch.setattr(sessions, "_token_request", refused)
    session_id = sessions._store(WebSession(OPERATOR, "access-1", clock.now + 10, "refresh-1", "id-1"))
    with pytest.raises(Unauthorized) as ended:
        sessions.access_token(request_with(sessions, session_id))
    assert ended.value.fields == {"session": ["expired"]}
    assert sessions.session(request_with(sessions, session_id)) is None


def test_an_idle_session_is_over_and_a_demo_token_session_ends_with_its_token(sessions, clock):
    session_id = sessions._store(WebSession(OPERATOR, "access-1", clock.now + 3600, "refresh-1"))
    clock.now += 601
    with pytest.raises(Unauthorized):
        sessions.access_token(request_with(sessions, session_id))
    demo = sessions._store(WebSession(OPERATOR, "demo-token", clock.now + 20))  # no refresh token
    assert sessions.access_token(request_with(sessions, demo)) == "demo-token"
    clock.now += 21
    with pytest.raises(Unauthorized):
        sessions.access_token(request_with(sessions, demo))


def test_signing_out_forgets_the_session_and_names_the_provider_logout(sessions, clock):
    session_id = sessions._store(WebSession(OPERATOR, "access-1", clock.now + 300, None, "id-token-1"))
    url = sessions.end(request_with(sessions, session_id), "http://127.0.0.1:8104/desk/")
    assert url.startswith(Provider.discovery["end_session_endpoint"]) and "id_token_hint=id-token-1" in url
    assert "post_logout_redirect_uri=http%3A%2F%2F127.0.0.1%3A8104%2Fdesk%2F" in url
    assert sessions.session(request_with(sessions, session_id)) is None
