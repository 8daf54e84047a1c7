"""deploy/rabbitmq/definitions.json in the real broker: each region's services work with their own
user (RPC to the catalogue included), and Jizzakh's user cannot touch Namangan's queues or events."""
import base64
import hashlib
import json
import os
import subprocess
import tempfile
import uuid

import pytest
import requests
import yaml
from amqp.exceptions import AccessRefused
from kombu import Connection, Producer, Queue, binding
from nameko.standalone.rpc import ClusterRpcProxy

from oss_common.broker import RPC_EXCHANGE, render
from oss_common.config import PROJECT_ROOT
from oss_common.deployment import deployed_slugs
from oss_common.events import EVENTS_EXCHANGE, event_queue
from oss_common.supervisor import ServiceProcess
from tests.conftest import BROKER, TEST_JWKS, as_caller, auth, free_port
from tests.integration.conftest import SEED, valid_submission

DEFINITIONS = PROJECT_ROOT / "deploy" / "rabbitmq" / "definitions.json"
HOST = BROKER.split("@", 1)[1].rstrip("/")

pytestmark = pytest.mark.usefixtures("rabbitmqctl_available")


def test_definitions_file_is_generated_from_the_deployment_files():
    assert DEFINITIONS.read_text(encoding="utf-8") == render(deployed_slugs()), \
        "regenerate it: oss broker definitions > deploy/rabbitmq/definitions.json"


def rabbit_hash(password):
    """RabbitMQ's rabbit_password_hashing_sha256: base64(salt + sha256(salt + password))."""
    salt = os.urandom(4)
    return base64.b64encode(salt + hashlib.sha256(salt + password.encode()).digest()).decode()


@pytest.fixture(scope="module")
def broker():
    """The definitions imported under a vhost and user names of their own, removed afterwards."""
    tag = uuid.uuid4().hex[:8]
    vhost = f"oss-deftest-{tag}"
    document = json.loads(DEFINITIONS.read_text(encoding="utf-8"))
    password = uuid.uuid4().hex
    users = {}
    for user in document["users"]:
        principal = user["name"].removeprefix("oss-")
        users[principal] = f"oss-deftest-{tag}-{principal}"
        user.update(name=users[principal], password_hash=rabbit_hash(password))
    renamed = {f"oss-{principal}": name for principal, name in users.items()}
    document["vhosts"] = [{"name": vhost}]
    for section in ("permissions", "topic_permissions", "exchanges", "policies"):
        for item in document[section]:
            item["vhost"] = vhost
            if "user" in item:
                item["user"] = renamed[item["user"]]
    # A world-readable file: rabbitmqctl may run as the rabbitmq user, who cannot read pytest's folders
    # (and this version refuses "-" for stdin).
    handle, path = tempfile.mkstemp(suffix=".json")
    with os.fdopen(handle, "w") as file:
        json.dump(document, file)
    os.chmod(path, 0o644)
    try:
        imported = subprocess.run(["rabbitmqctl", "import_definitions", path], capture_output=True, text=True, timeout=120)
    finally:
        os.unlink(path)
    assert imported.returncode == 0, imported.stderr
    try:
        yield {principal: f"amqp://{name}:{password}@{HOST}/{vhost}" for principal, name in users.items()}
    finally:
        subprocess.run(["rabbitmqctl", "delete_vhost", vhost], capture_output=True, timeout=120)
        for name in users.values():
            subprocess.run(["rabbitmqctl", "delete_user", name], capture_output=True, timeout=120)


def refused(action):
    with pytest.raises(AccessRefused):
        action()


def test_each_principal_runs_its_services_and_jizzakh_cannot_reach_namangan(broker, tmp_path):
    def start(service, user, region=None):
        port = free_port()
        process = ServiceProcess(service, region=region, http_port=port, log_path=tmp_path / f"{service}_{region}.log",
                                 env={"AMQP_URI": broker[user], "HTTP_PORT": port, "METRICS_PORT": 0,
                                      "DATABASE_URL": f"sqlite:///{tmp_path / f'{service}_{region}.db'}",
                                      "OSS_VAR_DIR": tmp_path, "AUTH_JWKS": TEST_JWKS})
        return process.start()

    catalogue = start("catalogue", "catalogue")
    intake = start("intake", "jizzakh", "jizzakh")
    try:
        catalogue.wait_healthy()
        with ClusterRpcProxy({"AMQP_URI": broker["ministry"]}, timeout=30, context_data=as_caller("catalogue-admin")) as cluster:
            cluster.catalogue.load_catalogue(yaml.safe_load(SEED.read_text(encoding="utf-8")))
        intake.wait_healthy()
        with Connection(broker["ministry"]) as ministry:
            watch = Queue(f"reporting.deftest-{uuid.uuid4().hex[:6]}", durable=False, auto_delete=True,
                          bindings=[binding(EVENTS_EXCHANGE, routing_key="jizzakh.application.*")])
            watch(ministry.channel()).declare()
            response = _submit(intake.url, valid_submission("jizzakh"))
            assert response.status_code == 201, "intake_jizzakh must get the catalogue over RPC and file"
            assert _get(ministry, watch.name, timeout=15) is not None, "intake_jizzakh's event must reach oss.events"

        namangan_queue = event_queue("intake_namangan.catalogue", ["national.catalogue.*"])
        with Connection(broker["namangan"]) as namangan:
            namangan_queue(namangan.channel()).declare()
        with Connection(broker["jizzakh"]) as jizzakh:
            own = jizzakh.channel()
            own.basic_consume("intake_jizzakh.catalogue", callback=lambda message: None)  # its own: allowed
            refused(lambda: jizzakh.channel().basic_consume("intake_namangan.catalogue", callback=lambda message: None))
            refused(lambda: jizzakh.channel().queue_bind("intake_namangan.catalogue", "oss.events", "jizzakh.x.y"))
            refused(lambda: jizzakh.channel().queue_delete("intake_namangan.catalogue"))
            refused(lambda: jizzakh.channel().queue_declare("rpc-intake_namangan", durable=True))
            # Its own queue, but bound to Namangan's events: the topic permission refuses the binding.
            spy = Queue("intake_jizzakh.spy", bindings=[binding(EVENTS_EXCHANGE, routing_key="namangan.application.*")],
                        durable=False, auto_delete=True)
            refused(lambda: spy(jizzakh.channel()).declare())
            # Nor may it publish an event in Namangan's name, nor call Namangan's intake.
            refused(lambda: _publish_confirmed(jizzakh, "namangan.application.submitted"))
            refused(lambda: _publish_confirmed(jizzakh, "intake_namangan.transition", exchange=RPC_EXCHANGE))
        # The ministry asks the catalogue and the regions' reporting; it cannot work a region's applications.
        with Connection(broker["ministry"]) as ministry:
            _publish_confirmed(ministry, "reporting_jizzakh.regional_summary", exchange=RPC_EXCHANGE)
            refused(lambda: _publish_confirmed(ministry, "intake_jizzakh.transition", exchange=RPC_EXCHANGE))
            refused(lambda: _publish_confirmed(ministry, "jizzakh.application.submitted"))
    finally:
        intake.stop()
        catalogue.stop()


def _submit(url, body, timeout=30.0):
    import time

    deadline = time.monotonic() + timeout
    while True:
        response = requests.post(f"{url}/api/v1/applications", json=body, timeout=30, headers=auth("operator", "jizzakh"))
        if response.status_code != 422 or time.monotonic() > deadline:
            return response
        time.sleep(0.3)


def _get(connection, queue_name, timeout):
    import time

    deadline = time.monotonic() + timeout
    channel = connection.channel()
    while time.monotonic() < deadline:
        message = channel.basic_get(queue_name, no_ack=True)
        if message is not None:
            return message
        time.sleep(0.2)
    return None


def _publish_confirmed(connection, routing_key, exchange=EVENTS_EXCHANGE):
    channel = connection.channel()
    channel.confirm_select()
    Producer(channel).publish({"forged": True}, exchange=exchange, routing_key=routing_key, retry=False)
    connection.drain_events(timeout=5)
