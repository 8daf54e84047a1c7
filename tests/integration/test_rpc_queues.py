"""Services' RPC request queues are quorum queues (they outlive a broker node); on a broker where an
older build left one classic, `oss run` replaces it when it is empty and says what to do when it is not."""
import pytest
from kombu import Connection, Producer, Queue

from oss_common.broker import ensure_quorum_rpc_queue
from oss_common.config import ConfigurationError
from tests.conftest import fresh_vhost


def queue_type(amqp_uri, name):
    """The queue's type, by declaring it quorum: the broker refuses that for a classic one."""
    from amqp.exceptions import PreconditionFailed

    with Connection(amqp_uri) as connection:
        try:
            Queue(name, durable=True, queue_arguments={"x-queue-type": "quorum"})(connection.channel()).queue_declare()
            return "quorum"
        except PreconditionFailed:
            return "classic"


def test_an_empty_classic_rpc_queue_of_an_older_build_is_replaced_and_a_busy_one_is_reported():
    with fresh_vhost("rpc-queues") as amqp_uri:
        with Connection(amqp_uri) as connection:
            for name in ("rpc-intake_jizzakh", "rpc-intake_namangan"):
                Queue(name, durable=True)(connection.channel()).declare()
            Producer(connection.channel()).publish({"waiting": 1}, exchange="", routing_key="rpc-intake_namangan")

        ensure_quorum_rpc_queue(amqp_uri, "intake_jizzakh")
        assert queue_type(amqp_uri, "rpc-intake_jizzakh") == "quorum"
        ensure_quorum_rpc_queue(amqp_uri, "intake_jizzakh")  # quorum already: nothing to do
        ensure_quorum_rpc_queue(amqp_uri, "intake_fergana")  # missing: declared quorum
        assert queue_type(amqp_uri, "rpc-intake_fergana") == "quorum"

        with pytest.raises(ConfigurationError, match="holds 1 request"):
            ensure_quorum_rpc_queue(amqp_uri, "intake_namangan")
        assert queue_type(amqp_uri, "rpc-intake_namangan") == "classic"
