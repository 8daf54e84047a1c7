"""Staff sign in to the services' own pages (the desk, the officer view, the ministry's dashboard)
through the OpenID Connect provider, with the service as the pages' backend-for-frontend.

The service, not the browser, is the provider's client: it sends the staff member to the provider's
authorization endpoint (code flow with PKCE S256, a `state` tied to the browser by a short cookie,
a `nonce`), takes the code back at `/<page>/auth/callback`, exchanges it for tokens and keeps them
in a server-side session. The browser holds only an opaque session id in an HttpOnly, SameSite=Strict
cookie: no script of the page can read a token, so an injected script has none to carry away.
The page's API calls send the cookie and the header `X-OSS-Session` (which a cross-site form
cannot send, and a cross-origin script only after a CORS preflight the services never answer);
ApiHandler then authenticates them with the session's access token, exactly as a bearer token.
An access token about to expire is refreshed with the session's refresh token (one refresh at a
time per session); when that fails the session ends and the page asks the person to sign in again.
Signing out forgets the session, revokes the refresh token and sends the browser to the provider's
end_session endpoint, which ends the provider's own session too.

Without an AUTH_OIDC_ISSUER (a demo machine where the provider cannot be installed) there is no
provider to sign in at: the pages then take one of the platform's own tokens (`oss token issue`,
var/demo-tokens.txt), which the service checks and keeps in the same kind of session.
"""
import base64
import hashlib
import logging
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urlencode

import jwt
import requests
from nameko.extensions import SharedExtension

from oss_common.auth import LEEWAY_SECONDS, Principal, Unauthorized, read_token, trusted_keys
from oss_common.config import setting
from oss_common.errors import ApiError, Unavailable

log = logging.getLogger(__name__)

SESSION_HEADER = "X-OSS-Session"
ENVIRON_KEY = "oss.web_sessions"
SIGN_IN_SECONDS = 600  # how long a started sign-in may take at the provider
REFRESH_AHEAD_SECONDS = 30  # an access token this close to its expiry is refreshed before use
MAX_SESSIONS = 20000
MAX_PENDING = 5000
PROVIDER_TIMEOUT = 10


class SignInRefused(ApiError):
    status = 401
    code = "sign_in_refused"


@dataclass
class PendingSignIn:
    verifier: str
    nonce: str
    redirect_uri: str
    started: float


@dataclass
class WebSession:
    principal: Principal
    access_token: str
    expires_at: float
    refresh_token: str | None = None
    id_token: str | None = None
    last_seen: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)


def pkce_challenge(verifier):
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


class WebSessions(SharedExtension):
    """The process's sign-in sessions of its pages (server-side, in memory: a restart signs people
    out, and several processes behind one address need the load balancer to keep a browser on one,
    by its session cookie)."""

    def __init__(self, clock=time.time):
        super().__init__()
        self.clock = clock

    def setup(self) -> None:
        config = self.container.config
        self.config = config
        self.cookie = "oss_" + re.sub(r"[^A-Za-z0-9_]", "_", self.container.service_name)
        self.client_id = str(config.get("AUTH_OIDC_CLIENT_ID") or "oss-web")
        self.scope = str(config.get("AUTH_OIDC_SCOPE") or "openid oss")
        self.public_url = str(config.get("WEB_PUBLIC_URL") or "").rstrip("/")
        self.idle_seconds = setting(config, "WEB_SESSION_IDLE_SECONDS", 3600, float)
        self._sessions = {}
        self._pending = {}
        self._lock = threading.Lock()

    @property
    def keys(self):
        return trusted_keys(self.config)

    @property
    def provider(self):
        """The OidcIssuer staff sign in at, or None (the demo's fallback: the platform's own tokens)."""
        return self.keys.oidc

    def base_url(self, request):
        return self.public_url or request.host_url.rstrip("/")

    @property
    def secure(self):
        return self.public_url.startswith("https://")

    # Signing in

    def begin(self, redirect_uri):
        """(the provider's authorization URL, the state the browser's cookie must carry back)."""
        endpoint = self._endpoint("authorization_endpoint")
        state, nonce, verifier = secrets.token_urlsafe(24), secrets.token_urlsafe(24), secrets.token_urlsafe(48)
        now = self.clock()
        with self._lock:
            self._pending = {key: value for key, value in self._pending.items() if now - value.started < SIGN_IN_SECONDS}
            if len(self._pending) >= MAX_PENDING:
                raise Unavailable("too many sign-ins under way; try again in a minute")
            self._pending[state] = PendingSignIn(verifier, nonce, redirect_uri, now)
        query = {"client_id": self.client_id, "response_type": "code", "redirect_uri": redirect_uri,
                 "scope": self.scope, "state": state, "nonce": nonce,
                 "code_challenge": pkce_challenge(verifier), "code_challenge_method": "S256"}
        return f"{endpoint}?{urlencode(query)}", state

    def complete(self, state, browser_state, code, issuer=None):
        """A new session's id for the code the provider sent back; SignInRefused when the state is
        unknown, stale or not this browser's, the code is refused, or the tokens do not hold."""
        with self._lock:
            pending = self._pending.pop(state, None) if state else None
        if pending is None or not browser_state or not secrets.compare_digest(state, browser_state) \
                or self.clock() - pending.started >= SIGN_IN_SECONDS:
            raise SignInRefused("this sign-in was not started here or took too long; sign in again",
                                fields={"state": ["unknown or expired"]})
        provider = self.provider
        if issuer is not None and issuer.rstrip("/") != provider.issuer:  # RFC 9207: the answer is from our provider
            raise SignInRefused("the answer came from another identity provider", fields={"iss": ["not this provider"]})
        if not code:
            raise SignInRefused("the provider sent no code", fields={"code": ["required"]})
        tokens = self._token_request({"grant_type": "authorization_code", "code": code,
                                      "redirect_uri": pending.redirect_uri, "code_verifier": pending.verifier})
        self._check_id_token(tokens.get("id_token"), pending.nonce)
        return self._store(self._session_from(tokens))

    def demo_session(self, token):
        """A session holding one of the platform's own tokens: only where no provider is configured."""
        if self.provider is not None:
            raise SignInRefused("staff sign in at the identity provider here, not with a pasted token",
                                fields={"token": ["sign in at the identity provider"]})
        if not isinstance(token, str) or not token.strip() or len(token) > 8192:
            raise SignInRefused("paste a token", fields={"token": ["required"]})
        principal = read_token(self.keys, token.strip())
        claims = jwt.decode(token.strip(), options={"verify_signature": False})
        return self._store(WebSession(principal, token.strip(), float(claims["exp"])))

    def _session_from(self, tokens):
        access = tokens.get("access_token")
        if not isinstance(access, str):
            raise SignInRefused("the provider gave no access token", fields={"access_token": ["missing"]})
        try:
            principal = read_token(self.keys, access)  # what every API call will check, checked now
        except Unauthorized as exc:
            raise SignInRefused(f"the provider's token does not fit the platform: {exc.message}",
                                fields=exc.fields) from None
        expires_in = tokens.get("expires_in")
        lifetime = float(expires_in) if isinstance(expires_in, (int, float)) and expires_in > 0 else 300.0
        return WebSession(principal, access, self.clock() + lifetime, tokens.get("refresh_token"), tokens.get("id_token"))

    def _check_id_token(self, id_token, nonce):
        provider = self.provider
        try:
            header = jwt.get_unverified_header(id_token or "")
            public_key, _region = provider.key(header.get("kid"))
            claims = jwt.decode(id_token, public_key.key, algorithms=[public_key.algorithm_name], audience=self.client_id,
                                issuer=provider.issuer, leeway=LEEWAY_SECONDS, options={"require": ["exp", "iat", "sub"]})
        except (jwt.InvalidTokenError, Unauthorized):
            raise SignInRefused("the provider's ID token is not valid", fields={"id_token": ["invalid"]}) from None
        if not secrets.compare_digest(str(claims.get("nonce") or ""), nonce):
            raise SignInRefused("the ID token was not issued for this sign-in", fields={"id_token": ["nonce differs"]})

    def _store(self, session):
        session_id = secrets.token_urlsafe(32)
        now = session.last_seen = self.clock()
        with self._lock:
            if len(self._sessions) >= MAX_SESSIONS:
                self._sessions = {key: value for key, value in self._sessions.items() if self._alive(value, now)}
                if len(self._sessions) >= MAX_SESSIONS:
                    raise Unavailable("too many sessions on this process; try again later")
            self._sessions[session_id] = session
        return session_id

    def _alive(self, session, now):
        return now - session.last_seen < self.idle_seconds and (session.refresh_token or now < session.expires_at)

    # Using a session

    def session(self, request):
        """The request's live session, or None."""
        session_id = request.cookies.get(self.cookie)
        session = self._sessions.get(session_id) if session_id else None
        if session is None:
            return None
        now = self.clock()
        if not self._alive(session, now):
            self._sessions.pop(session_id, None)
            return None
        session.last_seen = now
        return session

    def access_token(self, request):
        """The session's access token, refreshed when it is about to expire; Unauthorized when the
        request has no session or the provider will not refresh it (the session is then over)."""
        session = self.session(request)
        if session is None:
            raise Unauthorized("sign in again: no session, or it has ended", fields={"session": ["signed out"]})
        if self.clock() < session.expires_at - REFRESH_AHEAD_SECONDS:
            return session.access_token
        with session.lock:  # parallel calls of one page refresh once; the others take its answer
            if self.clock() < session.expires_at - REFRESH_AHEAD_SECONDS:
                return session.access_token
            if not session.refresh_token or self.provider is None:
                if self.clock() < session.expires_at:
                    return session.access_token
                self._forget(request)
                raise Unauthorized("the session has expired; sign in again", fields={"session": ["expired"]})
            try:
                tokens = self._token_request({"grant_type": "refresh_token", "refresh_token": session.refresh_token})
                renewed = self._session_from(tokens)
            except SignInRefused:
                self._forget(request)
                raise Unauthorized("the session has ended at the identity provider; sign in again",
                                   fields={"session": ["expired"]}) from None
            if renewed.principal.subject != session.principal.subject:
                self._forget(request)
                raise Unauthorized("the refreshed token names someone else", fields={"session": ["invalid"]})
            session.principal, session.access_token, session.expires_at = renewed.principal, renewed.access_token, renewed.expires_at
            session.refresh_token = renewed.refresh_token or session.refresh_token
            session.id_token = renewed.id_token or session.id_token
            return session.access_token

    def end(self, request, post_logout_redirect_uri):
        """Forget the request's session and revoke its refresh token; the provider's end_session URL
        for the browser to go to (None without a provider, or when it has none)."""
        session = self._forget(request)
        provider = self.provider
        if provider is None:
            return None
        if session is not None and session.refresh_token and provider.discovery.get("revocation_endpoint"):
            try:
                requests.post(provider.discovery["revocation_endpoint"], timeout=PROVIDER_TIMEOUT, data={
                    "token": session.refresh_token, "token_type_hint": "refresh_token", "client_id": self.client_id})
            except requests.RequestException as exc:
                log.warning("refresh token not revoked (the provider did not answer: %s); end_session ends it", type(exc).__name__)
        endpoint = provider.discovery.get("end_session_endpoint")
        if not endpoint:
            return None
        query = {"client_id": self.client_id, "post_logout_redirect_uri": post_logout_redirect_uri}
        if session is not None and session.id_token:
            query["id_token_hint"] = session.id_token
        return f"{endpoint}?{urlencode(query)}"

    def _forget(self, request):
        session_id = request.cookies.get(self.cookie)
        with self._lock:
            return self._sessions.pop(session_id, None) if session_id else None

    # The provider

    def _endpoint(self, name):
        provider = self.provider
        if provider is None:
            raise SignInRefused("no identity provider is configured (AUTH_OIDC_ISSUER); sign in with a token",
                                fields={"provider": ["not configured"]})
        if not provider.discovery.get(name):
            provider.reload()
        endpoint = provider.discovery.get(name)
        if not endpoint:
            raise Unavailable(f"the identity provider names no {name}")
        return endpoint

    def _token_request(self, form):
        endpoint = self._endpoint("token_endpoint")
        try:
            answer = requests.post(endpoint, data={**form, "client_id": self.client_id}, timeout=PROVIDER_TIMEOUT,
                                   headers={"Accept": "application/json"})
        except requests.RequestException:
            raise Unavailable("the identity provider does not answer; try again shortly") from None
        if answer.status_code >= 500:
            raise Unavailable("the identity provider failed; try again shortly")
        try:
            body = answer.json()
        except ValueError:
            body = {}
        if answer.status_code != 200 or not isinstance(body, dict):
            raise SignInRefused(f"the identity provider refused: {body.get('error', answer.status_code)}",
                                fields={"grant": [str(body.get("error_description") or body.get("error") or "refused")]})
        return body
