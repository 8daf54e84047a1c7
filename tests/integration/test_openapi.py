"""Every service's /openapi.json against the running service: it is the document `make openapi`
writes, and requests generated from it by schemathesis, valid and invalid, never get a 5xx and
always get a documented status, content type and body (OSS_OPENAPI_EXAMPLES per service, 1000 by
default). The services run on a RabbitMQ vhost of their own: the generated requests change the
catalogue, and no other test should see that."""
import hashlib
import json
import os
import signal
import subprocess
import sys
import uuid
from collections import Counter

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance, response_schema_conformance, status_code_conformance,
)

from oss_common.auth import REGIONAL_ROLES
from oss_common.broker import ensure_shared_exchanges
from oss_common.config import PROJECT_ROOT
from oss_common.openapi import DOCUMENTS_DIR, OpenApiDocs, documented_services
from tests.conftest import BROKER, _rabbitmqctl, as_caller, auth
from tests.integration.conftest import Stack, seed_document

pytestmark = pytest.mark.integration

EXAMPLES = int(os.environ.get("OSS_OPENAPI_EXAMPLES", "1000"))
REGION = "jizzakh"
KEY = f"fuzz-{uuid.uuid4().hex}"
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
SERVED = [stem for stem, service_cls in documented_services() if issubclass(service_cls, OpenApiDocs)]


@pytest.fixture(scope="module")
def services(databases, tmp_path_factory):
    """The catalogue (seeded), and for one region intake (with a partner key), reporting and, when
    the platform has it, notifications; and national reporting. {document stem: base URL}."""
    vhost = f"oss-openapi-{uuid.uuid4().hex[:8]}"
    if _rabbitmqctl("add_vhost", vhost).returncode != 0 or \
            _rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*").returncode != 0:
        pytest.fail(f"cannot create the RabbitMQ vhost {vhost} (rabbitmqctl)")
    ensure_shared_exchanges(f"{BROKER}/{vhost}")
    stack = Stack(f"{BROKER}/{vhost}", databases, tmp_path_factory.mktemp(f"openapi-{databases.backend}"))
    try:
        catalogue = stack.start("catalogue", database_url=databases.new("openapi-catalogue"))
        with stack.rpc(caller=as_caller("catalogue-admin")) as cluster:
            cluster.catalogue.load_catalogue(seed_document())
        started = {
            "catalogue": catalogue,
            "intake": stack.start("intake", region=REGION, database_url=databases.new("openapi-intake"), wait=False,
                                  OPEN311_API_KEYS=f"fuzzer:{hashlib.sha256(KEY.encode()).hexdigest()}"),
            "reporting": stack.start("reporting", region=REGION, database_url=databases.new("openapi-reporting"),
                                     wait=False),
            "reporting-national": stack.start_national("reporting", REGIONS=REGION, NATIONAL_TIMEOUT_SECONDS=2,
                                                       wait=False),
        }
        if "notifications" in SERVED:
            started["notifications"] = stack.start("notifications", region=REGION, wait=False,
                                                   database_url=databases.new("openapi-notifications"))
        for process in started.values():
            process.wait_healthy()
        yield {stem: process.url for stem, process in started.items()}
    finally:
        stop_together(stack.processes)
        _rabbitmqctl("delete_vhost", vhost)


def stop_together(processes, timeout=15.0):
    """SIGTERM to all first, so they finish their workers side by side rather than one by one."""
    for process in processes:
        if process.process and process.process.poll() is None:
            process.process.send_signal(signal.SIGTERM)
    for process in processes:
        if process.process:
            try:
                process.process.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        process.stop()


@pytest.mark.parametrize("stem", SERVED)
def test_each_service_serves_the_document_make_openapi_writes(services, stem):
    served = requests.get(f"{services[stem]}/openapi.json", timeout=10).json()
    written = json.loads((DOCUMENTS_DIR / f"{stem}.json").read_text(encoding="utf-8"))
    # The served title names the running instance (e.g. intake_jizzakh); everything else is the same.
    assert {**served, "info": None} == {**written, "info": None}


def credentials(case, calls):
    """A token of each role the operation admits in turn (staff of REGION), and every tenth call none,
    so that the documented 401/403 answers are exercised as well as the endpoint itself."""
    roles = case.operation.definition.raw.get("x-roles")
    count = calls[case.operation.label]
    if not roles or count % 10 == 0:
        return {}
    role = roles[count % len(roles)]
    return auth(role, REGION if role in REGIONAL_ROLES else None)


def exercise(base_url, mode, examples, api_key):
    """`examples` requests generated from the service's document, fitting it (positive) or not
    (negative); every answer goes through the checks. Returns the requests made per operation,
    the statuses seen and the distinct failures."""
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    calls, statuses, failures = Counter(), Counter(), {}
    session = requests.Session()

    @settings(max_examples=examples, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(case=schema.as_strategy(generation_mode=GenerationMode(mode)))
    def generated(case):
        calls[case.operation.label] += 1
        if case.method == "POST" and case.path.startswith("/open311/") and isinstance(case.body, dict) \
                and calls[case.operation.label] % 2:
            case.body["api_key"] = api_key  # half of the forms get past the key, to the form's own checks
        response = case.call(base_url=base_url, session=session, timeout=30, headers=credentials(case, calls))
        statuses[str(response.status_code)] += 1
        try:
            case.validate_response(response, checks=CHECKS)
        except (AssertionError, BaseExceptionGroup) as failure:
            failures.setdefault(f"{case.operation.label} ({response.status_code})",
                                f"{failure}\n{case.as_curl_command()}"[:3000])

    generated()
    return {"calls": calls, "statuses": statuses, "failures": failures}


@pytest.fixture(scope="module")
def exercised(services):
    """Every service exercised at once, half the requests valid and half not, each half from a
    process of its own: generating the requests is what takes the time, and it is CPU-bound."""
    children = {
        (stem, mode): subprocess.Popen(
            [sys.executable, "-m", "tests.integration.test_openapi", url, mode, str(count), KEY],
            cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for stem, url in services.items()
        for mode, count in (("positive", EXAMPLES - EXAMPLES // 2), ("negative", EXAMPLES // 2))
    }
    results = {stem: {"calls": Counter(), "statuses": Counter(), "failures": {}} for stem in services}
    for (stem, mode), child in children.items():
        out, err = child.communicate(timeout=1200)
        assert child.returncode == 0, f"exercising {stem} ({mode}) failed:\n{err[-3000:]}"
        part = json.loads(out.strip().splitlines()[-1])
        results[stem]["calls"].update(part["calls"])
        results[stem]["statuses"].update(part["statuses"])
        results[stem]["failures"].update(part["failures"])
    return results


@pytest.mark.parametrize("stem", SERVED)
def test_generated_requests_get_documented_answers_and_never_a_5xx(exercised, stem):
    result = exercised[stem]
    total = sum(result["calls"].values())
    assert total >= EXAMPLES, f"only {total} requests generated: {result['calls']}"
    assert not result["failures"], "\n\n".join(f"{where}:\n{detail}" for where, detail in result["failures"].items())
    assert not any(int(status) >= 500 for status in result["statuses"]), result["statuses"]


if __name__ == "__main__":
    # python -m tests.integration.test_openapi BASE_URL positive|negative EXAMPLES API_KEY, as the fixture runs it
    print(json.dumps(exercise(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4])))
