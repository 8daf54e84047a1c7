"""The OpenAPI 3 document of a service's HTTP API, built from its `api` entrypoints and the
marshmallow schemas they declare (`query=`, `body=`, `form=`, `response=`), so that the
document cannot drift from the code. Served at `/openapi.json`; `make openapi` writes them all
to docs/openapi/."""
import warnings

warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")

import argparse  # noqa: E402
import importlib  # noqa: E402
import inspect  # noqa: E402
import json  # noqa: E402
import re  # noqa: E402
import sys  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from decimal import Decimal  # noqa: E402
from functools import lru_cache  # noqa: E402
from importlib.metadata import PackageNotFoundError, version  # noqa: E402
from pathlib import Path  # noqa: E402

from apispec import APISpec  # noqa: E402
from apispec.ext.marshmallow import MarshmallowPlugin  # noqa: E402
from marshmallow import Schema, fields  # noqa: E402
from nameko.extensions import ENTRYPOINT_EXTENSIONS_ATTR  # noqa: E402

from oss_common.config import PROJECT_ROOT  # noqa: E402
from oss_common.http import ApiHandler, api  # noqa: E402
from oss_common.service_kinds import SERVICES  # noqa: E402

OPENAPI_VERSION = "3.0.3"
JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
RULE_VARIABLE = re.compile(r"<(?:(?P<converter>\w+)(?:\((?P<arguments>[^)]*)\))?:)?(?P<name>\w+)>")
STATUS_DESCRIPTIONS = {
    200: "OK",
    201: "Created",
    400: "Malformed input; `fields` names what is wrong",
    401: "Credentials missing or wrong",
    403: "Not allowed",
    404: "Not found",
    409: "Not allowed in the current state",
    413: "Request body too large",
    415: "Request body not in the required media type",
    422: "Well-formed input that breaks a catalogue or workflow rule",
    429: "Too many requests from this address (or wrong guesses); Retry-After says how many seconds to wait",
    503: "A dependency (the database) is unreachable; try again shortly",
}
DOCUMENTS_DIR = PROJECT_ROOT / "docs" / "openapi"


class ErrorSchema(Schema):
    """The one error format of the platform's own APIs."""

    error = fields.String(required=True)
    message = fields.String(required=True)
    field_errors = fields.Dict(data_key="fields", keys=fields.String(), values=fields.List(fields.String()),
                               required=True)


@dataclass(frozen=True)
class Route:
    """One method of one `api` entrypoint: the Python method, the HTTP method, the werkzeug rule."""

    name: str
    method: str
    rule: str
    handler: ApiHandler

    @property
    def doc(self):
        return self.handler.doc


def api_routes(service_cls: type) -> list:
    """Every `api` entrypoint of a service class (mixins included), one Route per HTTP method."""
    routes = []
    for name, function in inspect.getmembers(service_cls, inspect.isfunction):
        for entrypoint in getattr(function, ENTRYPOINT_EXTENSIONS_ATTR, ()):
            if isinstance(entrypoint, ApiHandler):
                routes.extend(Route(name, method.strip().upper(), entrypoint.url, entrypoint)
                              for method in entrypoint.method.split(","))
    return sorted(routes, key=lambda route: (route.rule, route.method))


def openapi_path(rule: str) -> tuple[str, list[str]]:
    """`/api/v1/services/<string:code>` as `/api/v1/services/{code}` and its path parameters."""
    parameters = []

    def variable(match):
        converter = match["converter"] or "string"
        if converter == "int":
            schema = {"type": "integer", "minimum": 0}
        elif converter == "any":
            schema = {"type": "string", "enum": [choice.strip().strip("'\"") for choice in match["arguments"].split(",")]}
        else:
            schema = {"type": "string", "pattern": "^[^/]+$"}
        parameters.append({"in": "path", "name": match["name"], "required": True, "schema": schema})
        return "{" + match["name"] + "}"

    return RULE_VARIABLE.sub(variable, rule), parameters


def _summary(route, service_cls):
    if route.doc.summary:
        return route.doc.summary
    docstring = inspect.getdoc(getattr(service_cls, route.name)) or route.name.replace("_", " ")
    return docstring.splitlines()[0]


def _content(handler, schema):
    """The media types a response of this handler comes in: JSON with `schema`, and whatever
    else the handler speaks (Open311's XML) as text."""
    content = {}
    for media_type in getattr(handler, "media_types", (JSON,)):
        if media_type == JSON:
            content[media_type] = {"schema": schema if schema is not None else {}}
        else:
            content[media_type] = {"schema": {"type": "string"}}
    return content


def error_statuses(route, has_path_parameters):
    """The 4xx/5xx statuses a route can answer: declared ones plus those its inputs imply,
    as the route's handler reports them."""
    doc = route.doc
    statuses = set(doc.errors) | set(getattr(route.handler, "implied_errors", ())) | {503}
    statuses |= {429} if route.handler.public else {401, 403}
    if has_path_parameters or doc.query or doc.headers or doc.body or doc.form:
        statuses.add(400)
    if doc.body:
        statuses |= {413, 415}
    if doc.form:
        statuses.add(413)
    as_reported = getattr(route.handler, "error_status", None)
    if as_reported is not None:
        statuses = {as_reported(status) for status in statuses}
    return sorted(statuses)


def operation(route, service_cls):
    doc = route.doc
    path, parameters = openapi_path(route.rule)
    if doc.query is not None:
        parameters.append({"in": "query", "schema": doc.query})
    if doc.headers is not None:
        parameters.append({"in": "header", "schema": doc.headers})
    result = {"operationId": route.name, "summary": _summary(route, service_cls), "responses": {}}
    if not route.handler.public:
        roles = ", ".join(route.handler.roles)
        result["security"] = [{"bearer": []}]
        result["description"] = f"Needs a bearer token of role: {roles}."
        result["x-roles"] = list(route.handler.roles)
    if parameters:
        result["parameters"] = parameters
    if doc.body is not None:
        result["requestBody"] = {"required": True, "content": {JSON: {"schema": doc.body}}}
    if doc.form is not None:
        result["requestBody"] = {"required": True, "content": {FORM: {"schema": doc.form}}}
    for status in doc.status if isinstance(doc.status, tuple) else (doc.status,):
        content = _content(route.handler, doc.response)
        for media_type in doc.content:
            content[media_type] = {"schema": {"type": "string", "format": "binary"}}
        result["responses"][str(status)] = {"description": STATUS_DESCRIPTIONS.get(status, "OK"), "content": content}
    error_schema = getattr(route.handler, "error_schema", ErrorSchema)
    for status in error_statuses(route, bool(openapi_path(route.rule)[1])):
        result["responses"][str(status)] = {"description": STATUS_DESCRIPTIONS.get(status, "Error"),
                                            "content": _content(route.handler, error_schema)}
    # The HTTP server itself refuses a request line over 8 KB, before any entrypoint sees it.
    result["responses"]["414"] = {"description": "URI too long (the request line is over 8 KB)"}
    return path, result


def _description(service_cls):
    for cls in service_cls.__mro__:
        if cls.__dict__.get("__doc__"):
            return inspect.cleandoc(cls.__doc__)
    return ""


def _version():
    try:
        return version("oss-platform")
    except PackageNotFoundError:
        return "0.0.0"


@lru_cache(maxsize=None)
def _document(service_cls):
    spec = APISpec(title=f"OSS {service_cls.name}", version=_version(), openapi_version=OPENAPI_VERSION,
                   plugins=[MarshmallowPlugin()], info={"description": _description(service_cls)})
    paths = {}
    for route in api_routes(service_cls):
        if route.doc.hidden:
            continue
        path, details = operation(route, service_cls)
        paths.setdefault(path, {})[route.method.lower()] = details
    spec.components.security_scheme("bearer", {
        "type": "http", "scheme": "bearer", "bearerFormat": "JWT",
        "description": "A token from `oss token issue` (roles operator, officer, analyst, catalogue-admin)"})
    for path, operations in sorted(paths.items()):
        spec.path(path=path, operations=operations)
    document = spec.to_dict()
    for operations in document["paths"].values():
        for details in operations.values():
            for parameter in details.get("parameters", ()):
                _without_null(parameter["schema"])
    return json.dumps(document, sort_keys=True, ensure_ascii=False, default=_plain_number)


def _without_null(schema):
    """A query or path parameter is absent or has a value; `load_default=None` must not make it nullable."""
    if schema.get("default", ...) is None:
        del schema["default"]
    schema.pop("nullable", None)
    if "enum" in schema:
        schema["enum"] = [choice for choice in schema["enum"] if choice is not None]


def _plain_number(value):
    """Validator bounds of Decimal fields, as JSON numbers."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def openapi_document(service_cls: type) -> dict:
    """The OpenAPI 3 document (a fresh dict) of a nameko service class's `api` entrypoints."""
    return json.loads(_document(service_cls))


class OpenApiDocs:
    """Mixin: `GET /openapi.json`, the service's own OpenAPI document."""

    @api("GET", "/openapi.json", public=True, hidden=True)
    def openapi_json(self, request):
        return openapi_document(type(self))


def documented_services() -> list[tuple[str, type]]:
    """(file stem, service class) for every service kind the `oss` runner knows, and the national
    instance of a regional kind when it is a class of its own."""
    for kind in SERVICES.values():
        module = importlib.import_module(f"{kind.package}.service")
        yield kind.name, getattr(module, kind.cls)
        if kind.national_cls and kind.national_cls != kind.cls:
            yield f"{kind.name}-national", getattr(module, kind.national_cls)


def render(document: dict) -> str:
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write_documents(directory: Path = DOCUMENTS_DIR) -> list:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for stem, service_cls in documented_services():
        path = directory / f"{stem}.json"
        path.write_text(render(openapi_document(service_cls)), encoding="utf-8")
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m oss_common.openapi",
                                     description="Write every service's OpenAPI document to a directory.")
    parser.add_argument("directory", nargs="?", default=str(DOCUMENTS_DIR))
    args = parser.parse_args(argv)
    for path in write_documents(args.directory):
        print(path.relative_to(PROJECT_ROOT) if path.is_relative_to(PROJECT_ROOT) else path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
