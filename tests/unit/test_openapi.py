"""The OpenAPI documents: built from the `api` entrypoints, valid OpenAPI 3, every route in them,
and docs/openapi/ as `make openapi` writes it today."""
import json

import pytest
import schemathesis
from marshmallow import Schema, fields

from oss_common.http import ApiDoc, ApiHandler, api
from oss_common.openapi import (
    DOCUMENTS_DIR, OpenApiDocs, api_routes, documented_services, openapi_document, openapi_path, render,
)

# Every service kind the runner knows, so that a new one cannot go undocumented unnoticed.
OURS = dict(documented_services())


def test_api_keeps_working_without_documentation_and_takes_it_as_keywords():
    class Thing(Schema):
        name = fields.String()

    plain = ApiHandler("GET", "/plain")
    assert plain.doc == ApiDoc() and plain.method == "GET" and plain.url == "/plain"
    documented = ApiHandler("POST", "/things", body=Thing, response=Thing, status=201, errors=(409,))
    assert documented.doc.body is Thing and documented.doc.status == 201 and documented.doc.errors == (409,)
    assert documented.expected_exceptions  # nameko's own keyword arguments still pass through


def test_werkzeug_rules_become_openapi_paths():
    path, parameters = openapi_path("/open311/v2/services/<string:service_code>.<any(json, xml):format>")
    assert path == "/open311/v2/services/{service_code}.{format}"
    assert [parameter["name"] for parameter in parameters] == ["service_code", "format"]
    assert parameters[1]["schema"] == {"type": "string", "enum": ["json", "xml"]}
    assert openapi_path("/api/v1/things/<int:number>")[1][0]["schema"]["type"] == "integer"


@pytest.mark.parametrize("stem", sorted(OURS))
def test_every_api_route_is_in_the_document_with_a_json_schema_for_its_answers(stem):
    service_cls = OURS[stem]
    document = openapi_document(service_cls)
    routes = [route for route in api_routes(service_cls) if not route.doc.hidden]
    assert routes
    for route in routes:
        path, _ = openapi_path(route.rule)
        operation = document["paths"][path][route.method.lower()]
        success = [status for status in operation["responses"] if status.startswith("2")]
        assert success, f"{route.name} documents no success"
        for status in success:
            assert operation["responses"][status]["content"]["application/json"]["schema"], route.name
    documented = {(path, method) for path, operations in document["paths"].items() for method in operations}
    assert len(documented) == len(routes)


@pytest.mark.parametrize("stem", sorted(OURS))
def test_every_service_serves_its_document(stem):
    assert issubclass(OURS[stem], OpenApiDocs)
    assert "/openapi.json" not in openapi_document(OURS[stem])["paths"]


@pytest.mark.parametrize("stem", sorted(OURS))
def test_the_documents_are_valid_openapi_3(stem):
    document = openapi_document(OURS[stem])
    assert document["openapi"].startswith("3.")
    schema = schemathesis.openapi.from_dict(document)
    operations = list(schema.get_all_operations())
    assert operations and all(operation.ok() for operation in operations)


def test_the_open311_face_is_documented_with_both_formats_and_its_own_errors():
    document = openapi_document(OURS["intake"])
    post = document["paths"]["/open311/v2/requests.{format}"]["post"]
    assert set(post["requestBody"]["content"]) == {"application/x-www-form-urlencoded"}
    assert set(post["responses"]) >= {"200", "400", "403", "404"}
    assert set(post["responses"]["403"]["content"]) == {"application/json", "text/xml"}
    assert post["responses"]["403"]["content"]["application/json"]["schema"]["items"]["$ref"].endswith("/Open311Error")
    form = document["components"]["schemas"]["RequestForm"]["properties"]
    assert {"pinfl", "phone", "language", "api_key", "address_id"} <= set(form)


def test_query_parameters_are_never_nullable():
    for service_cls in OURS.values():
        for operations in openapi_document(service_cls)["paths"].values():
            for operation in operations.values():
                for parameter in operation.get("parameters", ()):
                    assert "nullable" not in parameter["schema"] and None not in parameter["schema"].get("enum", ())


def test_docs_openapi_is_what_make_openapi_writes_today():
    """Run `make openapi` when this fails: the code's routes or schemas changed."""
    for stem, service_cls in documented_services():
        path = DOCUMENTS_DIR / f"{stem}.json"
        assert path.exists(), f"{path} missing: run make openapi"
        assert json.loads(path.read_text(encoding="utf-8")) == json.loads(render(openapi_document(service_cls))), \
            f"{path} is out of date: run make openapi"


def test_a_route_with_several_methods_documents_each():
    class Example(OpenApiDocs):
        name = "example"

        @api("GET,POST", "/things", summary="things")
        def things(self, request):
            """Things."""

    assert set(openapi_document(Example)["paths"]["/things"]) == {"get", "post"}
