"""deploy/rabbitmq/definitions.json in the real broker: each service works with its own user (RPC to
the catalogue, events through its outlet), and one region's user cannot touch another's queues or
events. tests/security/ tries far more, as a hostile oblast."""
import json
import time
import uuid

import pytest
import requests
import yaml
from amqp.exceptions import AccessRefused
from kombu import Connection, Producer
from nameko.standalone.rpc import ClusterRpcProxy

from oss_common.broker import RPC_EXCHANGE, outlet
from oss_common.cli import broker_definitions
from oss_common.config import PROJECT_ROOT
from oss_common.events import EVENTS_EXCHANGE, event_queue, make_event, routing_key
from oss_common.supervisor import ServiceProcess
from tests.conftest import TEST_JWKS, as_caller, auth, free_port, imported_definitions
from tests.integration.conftest import SEED, valid_submission

DEFINITIONS = PROJECT_ROOT / "deploy" / "rabbitmq" / "definitions.json"

pytestmark = pytest.mark.usefixtures("rabbitmqctl_available")


def test_definitions_file_is_generated_from_the_deployment_files():
    assert json.loads(DEFINITIONS.read_text(encoding="utf-8")) == broker_definitions(), \
        "regenerate it: oss broker definitions > deploy/rabbitmq/definitions.json"


@pytest.fixture(scope="module")
def broker():
    with imported_definitions() as uri_of:
        yield uri_of


def publish_mandatory(uri, event):
    """Publish `event` through the user's events outlet, mandatory and confirmed, as the relay does;
    returns what the broker returned (a basic.return arrives before the confirm, so by now)."""
    returned = []
    with Connection(uri, transport_options={"confirm_publish": True}) as connection:
        channel = connection.channel()
        channel.events["basic_return"].add(lambda *args: returned.append(args))
        Producer(channel, serializer="json").publish(event, exchange=outlet(uri, EVENTS_EXCHANGE.name),
                                                     routing_key=routing_key(event), delivery_mode=2, mandatory=True)
    return returned


def test_an_event_published_before_any_consumer_started_waits_in_each_deployed_consumers_queue(broker):
    """The definitions declare every deployed region's event queues and bindings: an oblast whose
    notifications and reporting have never run still keeps what its intake publishes meanwhile."""
    event = make_event("application.submitted", "jizzakh", "intake_jizzakh", {"tracking_number": "JI-2026-000001"})
    assert publish_mandatory(broker("intake_jizzakh"), event) == [], "the broker returned the event: no queue was bound for it"
    waiting = {}
    for owner, queue in (("notifications_jizzakh", "notifications_jizzakh.applications"),
                         ("reporting_jizzakh", "reporting_jizzakh.applications"),
                         ("notifications_namangan", "notifications_namangan.applications")):
        with Connection(broker(owner)) as connection:
            waiting[queue] = connection.channel().queue_declare(queue=queue, passive=True).message_count
    assert waiting == {"notifications_jizzakh.applications": 1, "reporting_jizzakh.applications": 1,
                       "notifications_namangan.applications": 0}


def test_every_event_the_deployment_publishes_has_a_queue_so_none_is_returned():
    """Mandatory publishing holds an event no queue is bound for; events no service consumes
    (`<slug>.notification.failed`) go to their publisher's `<principal>.published` instead."""
    from oss_common.broker import _topics_overlap, principals

    document = broker_definitions()
    bound = [item["routing_key"] for item in document["bindings"]
             if item["source"] == EVENTS_EXCHANGE.name and item["destination_type"] == "queue"]
    slugs = sorted({queue.split("_", 1)[1].split(".")[0] for queue in (item["name"] for item in document["queues"])
                    if queue.startswith("intake_")})
    for principal in principals(slugs):
        for key in principal.publishes:
            assert any(_topics_overlap(key, pattern) for pattern in bound), f"{principal.name} publishes {key} into no queue"


def test_a_notification_failed_event_is_kept_not_returned(broker):
    event = make_event("notification.failed", "jizzakh", "notifications_jizzakh", {"tracking_number": "JI-2026-000001"})
    uri = broker("notifications_jizzakh")
    assert publish_mandatory(uri, event) == [], "the broker returned notification.failed: the relay would hold it and alert for ever"
    with Connection(uri) as connection:  # the region's own user reads what it published
        kept = connection.channel().basic_get("notifications_jizzakh.published", no_ack=True)
    assert kept is not None and json.loads(kept.body)["event_id"] == event["event_id"]


def refused(action):
    with pytest.raises(AccessRefused):
        action()


def start(service, amqp_uri, tmp_path, region=None):
    port = free_port()
    process = ServiceProcess(service, region=region, http_port=port, log_path=tmp_path / f"{service}_{region}.log",
                             env={"AMQP_URI": amqp_uri, "HTTP_PORT": port, "METRICS_PORT": 0,
                                  "DATABASE_URL": f"sqlite:///{tmp_path / f'{service}_{region}.db'}",
                                  "OSS_VAR_DIR": tmp_path, "AUTH_JWKS": TEST_JWKS})
    return process.start()


def test_each_principal_runs_its_services_and_jizzakh_cannot_reach_namangan(broker, tmp_path):
    catalogue = start("catalogue", broker("catalogue"), tmp_path)
    intake = start("intake", broker("intake_jizzakh"), tmp_path, "jizzakh")
    try:
        catalogue.wait_healthy()
        with ClusterRpcProxy({"AMQP_URI": broker("ministry")}, timeout=30, context_data=as_caller("catalogue-admin")) as cluster:
            cluster.catalogue.load_catalogue(yaml.safe_load(SEED.read_text(encoding="utf-8")))
        intake.wait_healthy()
        with Connection(broker("reporting_jizzakh")) as reporting:
            # reporting_jizzakh's own queue, bound as its consumer binds it: intake's event must arrive there.
            watch = event_queue("reporting_jizzakh.applications", ["jizzakh.application.*"],
                                dead_letter_exchange=f"{reporting.userid}.dlx")
            watch(reporting.channel()).declare()
            response = _submit(intake.url, valid_submission("jizzakh"))
            assert response.status_code == 201, "intake_jizzakh must get the catalogue over RPC and file"
            assert _get(reporting, watch.name, timeout=15) is not None, "intake_jizzakh's event must reach oss.events"

        namangan_queue = event_queue("intake_namangan.catalogue", ["national.catalogue.*"],
                                     dead_letter_exchange=f"{Connection(broker('intake_namangan')).userid}.dlx")
        with Connection(broker("intake_namangan")) as namangan:
            namangan_queue(namangan.channel()).declare()
        with Connection(broker("intake_jizzakh")) as jizzakh:
            own = jizzakh.channel()
            own.basic_consume("intake_jizzakh.catalogue", callback=lambda message: None)  # its own: allowed
            refused(lambda: jizzakh.channel().basic_consume("intake_namangan.catalogue", callback=lambda message: None))
            refused(lambda: jizzakh.channel().queue_bind("intake_namangan.catalogue", "oss.events", "jizzakh.x.y"))
            refused(lambda: jizzakh.channel().queue_delete("intake_namangan.catalogue"))
            refused(lambda: jizzakh.channel().queue_declare("rpc-intake_namangan", durable=True))
            # Its own queue, but bound to Namangan's events: the topic permission refuses the binding.
            refused(lambda: jizzakh.channel().queue_bind("intake_jizzakh.catalogue", "oss.events", "namangan.application.*"))
            # Nor may it publish an event in Namangan's name, nor call Namangan's intake.
            refused(lambda: _publish_confirmed(jizzakh, "namangan.application.submitted", f"{jizzakh.userid}.events"))
            refused(lambda: _publish_confirmed(jizzakh, "intake_namangan.transition", f"{jizzakh.userid}.rpc"))
        # National reporting asks the regions' reporting; it cannot work a region's applications.
        with Connection(broker("reporting")) as national:
            _publish_confirmed(national, "reporting_jizzakh.regional_summary", f"{national.userid}.rpc")
            refused(lambda: _publish_confirmed(national, "intake_jizzakh.transition", f"{national.userid}.rpc"))
            refused(lambda: _publish_confirmed(national, "jizzakh.application.submitted", RPC_EXCHANGE))
    finally:
        intake.stop()
        catalogue.stop()


def _submit(url, body, timeout=30.0):
    deadline = time.monotonic() + timeout
    while True:
        response = requests.post(f"{url}/api/v1/applications", json=body, timeout=30, headers=auth("operator", "jizzakh"))
        if response.status_code != 422 or time.monotonic() > deadline:
            return response
        time.sleep(0.3)


def _get(connection, queue_name, timeout):
    deadline = time.monotonic() + timeout
    channel = connection.channel()
    while time.monotonic() < deadline:
        message = channel.basic_get(queue_name, no_ack=True)
        if message is not None:
            return message
        time.sleep(0.2)
    return None


def _publish_confirmed(connection, routing_key, exchange=EVENTS_EXCHANGE.name):
    channel = connection.channel()
    channel.confirm_select()
    Producer(channel, auto_declare=False).publish({"forged": str(uuid.uuid4())}, exchange=exchange,
                                                  routing_key=routing_key, retry=False)
    connection.drain_events(timeout=5)

