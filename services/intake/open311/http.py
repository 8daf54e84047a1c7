"""The Open311 entrypoint: the platform's `api` entrypoint, answering errors as GeoReport v2 wants
them (`errors/error` with `code` and `description`, in the format the URL asked for)."""
import json

from werkzeug.routing import PathConverter, Rule

from oss_common.errors import ApiError
from oss_common.http import ApiHandler
from services.intake.open311.formats import format_of, render
from services.intake.open311.mapping import open311_field
from services.intake.open311.schemas import Open311ErrorSchema


class InvalidApiKey(ApiError):
    status = 403
    code = "invalid_api_key"


class Open311Handler(ApiHandler):
    media_types = ("application/json", "text/xml")
    error_schema = Open311ErrorSchema(many=True)
    # Every GeoReport resource answers 404 for a jurisdiction_id that is not this region.
    implied_errors = (404,)

    def __init__(self, method, url, **kwargs):
        # GeoReport has its own credentials (api_key on POST, checked by the endpoint); no bearer token.
        kwargs.setdefault("public", True)
        super().__init__(method, url, **kwargs)

    @staticmethod
    def error_status(status):
        """GeoReport answers 404 for what does not exist, 403 for a wrong or missing api_key and
        400 for anything else the client got wrong; 429 (too many requests) and server errors stay
        what they are."""
        return status if status in (403, 404, 429) or status >= 500 else 400

    def handle_request(self, request):
        response = super().handle_request(request)
        if response.status_code < 400 or response.mimetype != "application/json":
            return response
        error = json.loads(response.get_data())
        answer = render(format_of(request.path), "errors", open311_errors(response.status_code, error),
                        status=self.error_status(response.status_code))
        if "Retry-After" in response.headers:
            answer.headers["Retry-After"] = response.headers["Retry-After"]
        return answer


def open311_errors(status, error):
    """The platform's `{"error", "message", "fields"}` as GeoReport errors: one per message about
    a field (named as the POST form names it), or one for the whole request."""
    code = Open311Handler.error_status(status)
    errors = [{"code": code, "description": f"{open311_field(str(field))}: {message}"}
              for field, messages in sorted((error.get("fields") or {}).items())
              for message in (messages if isinstance(messages, list) else [messages])]
    return errors or [{"code": code, "description": error.get("message") or error.get("error") or "error"}]


class AnyPathConverter(PathConverter):
    """werkzeug's `path`, line breaks included, so that no URL under /open311/v2/ escapes the
    GeoReport error format."""

    regex = "(?s:[^/].*?)"


class CatchAllRule(Rule):
    def get_converter(self, variable_name, converter_name, args, kwargs):
        if converter_name == "path":
            return AnyPathConverter(self.map, *args, **kwargs)
        return super().get_converter(variable_name, converter_name, args, kwargs)


class Open311FallbackHandler(Open311Handler):
    """For `<path:...>` rules that answer whatever no other GeoReport route matched."""

    def get_url_rule(self):
        return CatchAllRule(self.url, methods=self.method.split(","))


open311 = Open311Handler.decorator
open311_fallback = Open311FallbackHandler.decorator
