"""What holds for every service process alike: every documented HTTP operation needs a valid
bearer token, but for a short, pinned list of public ones, and answers 401 to a caller without
one, or with an expired or forged one, before it reads its input; and every process's /metrics
page passes `promtool check metrics` and carries the RED metrics of its entrypoints."""
import shutil
import subprocess
import time

import pytest
import requests

from oss_common.auth import issue_token
from oss_common.openapi import documented_services, openapi_document
from tests.conftest import TEST_SIGNING_KEY, forged_token, missing_tool

pytestmark = pytest.mark.integration

# What anyone may call: health, Open311 (its POST checks a partner's api_key instead), the
# citizen's status page's lookup, open data, and Payme (which checks its merchant key itself).
PUBLIC = {
    ("catalogue", "GET", "/health"),
    ("intake", "GET", "/health"),
    ("intake", "POST", "/api/v1/status/{tracking_number}"),
    ("intake", "GET", "/open311/v2/discovery.{format}"),
    ("intake", "GET", "/open311/v2/services.{format}"),
    ("intake", "GET", "/open311/v2/services/{service_code}.{format}"),
    ("intake", "GET", "/open311/v2/requests.{format}"),
    ("intake", "POST", "/open311/v2/requests.{format}"),
    ("intake", "GET", "/open311/v2/requests/{service_request_id}.{format}"),
    ("intake", "GET", "/open311/v2/tokens/{token}.{format}"),
    ("intake", "POST", "/api/v1/payme"),  # Payme's merchant API: Basic auth with the region's merchant key instead
    ("notifications", "GET", "/health"),
    ("reporting", "GET", "/health"),
    ("reporting", "GET", "/api/v1/open-data/summary"),
    ("reporting-national", "GET", "/health"),
}
PATH_VALUES = {"code": "photocopying", "tracking_number": "JI-2026-000001", "centre": "jizzakh-city"}


def operations():
    for stem, service_cls in documented_services():
        for path, methods in openapi_document(service_cls)["paths"].items():
            for method, operation in methods.items():
                yield stem, method.upper(), path, operation


def test_only_the_pinned_operations_are_public():
    public = {(stem, method, path) for stem, method, path, operation in operations() if not operation.get("security")}
    assert public == PUBLIC


@pytest.fixture(scope="module")
def processes(stack):
    """One process of each documented kind, by the stem of its OpenAPI document."""
    started = {"notifications": stack.start("notifications", region="jizzakh",
                                            database_url=stack.databases.new("notifications-faces")),
               "reporting": stack.start("reporting", region="jizzakh", database_url=stack.databases.new("reporting-faces")),
               "reporting-national": stack.start_national("reporting", REGIONS="jizzakh")}
    yield {"catalogue": stack.running("catalogue"), "intake": stack.intakes["jizzakh"], **started}
    for process in started.values():
        process.stop()


def bad_credentials():
    expired = issue_token(TEST_SIGNING_KEY, "analyst", "late", ttl_seconds=60, now=time.time() - 7200)
    forged = forged_token("analyst", subject="mallory")
    return [({}, "required"), ({"Authorization": f"Bearer {expired}"}, "expired"),
            ({"Authorization": f"Bearer {forged}"}, "invalid token")]


def test_every_secured_operation_answers_401_without_a_valid_token(processes):
    secured = [(stem, method, path) for stem, method, path, operation in operations() if operation.get("security")]
    assert len(secured) >= 18
    for stem, method, path in secured:
        url = processes[stem].url + path.format(**PATH_VALUES)
        for headers, reason in bad_credentials():
            response = requests.request(method, url, json={} if method in ("POST", "PUT") else None,
                                        headers=headers, timeout=10)
            assert response.status_code == 401, (stem, method, path, response.status_code, response.text[:200])
            assert response.headers["WWW-Authenticate"] == 'Bearer realm="oss"'
            assert response.json()["fields"] == {"Authorization": [reason]}, (stem, method, path)


def test_every_process_serves_valid_metrics_with_red_metrics_of_its_entrypoints(processes):
    if shutil.which("promtool") is None:
        missing_tool("promtool is missing: deploy/local/ensure-tools.sh installs it")
    for stem, process in processes.items():
        requests.get(f"{process.url}/health", timeout=10)
        page = requests.get(f"http://127.0.0.1:{process.metrics_port}/metrics", timeout=10).text
        assert 'oss_entrypoint_calls_total{entrypoint="health"' in page, stem
        assert "# TYPE oss_entrypoint_duration_seconds histogram" in page, stem
        checked = subprocess.run(["promtool", "check", "metrics"], input=page, capture_output=True, text=True, timeout=60)
        assert checked.returncode == 0, f"{stem}: {checked.stdout}{checked.stderr}"
