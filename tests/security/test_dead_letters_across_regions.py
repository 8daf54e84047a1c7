"""Dead letters and retries stay within their region, against the real broker with the deployment's
definitions imported: Namangan's broker users (intake, notifications, reporting) cannot list, show,
replay or drop Jizzakh's dead letters with `oss dead-letters`, nor put a message into Jizzakh's
queues through the dead-letter routes (its `.retry`, `.requeue` or `.dead` keys), neither by routing
key, nor by the `CC`/`BCC` headers RabbitMQ routes by without checking them against topic
permissions, nor by a queue of its own redeclared to dead-letter where the policy sends it.
Jizzakh's own user lists, shows (personal data masked) and drops its own."""
import json
import os
import subprocess
import sys
import time
from urllib.parse import quote, unquote, urlparse

import pytest
from amqp.exceptions import AccessRefused
from kombu import Connection, Producer, Queue, binding

from oss_common.config import PROJECT_ROOT
from oss_common.events import EVENTS_EXCHANGE, make_event
from tests.conftest import BROKER, imported_definitions, wait_for

pytestmark = pytest.mark.usefixtures("rabbitmqctl_available")

HOSTILE = ("intake_namangan", "notifications_namangan", "reporting_namangan")
QUEUE = "notifications_jizzakh.applications"
PHONE, PINFL, PASSPORT, EMAIL, NAME = "+998901234567", "31234567890123", "AB1234567", "vali@example.uz", "Vali Aliyev"
PERSONAL = (PHONE, PHONE.lstrip("+"), "901234567", PINFL, PASSPORT, EMAIL, NAME)


@pytest.fixture(scope="module")
def broker():
    with imported_definitions() as uri_of:
        yield uri_of


def oss(amqp_uri, *args):
    return subprocess.run([sys.executable, "-m", "oss_common.cli", "dead-letters", *args], cwd=PROJECT_ROOT,
                          capture_output=True, text=True, timeout=120, env={**os.environ, "AMQP_URI": amqp_uri})


def depth(broker, queue, owner="notifications_jizzakh"):
    with Connection(broker(owner)) as connection:
        return connection.channel().queue_declare(queue=queue, passive=True).message_count


def jizzakhs_queues(broker):
    return {queue: depth(broker, queue) for queue in (QUEUE, f"{QUEUE}.retry", f"{QUEUE}.dead", f"{QUEUE}.dropped")}


def forged_event():
    """What an attacker would want applied in Jizzakh: an application event sending an SMS to its number."""
    return make_event("application.submitted", "jizzakh", "intake_jizzakh", {"tracking_number": "JI-2026-666666",
                                                                                "contact": {"phone": PHONE}})


def park(broker):
    """A dead letter in Jizzakh's notifications queue, parked as its consumer parks one, with personal
    data in its body and in the error it records. Returns its event id."""
    event = make_event("application.submitted", "jizzakh", "intake_jizzakh", {
        "tracking_number": "JI-2026-000077", "contact": {"phone": PHONE, "email": EMAIL},
        "attributes": {"person_full_name": NAME}, "reason": f"passport {PASSPORT}, PINFL {PINFL}"})
    uri = broker("notifications_jizzakh")
    with Connection(uri, transport_options={"confirm_publish": True}) as connection:
        Producer(connection.channel()).publish(
            event, exchange=f"{connection.userid}.dlx", routing_key=QUEUE, message_id=event["event_id"], retry=False,
            headers={"x-error": f"DeadLetter: delivery failed: {PHONE} refused ({EMAIL}, {PINFL})", "x-failed-queue": QUEUE,
                     "x-original-routing-key": "jizzakh.application.submitted", "x-note": f"{NAME} {PASSPORT}",
                     "x-dead-lettered-at": "2026-01-05T10:00:00+00:00"})
    wait_for(lambda: depth(broker, f"{QUEUE}.dead") == 1, 10, "the dead letter parked")
    return event["event_id"]


@pytest.mark.parametrize("principal", HOSTILE)
def test_another_regions_users_are_refused_every_dead_letters_command(broker, principal):
    event_id = park(broker)
    try:
        for args in (["list", QUEUE], ["list", f"{QUEUE}.dead"], ["show", QUEUE, event_id], ["replay", QUEUE, "--all"],
                     ["replay", QUEUE, "--id", event_id], ["drop", QUEUE, "--id", event_id, "--reason", "mine now"]):
            result = oss(broker(principal), *args)
            assert result.returncode == 1, (args, result.stdout, result.stderr)
            assert "Traceback" not in result.stderr, (args, result.stderr)
            if args[0] == "list":  # how many (a passive declare anyone may make), never what or why
                assert "(not readable by this user)" in result.stdout and "DeadLetter" not in result.stdout, result.stdout
            else:
                assert "refused" in result.stderr and result.stdout == "", (args, result.stdout, result.stderr)
            assert not any(value in result.stdout + result.stderr for value in PERSONAL), (args, result.stdout)
            assert "JI-2026-000077" not in result.stdout + result.stderr
        assert jizzakhs_queues(broker) == {QUEUE: 0, f"{QUEUE}.retry": 0, f"{QUEUE}.dead": 1, f"{QUEUE}.dropped": 0}
    finally:
        with Connection(broker("notifications_jizzakh")) as connection:
            connection.channel().queue_purge(f"{QUEUE}.dead")


def test_the_regions_own_user_lists_shows_masked_and_drops_its_dead_letters(broker):
    own = broker("notifications_jizzakh")
    event_id = park(broker)
    listed = oss(own, "list", QUEUE)
    assert listed.returncode == 1 and f"{QUEUE}.dead" in listed.stdout and "DeadLetter: delivery failed" in listed.stdout
    shown = oss(own, "show", QUEUE, event_id)
    assert shown.returncode == 0, shown.stderr
    message = json.loads(shown.stdout)
    assert message["body"]["data"]["tracking_number"] == "JI-2026-000077"  # what an operator needs stays
    assert message["body"]["data"]["contact"] == {"phone": "***", "email": "***"}
    assert message["body"]["data"]["attributes"] == {"person_full_name": "***"}
    assert message["headers"]["x-error"] == "DeadLetter: delivery failed: *** refused (***, ***)"
    assert message["headers"]["x-note"] == "***"  # a header nothing of ours writes: masked whole
    assert message["headers"]["x-original-routing-key"] == "jizzakh.application.submitted"
    for output in (listed.stdout, shown.stdout):
        assert not any(value in output for value in PERSONAL), output
    dropped = oss(own, "drop", QUEUE, "--id", event_id, "--reason", "test data")
    assert dropped.returncode == 0, dropped.stderr
    assert jizzakhs_queues(broker) == {QUEUE: 0, f"{QUEUE}.retry": 0, f"{QUEUE}.dead": 0, f"{QUEUE}.dropped": 1}
    with Connection(own) as connection:
        record = json.loads(connection.channel().basic_get(f"{QUEUE}.dropped", no_ack=True).body)
    assert record["reason"] == "test data" and record["event_id"] == event_id
    assert not any(value in json.dumps(record) for value in PERSONAL), record


def publish_confirmed(uri, outlet_kind, routing_key, headers=None, expiration=None, body=None):
    with Connection(uri, transport_options={"confirm_publish": True}) as connection:
        Producer(connection.channel()).publish(body or forged_event(), exchange=f"{connection.userid}.{outlet_kind}",
                                               routing_key=routing_key, headers=headers, expiration=expiration,
                                               retry=False, delivery_mode=2)


@pytest.mark.parametrize("principal", HOSTILE)
@pytest.mark.parametrize("key", [f"{QUEUE}.retry", f"{QUEUE}.requeue", QUEUE, f"{QUEUE}.dropped"])
def test_another_regions_dead_letter_keys_are_refused_on_the_outlet(broker, principal, key):
    with pytest.raises(AccessRefused):
        publish_confirmed(broker(principal), "dlx", key, headers={"x-original-routing-key": "jizzakh.application.submitted"})


def own_event_queue(principal):
    return {"intake_namangan": "intake_namangan.catalogue", "notifications_namangan": "notifications_namangan.applications",
            "reporting_namangan": "reporting_namangan.applications"}[principal]


@pytest.mark.parametrize("principal", HOSTILE)
def test_cc_and_bcc_headers_on_its_own_keys_reach_none_of_another_regions_queues(broker, principal):
    """Its own `.retry` and `.requeue` keys, with Jizzakh's named in CC and BCC: had the outlet been
    bound into oss.dlx, the copy sent to Jizzakh's `.retry` would come back to Jizzakh's queue by its
    requeue key, its `x-original-routing-key` taken for the truth."""
    own = own_event_queue(principal)
    jizzakh_keys = [f"{QUEUE}.retry", f"{QUEUE}.requeue", QUEUE, f"{QUEUE}.dropped", "reporting_jizzakh.applications.requeue"]
    before = {**jizzakhs_queues(broker), "reporting": depth(broker, "reporting_jizzakh.applications", "reporting_jizzakh")}
    for own_key in (f"{own}.retry", f"{own}.requeue", own):
        for header in ("CC", "BCC"):
            publish_confirmed(broker(principal), "dlx", own_key, expiration=0.05,
                              headers={header: jizzakh_keys, "x-original-routing-key": "jizzakh.application.submitted"})
    time.sleep(1.0)  # the copies in its own `.retry` have expired and come back by now
    after = {**jizzakhs_queues(broker), "reporting": depth(broker, "reporting_jizzakh.applications", "reporting_jizzakh")}
    assert after == before, "a message reached Jizzakh's queues"
    with Connection(broker(principal)) as connection:  # its own copies stayed its own: take them out
        for queue in (own, f"{own}.retry", f"{own}.dead"):
            connection.channel().queue_purge(queue)


def test_a_queue_it_redeclares_without_dead_lettering_arguments_parks_only_in_its_own(broker):
    """The broker's policy gives an event queue declared without its dead-letter arguments its dead-letter
    exchange, and the policy is not checked against the user who declares the queue: Namangan deletes
    its own notifications queue and declares it anew without them. Deleting it took the definitions'
    bindings of its outlets with it, so no user of the deployment can put a message in; the test puts
    one there as an administrator, carrying Jizzakh's requeue key in CC, and lets it expire. The policy's
    exchange is Namangan's own outlet (never oss.dlx, which would route by those CC keys), so the
    message ends in Namangan's own dead letters, not in Jizzakh's queues."""
    own = "notifications_namangan.applications"
    before = jizzakhs_queues(broker)
    with Connection(broker("notifications_namangan")) as connection:
        connection.channel().queue_delete(own)
        Queue(own, bindings=[binding(EVENTS_EXCHANGE, routing_key="namangan.application.*")], durable=True,
              queue_arguments={"x-queue-type": "quorum"})(connection.channel()).declare()
    vhost = unquote(urlparse(broker("ministry")).path[1:])
    subprocess.run(["rabbitmqctl", "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"], check=True,
                   capture_output=True, timeout=60)
    try:
        event = make_event("application.submitted", "jizzakh", "intake_jizzakh", {"tracking_number": "JI-2026-666666"})
        with Connection(f"{BROKER}/{quote(vhost, safe='')}", transport_options={"confirm_publish": True}) as connection:
            # CC'd by a key that names no queue (the default exchange routes by queue names): Jizzakh's requeue key.
            Producer(connection.channel()).publish(event, exchange="", routing_key=own, expiration=0.05, retry=False,
                                                   headers={"CC": [f"{QUEUE}.requeue"],
                                                            "x-original-routing-key": "jizzakh.application.submitted"})
        wait_for(lambda: depth(broker, f"{own}.dead", "notifications_namangan") == 1, 10,
                 "the expired message in Namangan's own dead letters (the policy applied)")
        assert jizzakhs_queues(broker) == before
    finally:
        with Connection(broker("notifications_namangan")) as connection:
            connection.channel().queue_purge(f"{own}.dead")


@pytest.mark.parametrize("principal, own_key, foreign", [
    ("intake_namangan", "namangan.application.submitted", ["jizzakh.application.submitted"]),
    ("notifications_namangan", "namangan.notification.failed",
     ["jizzakh.application.submitted", "national.catalogue.service_published"]),
    ("catalogue", "national.catalogue.service_published", ["jizzakh.application.submitted"]),
])
def test_cc_on_an_events_outlet_reaches_only_the_queues_meant_for_its_own_events(broker, principal, own_key, foreign):
    """A CC'd copy of an event a principal may publish reaches none of the queues that take another's
    events: the events outlets are bound to their consumers' queues, not into oss.events."""
    watched = {"notifications_jizzakh.applications": "notifications_jizzakh", "reporting_jizzakh.applications":
               "reporting_jizzakh", "intake_jizzakh.catalogue": "intake_jizzakh"}
    meant = {queue for queue in watched if _takes(queue, own_key)}
    before = {queue: depth(broker, queue, owner) for queue, owner in watched.items()}
    event = make_event(own_key.split(".", 1)[1], own_key.split(".")[0], principal, {"tracking_number": "NA-2026-000002"})
    publish_confirmed(broker(principal), "events", own_key, body=event, headers={"CC": foreign, "BCC": foreign})
    time.sleep(0.5)
    after = {queue: depth(broker, queue, owner) for queue, owner in watched.items()}
    assert {queue for queue in watched if after[queue] != before[queue]} == meant
    for queue in meant:
        with Connection(broker(watched[queue])) as connection:
            connection.channel().queue_purge(queue)


def _takes(queue, key):
    return (queue == "intake_jizzakh.catalogue" and key.startswith("national.catalogue.")) or \
        (queue != "intake_jizzakh.catalogue" and key.startswith("jizzakh.application."))


def test_each_principals_dlx_outlet_is_bound_to_its_own_queues_only():
    from oss_common.cli import broker_definitions

    document = broker_definitions("jizzakh,namangan")
    dlx_bindings = [item for item in document["bindings"] if item["source"].startswith("oss-") and item["source"].endswith(".dlx")]
    assert dlx_bindings and all(item["destination_type"] == "queue" for item in dlx_bindings)
    for item in dlx_bindings:
        principal = item["source"].removeprefix("oss-").removesuffix(".dlx")
        queue = item["destination"].removeprefix("rpc-")
        assert queue.replace("_", "-").startswith(principal + "."), item
    policies = {policy["pattern"]: policy["definition"]["dead-letter-exchange"] for policy in document["policies"]}
    assert "oss.dlx" not in policies.values()
    assert policies[r"^notifications_jizzakh\.applications$"] == "oss-notifications-jizzakh.dlx"


def test_list_covers_the_rpc_queues_dead_letters_and_says_which_it_may_not_read(broker):
    """`oss dead-letters list` (no queue named) lists every event and RPC queue of the deployment; a
    request parked in rpc-notifications_jizzakh.dead shows under Jizzakh's user, and a queue of another
    principal holding dead letters is counted but not read."""
    own = broker("notifications_jizzakh")
    with Connection(own, transport_options={"confirm_publish": True}) as connection:
        Producer(connection.channel()).publish(b"hello", exchange=f"{connection.userid}.dlx",
                                               routing_key="rpc-notifications_jizzakh", message_id="rpc-parked",
                                               headers={"x-error": "RPC request without reply_to",
                                                        "x-dead-lettered-at": "2026-01-05T10:00:00+00:00"}, retry=False)
    with Connection(broker("reporting_jizzakh"), transport_options={"confirm_publish": True}) as connection:
        Producer(connection.channel()).publish(b"{}", exchange=f"{connection.userid}.dlx",
                                               routing_key="reporting_jizzakh.applications", message_id="other", retry=False,
                                               headers={"x-error": "ValueError after 5 deliveries"})
    try:
        listed = oss(own, "list", "--regions", "jizzakh")
        assert listed.returncode == 1, listed.stderr
        rows = {line.split()[0]: line for line in listed.stdout.splitlines()[1:]}
        assert "RPC request without reply_to (1)" in rows["rpc-notifications_jizzakh.dead"]
        assert rows["reporting_jizzakh.applications.dead"].split()[1] == "1"
        assert "(not readable by this user)" in rows["reporting_jizzakh.applications.dead"]
        assert "ValueError" not in listed.stdout
        assert {"rpc-catalogue.dead", "rpc-intake_jizzakh.dead", f"{QUEUE}.dead"} <= set(rows)
    finally:
        for principal, queue in (("notifications_jizzakh", "rpc-notifications_jizzakh.dead"),
                                 ("reporting_jizzakh", "reporting_jizzakh.applications.dead")):
            with Connection(broker(principal)) as connection:
                connection.channel().queue_purge(queue)
