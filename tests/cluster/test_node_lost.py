"""A broker node lost under load: a three-node RabbitMQ cluster on this machine (its own ports and
folders, beside the main node), the deployment's definitions imported, three regions' intake,
notifications and reporting each as its own broker user naming every node. Submissions arrive at a
steady 50 a second spread over the regions; the node leading most of the busy queues (the regions'
event queues and RPC queues) is stopped for 30 seconds and started again. Afterwards every
application a desk was answered for is in intake, counted once by its region's reporting and sent
one SMS; the submission error rate and p99 latency during the fail-over are printed.

Marked `cluster` (about three minutes, three more broker nodes on the machine): `make test-cluster`
runs it, and CI runs it as its own step after `make test`. OSS_CLUSTER_RATE (50),
OSS_CLUSTER_DOWN_SECONDS (30) and OSS_CLUSTER_STEADY_SECONDS (20, before and after) change the run.
"""
import json
import os
import re
import time
from collections import Counter

import eventlet
import pytest
import requests
import yaml
from nameko.standalone.rpc import ClusterRpcProxy

from bench.load import Desk, count, drive, percentile, wait_until
from oss_common.broker import user_name
from oss_common.cli import broker_definitions
from oss_common.supervisor import ServiceProcess
from tests.cluster.broker_cluster import BrokerCluster
from tests.conftest import TEST_JWKS, as_caller, auth, free_port, rabbit_hash
from tests.integration.conftest import SEED, valid_submission
from tests.integration.test_notifications import SmsGatewayDouble

REGIONS = ("fergana", "jizzakh", "namangan")
RATE = float(os.environ.get("OSS_CLUSTER_RATE", "50"))
DOWN_SECONDS = float(os.environ.get("OSS_CLUSTER_DOWN_SECONDS", "30"))
STEADY_SECONDS = float(os.environ.get("OSS_CLUSTER_STEADY_SECONDS", "20"))
PASSWORD = "cluster-test"
TRACKING_NUMBER = re.compile(r"\b[A-Z]{2}-\d{4}-\d{6}\b")

pytestmark = pytest.mark.cluster


@pytest.fixture
def cluster(tmp_path):
    if not BrokerCluster.available():
        pytest.skip("needs the RabbitMQ server installed on this machine (/usr/lib/rabbitmq/bin)")
    with BrokerCluster(tmp_path / "cluster") as running:
        yield running


def import_deployment(cluster):
    """The deployment's definitions (users oss-*, vhost oss), every user with one password."""
    document = broker_definitions(",".join(REGIONS))
    for user in document["users"]:
        user["password_hash"] = rabbit_hash(PASSWORD)
    cluster.import_definitions(document)


def uri(cluster, principal, offset):
    """Its user at every node, starting at a different node for each process so connections spread."""
    nodes = cluster.uri(user_name(principal), PASSWORD, "oss").split(";")
    return ";".join(nodes[offset % len(nodes):] + nodes[:offset % len(nodes)])


def test_a_node_lost_under_load_loses_and_duplicates_nothing(cluster, tmp_path):
    import_deployment(cluster)
    gateway = SmsGatewayDouble().start()
    processes = []

    def start(service, principal, region=None, **extra):
        port = free_port()
        env = {"AMQP_URI": uri(cluster, principal, len(processes)), "HTTP_PORT": port, "METRICS_PORT": 0,
               "DATABASE_URL": f"sqlite:///{tmp_path / f'{principal}.db'}", "OSS_VAR_DIR": str(tmp_path),
               "AUTH_JWKS": TEST_JWKS, "LOG_LEVEL": "WARNING", "RETRY_BASE_SECONDS": "0.2",
               "RETRY_CEILING_SECONDS": "2", "CATALOGUE_CACHE_TTL": "5", **extra}
        process = ServiceProcess(service, region=region, env=env, http_port=port,
                                 log_path=tmp_path / "logs" / f"{principal}.log").start()
        process.database_url = env["DATABASE_URL"]
        processes.append(process)
        return process

    try:
        start("catalogue", "catalogue").wait_healthy(120)
        with ClusterRpcProxy({"AMQP_URI": uri(cluster, "ministry", 0)}, timeout=60,
                             context_data=as_caller("catalogue-admin")) as rpc:
            rpc.catalogue.load_catalogue(yaml.safe_load(SEED.read_text(encoding="utf-8")))
        intakes, reportings = {}, {}
        for region in REGIONS:
            intakes[region] = start("intake", f"intake_{region}", region)
            reportings[region] = start("reporting", f"reporting_{region}", region)
            start("notifications", f"notifications_{region}", region, SMS_GATEWAY_URL=gateway.url,
                  SMS_GATEWAY_TOKEN="token")
        for process in processes:
            process.wait_healthy(120)
        desks = {region: Desk(f"{intakes[region].url}/api/v1/applications", auth("operator", region),
                              valid_submission(region)) for region in REGIONS}
        for region, desk in desks.items():  # each region's catalogue copy is there before the clock starts
            wait_until(lambda: requests.post(desk.url, json=desk.body, headers=desk.headers, timeout=30).status_code == 201,
                       60, f"a first application in {region}")

        # The node leading most of the queues that carry the load: every region's event and RPC queues.
        busy = [name for region in REGIONS for name in (f"notifications_{region}.applications",
                                                        f"reporting_{region}.applications", f"rpc-intake_{region}")]
        leaders = cluster.leaders("oss")
        assert all(leaders.get(name) for name in busy), f"not quorum queues with a leader: {leaders}"
        victim_node = Counter(leaders[name] for name in busy).most_common(1)[0][0]
        victim = cluster.nodes.index(victim_node)

        load = eventlet.spawn(drive, desks, RATE, 2 * STEADY_SECONDS + DOWN_SECONDS)
        time.sleep(STEADY_SECONDS)
        stopped_at = time.monotonic()
        cluster.stop_node(victim)
        time.sleep(max(0.0, stopped_at + DOWN_SECONDS - time.monotonic()))
        cluster.start_node(victim)
        back_at = time.monotonic()
        records = load.wait()

        created = [record for record in records if record.status == 201]
        numbers = {record.tracking_number for record in created}
        expected = len(created) + len(REGIONS)  # and each region's first application
        in_intake = wait_until(lambda: (lambda total: total if total >= expected else None)(
            sum(count(intakes[region].database_url, "SELECT count(*) FROM applications") for region in REGIONS)),
            120, "intake's count")
        filed = set()
        for region in REGIONS:
            filed |= set(_column(intakes[region].database_url, "SELECT tracking_number FROM applications"))
        counted = wait_until(lambda: (lambda total: total if total >= in_intake else None)(
            sum(count(reportings[region].database_url, "SELECT count(*) FROM application_states") for region in REGIONS)),
            300, f"reporting to count all {in_intake}")
        wait_until(lambda: len(gateway.accepted) >= in_intake, 300, f"an SMS for each of {in_intake}")
        time.sleep(5)  # a duplicate would arrive about now
        sent = Counter(number for _, text, _ in list(gateway.accepted) for number in TRACKING_NUMBER.findall(text))

        failed_over = [record for record in records if stopped_at <= record.sent_at <= back_at + 10]
        errors = [record for record in failed_over if record.status != 201]
        report = {
            "submissions": len(records), "created": len(created), "rate_per_s": RATE, "node_stopped": victim_node,
            "queues_it_led": sum(1 for name in busy if leaders[name] == victim_node), "down_s": round(back_at - stopped_at, 1),
            "during_failover": len(failed_over), "failover_error_rate": round(len(errors) / max(1, len(failed_over)), 4),
            "failover_p99_ms": round(percentile([record.latency for record in failed_over], 0.99) * 1000, 1),
            "steady_p99_ms": round(percentile([record.latency for record in records if record not in failed_over], 0.99) * 1000, 1),
            "error_statuses": dict(Counter(record.status for record in records if record.status != 201)),
            "in_intake": in_intake, "counted_in_reporting": counted, "sms": sum(sent.values()),
        }
        print("\ncluster fail-over: " + json.dumps(report), flush=True)

        assert numbers <= filed, "every application a desk was answered for is in intake"
        assert numbers <= set(sent), "every application a desk was answered for is notified"
        assert counted == in_intake, "each application counted once by its region's reporting"
        assert len(sent) == in_intake and set(sent.values()) == {1}, "each citizen exactly one SMS"
    finally:
        for process in reversed(processes):
            process.stop()
        gateway.stop()


def _column(database_url, statement):
    from sqlalchemy import create_engine, text

    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            return connection.execute(text(statement)).scalars().all()
    finally:
        engine.dispose()
