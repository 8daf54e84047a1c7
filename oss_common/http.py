"""The HTTP entrypoint every service uses: JSON in and out, the one error format, a body limit."""
import json
import logging

from marshmallow import ValidationError
from nameko.exceptions import BadRequest as NamekoBadRequest
from nameko.web.handlers import HttpRequestHandler
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, OperationalError, TimeoutError as PoolTimeout
from werkzeug.wrappers import Response

from oss_common.errors import (
    ApiError, BadRequest, PayloadTooLarge, Unavailable, UnsupportedMediaType, from_validation_error,
)

log = logging.getLogger(__name__)

DEFAULT_MAX_BODY_BYTES = 64 * 1024


def json_response(payload, status=200, headers=None):
    return Response(
        json.dumps(payload, ensure_ascii=False, default=str),
        status=status,
        headers=headers,
        mimetype="application/json",
    )


def error_response(error: ApiError):
    return json_response(error.to_dict(), status=error.status)


class ApiHandler(HttpRequestHandler):
    """`@api("GET", "/path")`: the method returns a dict/list (200), `(status, payload)`,
    `(status, headers, payload)` or a werkzeug Response; raised ApiErrors become their 4xx JSON,
    marshmallow errors a 400 naming the fields, a database that is down a 503, anything else a 500.
    """

    def __init__(self, method, url, **kwargs):
        kwargs.setdefault("expected_exceptions", (ApiError, ValidationError))
        super().__init__(method, url, **kwargs)

    def handle_request(self, request):
        limit = int(self.container.config.get("MAX_BODY_BYTES") or DEFAULT_MAX_BODY_BYTES)
        request.max_content_length = limit
        if request.content_length is not None and request.content_length > limit:
            return error_response(PayloadTooLarge(f"request body over {limit} bytes", fields={"body": [f"at most {limit} bytes"]}))
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


def json_body(request, required=True):
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
    return body


def query_params(request, schema):
    """Query-string parameters loaded through a marshmallow schema (400 naming the parameter)."""
    data = {key: values if len(values) > 1 else values[0] for key, values in request.args.lists()}
    return schema.load(data)


class HealthCheck:
    """Mixin for a service class with a `db` session: `GET /health` answers 200 once the
    process serves, its database answers and `readiness_problems()` names none; 503 otherwise
    (for probes and the runner)."""

    @api("GET", "/health")
    def health(self, request):
        self.db.execute(text("SELECT 1"))
        self.db.rollback()
        problems = self.readiness_problems()
        if problems:
            raise Unavailable(f"not ready: {'; '.join(problems)}", fields={"health": problems})
        return {"status": "ok", "service": self.name}

    def readiness_problems(self):
        return []
