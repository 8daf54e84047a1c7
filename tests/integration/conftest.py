"""A real stack per database backend: the catalogue and three regional intakes as processes."""
import contextlib
import functools
import json
import os
import shutil
from pathlib import Path

import pytest
import requests
import yaml
from kombu import Connection, Consumer, Queue, binding
from nameko.standalone.rpc import ClusterRpcProxy

from oss_common.config import PROJECT_ROOT
from oss_common.events import EVENTS_EXCHANGE
from oss_common.supervisor import ServiceProcess
from tests.integration.oidc import start_provider
from tests.conftest import TEST_JWKS, as_caller, auth, free_port, fresh_vhost, missing_tool  # noqa: F401 - auth for the tests

SEED = Path(os.environ.get("OSS_SEED_FILE") or PROJECT_ROOT / "services" / "catalogue" / "seed" / "services.yml")
REGIONS = ("jizzakh", "namangan", "fergana")
PAYME_MERCHANT_ID, PAYME_KEY = "5e730e8e0b852a417aa49ceb", "test-merchant-key-&Q9x"
CHROMIUM = os.environ.get("OSS_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = PROJECT_ROOT / "tests" / "artifacts"  # the browser tests' screenshots


class Stack:
    def __init__(self, amqp_uri, databases, tmp_path):
        self.amqp_uri = amqp_uri
        self.databases = databases
        self.tmp_path = tmp_path
        self.processes = []
        self.intake_db = {}
        self.catalogue_db = None
        self.urls = {}

    def env(self, database_url, **extra):
        env = {
            "AMQP_URI": self.amqp_uri,
            "DATABASE_URL": database_url,
            "HTTP_PORT": free_port(),
            "METRICS_PORT": free_port(),
            "OSS_VAR_DIR": str(self.tmp_path),
            "CATALOGUE_CACHE_TTL": "0.2",
            "RETRY_BASE_SECONDS": "0.05",
            "LOG_LEVEL": "INFO",
            "AUTH_JWKS": TEST_JWKS,
            "AUTH_JWKS_MAX_AGE_SECONDS": "2",
            # The tests make thousands of anonymous calls from one address; tests of the limits set their own.
            "ANONYMOUS_RATE_LIMIT": "1000000/1",
            "PAYME_MERCHANT_ID": PAYME_MERCHANT_ID,
            "PAYME_KEY": PAYME_KEY,
        }
        env.update({key: str(value) for key, value in extra.items()})
        return env

    def start(self, service, region=None, database_url=None, migrate=True, wait=True, **extra):
        env = self.env(database_url, **extra)
        name = f"{service}_{region}" if region else service
        process = ServiceProcess(service, region=region, env=env, http_port=env["HTTP_PORT"],
                                 log_path=self.tmp_path / "logs" / f"{name}-{len(self.processes)}.log", migrate=migrate)
        process.metrics_port = env["METRICS_PORT"]
        process.start()
        self.processes.append(process)
        if wait:
            process.wait_healthy()
        return process

    def start_all(self):
        self.catalogue_db = self.databases.new("catalogue")
        catalogue = self.start("catalogue", database_url=self.catalogue_db)
        self.urls["catalogue"] = catalogue.url
        with self.rpc(caller=as_caller("catalogue-admin")) as cluster:
            import yaml

            cluster.catalogue.load_catalogue(yaml.safe_load(SEED.read_text(encoding="utf-8")))
        for region in REGIONS:
            self.intake_db[region] = self.databases.new(f"intake-{region}")
            self.intakes[region] = self.start("intake", region=region, database_url=self.intake_db[region], wait=False)
        for region in REGIONS:
            self.intakes[region].wait_healthy()
            self.urls[region] = self.intakes[region].url
        return self

    intakes = None

    def start_national(self, service, database_url=None, wait=True, **extra):
        """The national instance of a regional service (`oss run --service S --national`)."""
        env = self.env(database_url or self.databases.new(f"{service}-national"), **extra)
        process = ServiceProcess(service, env=env, http_port=env["HTTP_PORT"], national=True,
                                 log_path=self.tmp_path / "logs" / f"{service}-national-{len(self.processes)}.log")
        process.metrics_port = env["METRICS_PORT"]
        process.start()
        self.processes.append(process)
        if wait:
            process.wait_healthy()
        return process

    @contextlib.contextmanager
    def rpc(self, timeout=30, caller=None):
        """A ClusterRpcProxy; `caller` the context data its calls carry (tests.conftest.as_caller)."""
        with ClusterRpcProxy({"AMQP_URI": self.amqp_uri}, timeout=timeout, context_data=caller) as cluster:
            yield cluster

    def running(self, service, region=None):
        """The newest live process of a service (tests restart some; stopped ones stay listed)."""
        for process in reversed(self.processes):
            if process.service == service and process.region == region and process.process.poll() is None:
                return process
        raise LookupError(f"no running {service} {region or ''}")

    def stop_all(self):
        for process in reversed(self.processes):
            process.stop()


@pytest.fixture(scope="session")
def stack(databases, tmp_path_factory):
    """The catalogue and three intakes on one backend, on a vhost of their own: the SQLite and
    PostgreSQL stacks (and the fault tests' stacks) never share queues."""
    tmp_path = tmp_path_factory.mktemp(f"stack-{databases.backend}")
    with fresh_vhost(f"stack-{databases.backend}") as amqp_uri:
        running = Stack(amqp_uri, databases, tmp_path)
        running.intakes = {}
        try:
            yield running.start_all()
        finally:
            running.stop_all()


@pytest.fixture(scope="session")
def oidc_provider(tmp_path_factory):
    """The demo's OpenID Connect provider (deploy/local/oidc/), on a free port for the session."""
    with start_provider(tmp_path_factory.mktemp("oidc")) as provider:
        yield provider


@pytest.fixture(scope="session")
def browser(stack):
    """Headless Chromium (Debian's, driven by Playwright) for the browser tests: one for the session, as
    Playwright's sync API starts once per process (it is never stopped, see below)."""
    if stack.databases.backend != "sqlite":
        pytest.skip("the browser tests run against the SQLite stack only")
    if not (Path(CHROMIUM).exists() or shutil.which("chromium")):
        missing_tool("chromium is not installed: sudo apt-get install -y --no-install-recommends chromium "
                     "(deploy/local/ensure-tools.sh, run by make test, does it as root)")
    try:
        import playwright.sync_api as playwright_api
    except ImportError:
        missing_tool("Playwright is not installed (pip install -e '.[test]')")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    playwright = playwright_api.sync_playwright().start()
    chromium = playwright.chromium.launch(executable_path=CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium"),
                                          args=["--no-sandbox"])
    yield chromium
    chromium.close()
    # Not playwright.stop(): under eventlet's monkey-patching it waits forever for its driver
    # process, which ends by itself with this one (its stdin closes).


@contextlib.contextmanager
def event_listener(amqp_uri, *patterns):
    """A throw-away queue bound to `oss.events`; yields a function that collects what arrived."""
    with Connection(amqp_uri) as connection:
        channel = connection.channel()
        queue = Queue(exclusive=True, auto_delete=True,
                      bindings=[binding(EVENTS_EXCHANGE, routing_key=pattern) for pattern in patterns])
        received = []

        def on_message(body, message):
            received.append((message.delivery_info["routing_key"], body if isinstance(body, dict) else json.loads(body)))
            message.ack()

        with Consumer(channel, queues=[queue], callbacks=[on_message], accept=["json"]):
            def collect(until=None, timeout=10.0):
                import time

                deadline = time.monotonic() + timeout
                while time.monotonic() < deadline:
                    if until is not None and until(received):
                        break
                    try:
                        connection.drain_events(timeout=0.2)
                    except TimeoutError:
                        pass
                    except OSError:
                        pass
                return received

            yield collect


@functools.lru_cache(maxsize=1)
def seed_document():
    """The seed catalogue, parsed once per test session (callers must not modify it)."""
    return yaml.safe_load(SEED.read_text(encoding="utf-8"))


def seed_service(code):
    document = seed_document()
    return next(service for service in document["services"] if service["code"] == code)


def valid_submission(region_slug, service_code=None, **overrides):
    """A submission that fits the seed catalogue: by default the first published service offered
    everywhere that asks for documents and has only simple required attributes."""
    from oss_common.regions import get_region

    document = seed_document()
    service = next(
        s for s in document["services"]
        if (service_code is None and s.get("state", "published") == "published" and s["regions"] == "all"
            and s["required_documents"] and all(not a.get("required") or a["datatype"] in ("string", "number") for a in s["attributes"]))
        or s["code"] == service_code
    )
    attributes = {}
    for attribute in service["attributes"]:
        if attribute.get("required"):
            attributes[attribute["code"]] = {
                "string": "value", "text": "some text", "number": 2, "datetime": "2026-01-15",
                "singlevaluelist": (attribute.get("values") or [{"key": "x"}])[0]["key"],
                "multivaluelist": [(attribute.get("values") or [{"key": "x"}])[0]["key"]],
            }[attribute["datatype"]]
    region = get_region(region_slug)
    body = {
        "service_code": service["code"],
        "applicant": {"pinfl": "31234567890123", "full_name": "Test Applicant", "phone": "+998901234567",
                      "language": "uz", "channel": "sms"},
        "district": region.districts[0].code,
        "documents": [document["code"] for document in service["required_documents"]],
        "attributes": attributes,
    }
    body.update(overrides)
    return body


def post(url, body, **headers):
    return requests.post(url, json=body, headers=headers, timeout=30)


def pay_at_the_desk(url, filed, headers):
    """Pay a just-filed application's invoice in cash at the desk (a paid service waits in
    `awaiting_payment` until then), so that its workflow can go on; returns the application as it stands."""
    invoice = filed.get("invoice")
    if not invoice or invoice["state"] != "issued":
        return filed
    import uuid

    paid = post(f"{url}/api/v1/applications/{filed['tracking_number']}/payments",
                {"method": "cash", "receipt_number": f"T-{uuid.uuid4().hex[:12]}", "amount_tiyin": invoice["amount_tiyin"]},
                **headers)
    assert paid.status_code == 201, paid.text
    return paid.json()
