"""A hostile oblast against the real broker and services: Fergana's IT team holds Fergana's broker
passwords (one per service: intake, notifications, reporting) and runs Fergana's own token issuer.
With the deployment's broker definitions imported into a vhost of their own, each attempt on Jizzakh,
the nation or the shared bus is refused by the broker (ACCESS_REFUSED) or answered 401/403 by the
service, and afterwards the catalogue, Jizzakh's applications and its read model are as they were."""
import json
import subprocess
import time
import uuid
from urllib.parse import unquote, urlparse

import pytest
import requests
import yaml
from amqp import Message
from amqp.exceptions import AccessRefused
from kombu import Connection
from nameko.standalone.rpc import ClusterRpcProxy

from oss_common.auth import SigningKey, new_key_pair
from oss_common.supervisor import ServiceProcess
from tests.conftest import TEST_JWKS, as_caller, auth, free_port, imported_definitions, token
from tests.integration.conftest import SEED, valid_submission

pytestmark = pytest.mark.usefixtures("rabbitmqctl_available")

HOSTILE = ("intake_fergana", "notifications_fergana", "reporting_fergana")


@pytest.fixture(scope="module")
def bus(tmp_path_factory):
    """The national catalogue, Jizzakh's intake and reporting, each as its own broker user; one
    application filed in Jizzakh and counted by its reporting; and Fergana's own issuer in the JWKS."""
    tmp_path = tmp_path_factory.mktemp("hostile")
    with imported_definitions() as uri_of:
        processes = {}

        def start(service, principal, region=None):
            port = free_port()
            processes[principal] = ServiceProcess(
                service, region=region, http_port=port, log_path=tmp_path / f"{principal}.log",
                env={"AMQP_URI": uri_of(principal), "HTTP_PORT": port, "METRICS_PORT": 0, "OSS_VAR_DIR": tmp_path,
                     "DATABASE_URL": f"sqlite:///{tmp_path / f'{principal}.db'}", "AUTH_JWKS": TEST_JWKS,
                     "CATALOGUE_CACHE_TTL": "0.2"}).start()
            return processes[principal]

        # Fergana's own issuer, trusted by every service from its start (for Fergana's staff only).
        private, public = new_key_pair("fergana")
        document = json.loads(open(TEST_JWKS, encoding="utf-8").read())
        with open(TEST_JWKS, "w", encoding="utf-8") as handle:
            json.dump({"keys": document["keys"] + [public]}, handle)
        try:
            start("catalogue", "catalogue").wait_healthy()
            with ClusterRpcProxy({"AMQP_URI": uri_of("ministry")}, timeout=30,
                                 context_data=as_caller("catalogue-admin")) as cluster:
                cluster.catalogue.load_catalogue(yaml.safe_load(SEED.read_text(encoding="utf-8")))
            start("intake", "intake_jizzakh", "jizzakh").wait_healthy()
            start("reporting", "reporting_jizzakh", "jizzakh").wait_healthy()
            filed = _file(processes["intake_jizzakh"].url)
            deadline = time.monotonic() + 30
            while _summary(processes["reporting_jizzakh"].url)["totals"]["applications"] < 1:
                assert time.monotonic() < deadline, "Jizzakh's reporting never counted its application"
                time.sleep(0.3)
            context = {"uri_of": uri_of, "processes": processes, "filed": filed,
                       "fergana_issuer": SigningKey.from_jwk(private), "vhost": unquote(urlparse(uri_of("ministry")).path[1:])}
            context["before"] = _state(context)
            yield context
        finally:
            for process in processes.values():
                process.stop()


def _file(intake_url):
    deadline = time.monotonic() + 30
    while True:
        response = requests.post(f"{intake_url}/api/v1/applications", json=valid_submission("jizzakh"), timeout=30,
                                 headers=auth("operator", "jizzakh"))
        if response.status_code == 201 or time.monotonic() > deadline:
            assert response.status_code == 201, response.text
            return response.json()["tracking_number"]
        time.sleep(0.3)


def _summary(reporting_url):
    response = requests.get(f"{reporting_url}/api/v1/reports/summary", params={"from": "2020-01-01"},
                            headers=auth("analyst"), timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def _state(bus):
    """What an attack could change: the catalogue, Jizzakh's applications, Jizzakh's read model."""
    with ClusterRpcProxy({"AMQP_URI": bus["uri_of"]("ministry")}, timeout=30) as cluster:
        catalogue = sorted((service["code"], service["version"], service["state"])
                           for service in cluster.catalogue.list_services(state="all"))
    listing = requests.get(f"{bus['processes']['intake_jizzakh'].url}/api/v1/applications", timeout=10,
                           headers=auth("officer", "jizzakh")).json()
    applications = sorted((item["tracking_number"], item["status"]) for item in listing["items"])
    return catalogue, applications, _summary(bus["processes"]["reporting_jizzakh"].url)


# ---------------------------------------------------------------- the attempts


def broker_refuses(principal, action):
    """Run `action(connection, channel)` as one of Fergana's users; the broker must refuse it."""
    def attempt(bus):
        with Connection(bus["uri_of"](principal)) as connection:
            with pytest.raises(AccessRefused):
                action(connection, connection.channel())
    return attempt


def publish(exchange, routing_key, body=b'{"args": [], "kwargs": {}}'):
    """Publish with confirms and wait: a refused publish closes the channel with ACCESS_REFUSED."""
    def action(connection, channel):
        channel.confirm_select()
        channel.basic_publish(Message(body, content_type="application/json"), exchange=exchange, routing_key=routing_key)
        connection.drain_events(timeout=5)
    return action


def publish_via_outlet(kind, routing_key):
    def action(connection, channel):
        publish(f"{connection.userid}.{kind}", routing_key)(connection, channel)
    return action


def reply_queue_of(bus, principal):
    """The name of a live RPC reply queue of a Jizzakh service (what a replay would aim at)."""
    listed = subprocess.run(["rabbitmqctl", "list_queues", "-p", bus["vhost"], "name", "--quiet"],
                            capture_output=True, text=True, timeout=60).stdout.split()
    user = urlparse(bus["uri_of"](principal)).username
    return next(name for name in listed if name.startswith(f"rpc.reply-{user}-"))


def replay_reply_queue(bus):
    queue = reply_queue_of(bus, "intake_jizzakh")
    broker_refuses("intake_fergana", lambda connection, channel: channel.basic_consume(queue, callback=print))(bus)


def bind_to_jizzakhs_reply_key(bus):
    key = reply_queue_of(bus, "intake_jizzakh").removeprefix("rpc.")

    def action(connection, channel):
        own = f"rpc.reply-{connection.userid}-{uuid.uuid4()}"
        channel.queue_declare(own, auto_delete=True)
        channel.queue_bind(own, "nameko-rpc", key)
    broker_refuses("intake_fergana", action)(bus)


def http_refuses(status, method, service, path, role=None, region=None, fergana_key=False, claims=None, body=None):
    """An HTTP call as Fergana's staff (or with a token of Fergana's own issuer); `status` expected."""
    def attempt(bus):
        if claims is not None:
            import jwt

            now = int(time.time())
            issuer = bus["fergana_issuer"]
            signed = jwt.encode({"sub": "mallory", "iat": now, "exp": now + 600, **claims}, issuer.key,
                                algorithm="EdDSA", headers={"kid": issuer.kid})
            headers = {"Authorization": f"Bearer {signed}"}
        elif fergana_key:
            headers = {"Authorization": f"Bearer {token(role, region, signing_key=bus['fergana_issuer'])}"}
        else:
            headers = auth(role, region)
        url = bus["processes"][service].url + path.format(number=bus["filed"])
        response = requests.request(method, url, json=body, headers=headers, timeout=30)
        assert response.status_code == status, response.text
        assert response.json()["fields"].get("Authorization") != ["unknown signing key"], "the key must be known"
    return attempt


def rpc_refuses(principal, error, service, method, *args, caller=None):
    """An RPC through a route the broker allows, with a caller's token the service must turn away."""
    def attempt(bus):
        from nameko.exceptions import RemoteError

        with ClusterRpcProxy({"AMQP_URI": bus["uri_of"](principal)}, timeout=30, context_data=caller) as cluster:
            with pytest.raises(RemoteError) as refused:
                getattr(getattr(cluster, service), method)(*args)
        assert refused.value.exc_type == error
    return attempt


ATTEMPTS = {
    # Exchanges of its own, and the shared ones bound, deleted or dead-lettered into.
    "declare exchange x_fergana.e": broker_refuses("intake_fergana", lambda c, ch: ch.exchange_declare("x_fergana.e", "topic")),
    "declare exchange intake_fergana.x": broker_refuses(
        "intake_fergana", lambda c, ch: ch.exchange_declare("intake_fergana.x", "topic")),
    "declare exchange reporting_fergana.x": broker_refuses(
        "reporting_fergana", lambda c, ch: ch.exchange_declare("reporting_fergana.x", "topic")),
    "bind nameko-rpc to amq.topic by #": broker_refuses(
        "intake_fergana", lambda c, ch: ch.exchange_bind("nameko-rpc", "amq.topic", "#")),
    "bind oss.events to its own outlet by #": broker_refuses(
        "intake_fergana", lambda c, ch: ch.exchange_bind("oss.events", f"{c.userid}.events", "#")),
    "bind oss.dlx to amq.topic by #": broker_refuses(
        "notifications_fergana", lambda c, ch: ch.exchange_bind("oss.dlx", "amq.topic", "#")),
    "delete oss.events": broker_refuses("intake_fergana", lambda c, ch: ch.exchange_delete("oss.events")),
    "delete oss.dlx": broker_refuses("notifications_fergana", lambda c, ch: ch.exchange_delete("oss.dlx")),
    "delete nameko-rpc": broker_refuses("reporting_fergana", lambda c, ch: ch.exchange_delete("nameko-rpc")),
    "redeclare oss.events": broker_refuses(
        "intake_fergana", lambda c, ch: ch.exchange_declare("oss.events", "topic", durable=True)),
    "delete its own outlet": broker_refuses("intake_fergana", lambda c, ch: ch.exchange_delete(f"{c.userid}.events")),
    "queue dead-lettering into nameko-rpc": broker_refuses("intake_fergana", lambda c, ch: ch.queue_declare(
        f"rpc.reply-{c.userid}-{uuid.uuid4()}", auto_delete=True,
        arguments={"x-dead-letter-exchange": "nameko-rpc", "x-dead-letter-routing-key": "intake_jizzakh.transition"})),
    "queue dead-lettering into oss.events": broker_refuses("reporting_fergana", lambda c, ch: ch.queue_declare(
        f"rpc.reply-{c.userid}-{uuid.uuid4()}", auto_delete=True,
        arguments={"x-dead-letter-exchange": "oss.events", "x-dead-letter-routing-key": "jizzakh.application.submitted"})),
    # Publishing what is not its own.
    "publish to nameko-rpc: intake_jizzakh.get_application": broker_refuses(
        "intake_fergana", publish("nameko-rpc", "intake_jizzakh.get_application")),
    "outlet: intake_jizzakh.get_application": broker_refuses(
        "intake_fergana", publish_via_outlet("rpc", "intake_jizzakh.get_application")),
    "outlet: intake_jizzakh.transition": broker_refuses(
        "intake_fergana", publish_via_outlet("rpc", "intake_jizzakh.transition")),
    "outlet: catalogue.upsert_service": broker_refuses(
        "intake_fergana", publish_via_outlet("rpc", "catalogue.upsert_service")),
    "outlet: catalogue.load_catalogue": broker_refuses(
        "reporting_fergana", publish_via_outlet("rpc", "catalogue.load_catalogue")),
    "outlet: catalogue.retire_service": broker_refuses(
        "notifications_fergana", publish_via_outlet("rpc", "catalogue.retire_service")),
    "reporting reads intake_fergana.get_application": broker_refuses(
        "reporting_fergana", publish_via_outlet("rpc", "intake_fergana.get_application")),
    "notifications calls intake_fergana.list_applications": broker_refuses(
        "notifications_fergana", publish_via_outlet("rpc", "intake_fergana.list_applications")),
    "event jizzakh.application.submitted": broker_refuses(
        "intake_fergana", publish_via_outlet("events", "jizzakh.application.submitted")),
    "event national.catalogue.service_published": broker_refuses(
        "intake_fergana", publish_via_outlet("events", "national.catalogue.service_published")),
    "event national.catalogue.* straight to oss.events": broker_refuses(
        "notifications_fergana", publish("oss.events", "national.catalogue.service_retired")),
    "reporting publishes fergana.application.submitted": broker_refuses(
        "reporting_fergana", publish_via_outlet("events", "fergana.application.submitted")),
    "dead letter into intake_jizzakh.catalogue.dead": broker_refuses(
        "intake_fergana", publish_via_outlet("dlx", "intake_jizzakh.catalogue")),
    "default exchange to rpc-intake_jizzakh": broker_refuses("intake_fergana", publish("", "rpc-intake_jizzakh")),
    # Other regions' queues and keys.
    "consume intake_jizzakh.catalogue": broker_refuses(
        "intake_fergana", lambda c, ch: ch.basic_consume("intake_jizzakh.catalogue", callback=print)),
    "consume rpc-intake_jizzakh": broker_refuses(
        "intake_fergana", lambda c, ch: ch.basic_consume("rpc-intake_jizzakh", callback=print)),
    "consume reporting_jizzakh.applications": broker_refuses(
        "reporting_fergana", lambda c, ch: ch.basic_consume("reporting_jizzakh.applications", callback=print)),
    "purge rpc-intake_jizzakh": broker_refuses("intake_fergana", lambda c, ch: ch.queue_purge("rpc-intake_jizzakh")),
    "delete reporting_jizzakh.applications": broker_refuses(
        "reporting_fergana", lambda c, ch: ch.queue_delete("reporting_jizzakh.applications")),
    "declare rpc-intake_jizzakh": broker_refuses(
        "intake_fergana", lambda c, ch: ch.queue_declare("rpc-intake_jizzakh", durable=True)),
    "bind own queue to jizzakh.application.*": broker_refuses("reporting_fergana", lambda c, ch: ch.queue_bind(
        ch.queue_declare(f"rpc.reply-{c.userid}-{uuid.uuid4()}", auto_delete=True).queue,
        "oss.events", "jizzakh.application.*")),
    "bind own queue to intake_jizzakh.*": broker_refuses("intake_fergana", lambda c, ch: ch.queue_bind(
        ch.queue_declare(f"rpc.reply-{c.userid}-{uuid.uuid4()}", auto_delete=True).queue,
        "nameko-rpc", "intake_jizzakh.*")),
    "replay: consume Jizzakh intake's reply queue": replay_reply_queue,
    "replay: bind to Jizzakh intake's reply key": bind_to_jizzakhs_reply_key,
    # The services: Fergana's tokens and Fergana's own issuer.
    "HTTP: Fergana's operator reads Jizzakh's application": http_refuses(
        403, "GET", "intake_jizzakh", "/api/v1/applications/{number}", "operator", "fergana"),
    "HTTP: Fergana's officer decides Jizzakh's application": http_refuses(
        403, "POST", "intake_jizzakh", "/api/v1/applications/{number}/transitions", "officer", "fergana",
        body={"to": "rejected", "reason": "forged"}),
    "HTTP: Fergana's issuer signs a Jizzakh operator": http_refuses(
        401, "GET", "intake_jizzakh", "/api/v1/applications/{number}",
        claims={"iss": "oss-fergana", "role": "operator", "region": "jizzakh", "centres": ["jizzakh-city"]}),
    "HTTP: Fergana's issuer signs a catalogue admin": http_refuses(
        401, "POST", "catalogue", "/api/v1/services/photocopying/retire",
        claims={"iss": "oss-fergana", "role": "catalogue-admin"}),
    "HTTP: Fergana's issuer passes for the ministry's": http_refuses(
        401, "GET", "reporting_jizzakh", "/api/v1/reports/summary", claims={"iss": "oss", "role": "analyst"}),
    "HTTP: Fergana's own operator edits the catalogue": http_refuses(
        403, "POST", "catalogue", "/api/v1/services/photocopying/retire", "operator", "fergana", fergana_key=True),
    # Even where the broker lets a call through (the ministry's own route), a Fergana token is turned away.
    "RPC: retire_service with Fergana's operator token": rpc_refuses(
        "ministry", "Forbidden", "catalogue", "retire_service", "photocopying", caller=as_caller("operator", "fergana")),
    "RPC: load_catalogue with no token at all": rpc_refuses(
        "ministry", "Unauthorized", "catalogue", "load_catalogue", {"groups": [], "agencies": [], "services": []}),
}


def test_at_least_25_attempts():
    assert len(ATTEMPTS) >= 25


@pytest.mark.parametrize("name", list(ATTEMPTS))
def test_each_attempt_is_refused(bus, name):
    ATTEMPTS[name](bus)


def test_nothing_changed_afterwards(bus):
    """Runs after the attempts (file order): the catalogue, Jizzakh's applications and read model as before."""
    time.sleep(1.0)  # anything an attempt slipped through would have reached its consumer by now
    assert _state(bus) == bus["before"]


def test_the_region_still_serves_after_the_attempts(bus):
    number = _file(bus["processes"]["intake_jizzakh"].url)
    got = requests.get(f"{bus['processes']['intake_jizzakh'].url}/api/v1/applications/{number}", timeout=10,
                       headers=auth("operator", "jizzakh"))
    assert got.status_code == 200

