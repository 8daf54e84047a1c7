"""The HTTP entrypoint every service uses: JSON in and out, the one error format, a body limit.

Over 300 lines because every check a request meets before a worker runs (token, roles, rate limit, body
size, unusable text, routing errors) is made here once, for every service."""
import io
import json
import logging
import re
from dataclasses import dataclass

from marshmallow import Schema, ValidationError, fields
from nameko.exceptions import BadRequest as NamekoBadRequest
from nameko.extensions import SharedExtension
from nameko.web.handlers import HttpRequestHandler
from nameko.web.server import WebServer, WsgiApp
from werkzeug.exceptions import HTTPException
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, OperationalError, TimeoutError as PoolTimeout
from werkzeug.wrappers import Request, Response

from oss_common.auth import ROLES, Principal, Unauthorized, VerifiedTokens, authorize, bearer_token, trusted_keys
from oss_common.callers import CONTEXT_KEY
from oss_common.config import setting
from oss_common.errors import (
    ApiError, BadRequest, PayloadTooLarge, TooManyRequests, Unavailable, UnsupportedMediaType, from_validation_error,
)
from oss_common.metrics import ANONYMOUS_REFUSED
from oss_common.ratelimit import Limiter, client_address, rate_setting
from oss_common.web_sessions import ENVIRON_KEY as WEB_SESSIONS_KEY, SESSION_HEADER, WebSessions

log = logging.getLogger(__name__)

DEFAULT_MAX_BODY_BYTES = 64 * 1024
MAX_JSON_DEPTH = 32
# Text no database column or UTF-8 response can carry: NUL, and halves of a surrogate pair.
UNUSABLE_TEXT = re.compile("[\x00\ud800-\udfff]")


def json_response(payload: object, status: int = 200, headers: dict | None = None) -> Response:
    return Response(
        json.dumps(payload, ensure_ascii=False, default=str),
        status=status,
        headers=headers,
        mimetype="application/json",
    )


def error_response(error: ApiError) -> Response:
    response = json_response(error.to_dict(), status=error.status)
    if isinstance(error, TooManyRequests):
        response.headers["Retry-After"] = str(error.retry_after)
    return response


@dataclass(frozen=True)
class ApiDoc:
    """What an `api` entrypoint declares about itself for the OpenAPI document (oss_common.openapi).

    `query`, `headers`, `body`, `form` and `response` are marshmallow schemas (classes or
    instances); `status` the success status(es); `errors` the 4xx statuses beyond those the inputs
    imply; `content` other media types the success response may come as; `hidden` leaves it out.
    """

    summary: str | None = None
    query: object = None
    headers: object = None
    body: object = None
    form: object = None
    response: object = None
    status: int | tuple = 200
    errors: tuple = ()
    content: tuple = ()
    hidden: bool = False


class JsonErrorsWsgiApp(WsgiApp):
    """nameko's WSGI app, with the routing errors werkzeug raises before any entrypoint runs (an
    unknown path, a method the path does not take) in the platform's JSON error format."""

    def __call__(self, environ, start_response):
        request = Request(environ, shallow=True)  # as nameko's: nothing reads the body before the handler
        adapter = self.url_map.bind_to_environ(environ)
        try:
            provider, values = adapter.match()
        except HTTPException as exc:
            if exc.code is None or exc.code < 400:  # redirects (a missing trailing slash) stay as they are
                return exc(environ, start_response)
            code = {404: "not_found", 405: "method_not_allowed"}.get(exc.code, "bad_request")
            headers = [(name, value) for name, value in exc.get_headers(environ) if name.lower() == "allow"]
            message = {404: f"no resource {environ.get('PATH_INFO', '')!r} here",
                       405: f"{environ.get('REQUEST_METHOD')} is not allowed here"}.get(exc.code, exc.description)
            fields = {"url": ["unknown path"]} if exc.code == 404 else {"method": ["not allowed"]} if exc.code == 405 else {}
            response = json_response({"error": code, "message": message, "fields": fields}, status=exc.code, headers=headers)
            return response(environ, start_response)
        request.path_values = values
        try:
            answer = provider.handle_request(request)
        except HTTPException as exc:
            answer = exc
        return answer(environ, start_response)


class OssWebServer(WebServer):
    def get_wsgi_app(self):
        return JsonErrorsWsgiApp(self)

    def context_data_from_headers(self, request):
        """The caller's bearer token, passed on to every RPC the worker makes (oss_common.callers)."""
        scheme, _, token = (request.headers.get("Authorization") or "").partition(" ")
        return {CONTEXT_KEY: token.strip()} if scheme.lower() == "bearer" and token.strip() else {}


class AnonymousLimits(SharedExtension):
    """What one process lets each client address ask of its public endpoints, all of them together
    (ANONYMOUS_RATE_LIMIT, `N/S`); FORWARDED_HOPS says how many proxies of the deployment stand in
    front, whose X-Forwarded-For names the client."""

    def setup(self) -> None:
        config = self.container.config
        self.limiter = Limiter(rate_setting(config, "ANONYMOUS_RATE_LIMIT", "120/60"))
        self.forwarded_hops = setting(config, "FORWARDED_HOPS", 0, int)

    def address(self, request):
        return client_address(request, self.forwarded_hops)

    def refusal(self, request: Request) -> TooManyRequests | None:
        """The 429 to answer when the request's address has used up its requests, else None."""
        wait = self.limiter.take(self.address(request))
        if not wait:
            return None
        return TooManyRequests("too many requests from this address; try again later", retry_after=wait)


class ApiHandler(HttpRequestHandler):
    """`@api("GET", "/path")`: the method returns a dict/list (200), `(status, payload)`,
    `(status, headers, payload)` or a werkzeug Response; raised ApiErrors become their 4xx JSON,
    marshmallow errors a 400 naming the fields, a database that is down a 503, anything else a 500.

    Keyword arguments named like ApiDoc's fields (`query=`, `body=`, `response=`, ...) describe
    the endpoint for its service's OpenAPI document; they change nothing at run time.

    Every endpoint needs a bearer token (oss_common.auth) unless declared `public=True`;
    `roles=(...)` narrows who may call it (default: any role). A token for another region gets
    403 on a regional instance. The method reads its caller with `principal(request)`. A call of
    the service's own pages carries no token but their sign-in session's cookie and the header
    X-OSS-Session (oss_common.web_sessions): the session's access token stands for the bearer. Public
    endpoints are rate-limited per client address (AnonymousLimits): past the limit, 429 with
    Retry-After, before any worker is taken. `unlimited_when=factory` exempts the callers a public
    endpoint authenticates itself (a partner's servers behind few addresses): `factory(config)` gives
    a check of the request, true for a caller with the right credentials; any other request, wrong
    credentials included, counts against its address's limit.
    """

    server = OssWebServer()
    anonymous_limits = AnonymousLimits()
    web_sessions = WebSessions()

    def __init__(self, method, url, roles=None, public=False, **kwargs):
        doc = {name: kwargs.pop(name) for name in ApiDoc.__dataclass_fields__ if name in kwargs}
        self.doc = ApiDoc(**doc)
        self.public = public
        self.unlimited_when = kwargs.pop("unlimited_when", None)
        self.roles = tuple(roles or ROLES)
        unknown = set(self.roles) - set(ROLES)
        if unknown:
            raise ValueError(f"unknown roles {sorted(unknown)}")
        kwargs.setdefault("expected_exceptions", (ApiError, ValidationError))
        super().__init__(method, url, **kwargs)

    def setup(self) -> None:
        super().setup()
        config = self.container.config
        self.region = config.get("REGION") or None
        self.keys = None if self.public else trusted_keys(config)
        self.unlimited = self.unlimited_when(config) if self.unlimited_when else None
        self.tokens = VerifiedTokens()

    def authenticate(self, request: Request) -> Principal | Response:
        """The caller's Principal, or the 401/403 response to answer instead."""
        try:
            if not request.headers.get("Authorization") and request.headers.get(SESSION_HEADER):
                # Also what the worker's RPCs carry on (OssWebServer.context_data_from_headers).
                request.environ["HTTP_AUTHORIZATION"] = f"Bearer {self.web_sessions.access_token(request)}"
            token = bearer_token(request.headers.get("Authorization"))
            return authorize(self.tokens.read(self.keys, token), self.roles, self.region)
        except Unauthorized as exc:
            response = error_response(exc)
            response.headers["WWW-Authenticate"] = 'Bearer realm="oss"'
            return response
        except ApiError as exc:
            return error_response(exc)

    def handle_request(self, request: Request) -> Response:
        request.environ[WEB_SESSIONS_KEY] = self.web_sessions
        if self.public:
            trusted = self.unlimited is not None and self.unlimited(request)
            refusal = None if trusted else self.anonymous_limits.refusal(request)
            if refusal is not None:
                ANONYMOUS_REFUSED.labels(self.container.service_name, self.region or "national", self.method_name,
                                         "address").inc()
                return error_response(refusal)
        else:
            caller = self.authenticate(request)
            if isinstance(caller, Response):
                return caller
            request.environ[PRINCIPAL_KEY] = caller
        limit = int(self.container.config.get("MAX_BODY_BYTES") or DEFAULT_MAX_BODY_BYTES)
        request.max_content_length = limit
        if not _buffer_chunked_body(request.environ, limit):
            return error_response(PayloadTooLarge(f"request body over {limit} bytes", fields={"body": [f"at most {limit} bytes"]}))
        if request.content_length is not None and request.content_length > limit:
            return error_response(PayloadTooLarge(f"request body over {limit} bytes", fields={"body": [f"at most {limit} bytes"]}))
        if UNUSABLE_TEXT.search(request.path) or any(
                UNUSABLE_TEXT.search(name) or UNUSABLE_TEXT.search(value) for name, value in request.args.items(multi=True)):
            return error_response(BadRequest("the URL holds a NUL character", fields={"url": ["must not contain NUL characters"]}))
        return super().handle_request(request)

    def response_from_result(self, result):
        if isinstance(result, Response):
            return result
        status, headers, payload = 200, None, result
        if isinstance(result, tuple):
            if len(result) == 3:
                status, headers, payload = result
            else:
                status, payload = result
        if isinstance(payload, str):
            return Response(payload, status=status, headers=headers)
        return json_response(payload, status=status, headers=headers)

    def response_from_exception(self, exc):
        if isinstance(exc, ApiError):
            return error_response(exc)
        if isinstance(exc, ValidationError):
            return error_response(from_validation_error(exc))
        if isinstance(exc, NamekoBadRequest):
            return error_response(BadRequest("the request does not fit this endpoint"))
        if isinstance(exc, (OperationalError, PoolTimeout)) or (isinstance(exc, DBAPIError) and exc.connection_invalidated):
            return error_response(Unavailable("the database is unreachable; try again shortly"))
        log.error("unhandled %s in %s", type(exc).__name__, self.method_name)
        return json_response({"error": "internal", "message": "internal error", "fields": {}}, status=500)


api = ApiHandler.decorator


def _buffer_chunked_body(environ, limit):
    """Read a chunked body (eventlet de-chunks it) into memory and give it a Content-Length, as
    werkzeug takes a body without one for empty; False when it is over `limit` bytes."""
    if environ.get("HTTP_TRANSFER_ENCODING", "").lower() != "chunked":
        return True
    body = environ["wsgi.input"].read(limit + 1)
    if len(body) > limit:
        return False
    environ.pop("HTTP_TRANSFER_ENCODING")
    environ.update({"wsgi.input": io.BytesIO(body), "CONTENT_LENGTH": str(len(body))})
    return True
PRINCIPAL_KEY = "oss.principal"


def principal(request: Request) -> Principal | None:
    """The authenticated caller of a non-public `api` endpoint (None on public ones)."""
    return request.environ.get(PRINCIPAL_KEY)


def json_body(request: Request, required: bool = True) -> dict:
    """The request's JSON body as a dict; a 4xx naming `body` when it is absent or not JSON."""
    mimetype = request.mimetype or ""
    if mimetype and mimetype != "application/json" and not mimetype.endswith("+json"):
        raise UnsupportedMediaType("send the body as application/json", fields={"body": ["must be application/json"]})
    try:
        raw = request.get_data(cache=False)
    except Exception as exc:  # werkzeug raises RequestEntityTooLarge past max_content_length
        raise PayloadTooLarge("request body too large", fields={"body": ["too large"]}) from exc
    if not raw:
        if required:
            raise BadRequest("request body is empty", fields={"body": ["a JSON object is required"]})
        return {}
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequest("request body is not valid UTF-8", fields={"body": ["not valid UTF-8"]}) from exc
    try:
        body = json.loads(text)
    except RecursionError as exc:
        raise BadRequest("request body is nested too deeply", fields={"body": ["nested too deeply"]}) from exc
    except ValueError as exc:
        raise BadRequest("request body is not valid JSON", fields={"body": ["not valid JSON"]}) from exc
    if not isinstance(body, dict):
        raise BadRequest("request body must be a JSON object", fields={"body": ["must be a JSON object"]})
    problem = _unfit_part(body)
    if problem:
        field, message = problem
        raise BadRequest(f"request body: {field} {message}", fields={field: [message]})
    return body


def _unfit_part(document):
    """(field, message) for the first part of a decoded body no schema should be handed: text with
    a NUL or half a surrogate pair (no database column or UTF-8 answer can carry it), or nesting
    deeper than any request needs (marshmallow and json.dumps recurse, and would fail with
    RecursionError on their own deeper stack). None when the body is fit."""
    pending = [(document, (), 0)]
    while pending:
        item, path, depth = pending.pop()
        field = ".".join(map(str, path)) or "body"
        if depth > MAX_JSON_DEPTH:
            return ".".join(map(str, path[:2])), f"nested deeper than {MAX_JSON_DEPTH} levels"
        if isinstance(item, str):
            if UNUSABLE_TEXT.search(item):
                return field, "must not contain \\u0000 or unpaired \\ud800-\\udfff escapes"
        elif isinstance(item, dict):
            for key, value in item.items():
                if UNUSABLE_TEXT.search(key):
                    return field, "names must not contain \\u0000 or unpaired \\ud800-\\udfff escapes"
                pending.append((value, (*path, key), depth + 1))
        elif isinstance(item, list):
            pending.extend((value, (*path, index), depth + 1) for index, value in enumerate(item))
    return None


def query_params(request: Request, schema: Schema) -> dict:
    """Query-string parameters loaded through a marshmallow schema (400 naming the parameter)."""
    data = {key: values if len(values) > 1 else values[0] for key, values in request.args.lists()}
    return schema.load(data)


class HealthSchema(Schema):
    status = fields.String(required=True)
    service = fields.String(required=True)


class HealthCheck:
    """Mixin for a service class with a `db` session: `GET /health` answers 200 once the
    process serves, its database answers and `readiness_problems()` names none; 503 otherwise
    (for probes and the runner)."""

    @api("GET", "/health", public=True, summary="Liveness and readiness", response=HealthSchema, errors=(503,))
    def health(self, request):
        self.db.execute(text("SELECT 1"))
        self.db.rollback()
        problems = self.readiness_problems()
        if problems:
            raise Unavailable(f"not ready: {'; '.join(problems)}", fields={"health": problems})
        return HealthSchema().dump({"status": "ok", "service": self.name})

    def readiness_problems(self) -> list[str]:
        return []
