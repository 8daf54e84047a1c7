"""Clients of a clustered broker: an AMQP_URI naming every node, each tried once in order, no password in logs."""
from kombu import Connection

from oss_common.broker import amqp_user, ensure_connected, outlet, sanitized

NODES = "amqp://oss-intake-jizzakh:s3cret@node1:5672/oss;amqp://oss-intake-jizzakh:s3cret@node2:5672/oss"


def test_a_node_list_masks_every_password_and_keeps_the_user_and_outlets():
    assert "s3cret" not in sanitized(NODES)
    assert sanitized(NODES).count("oss-intake-jizzakh:********@") == 2
    assert amqp_user(NODES) == "oss-intake-jizzakh"
    assert outlet(NODES, "oss.events") == "oss-intake-jizzakh.events"


def test_ensure_connected_tries_each_node_once_without_pausing(monkeypatch):
    tried = []
    connection = Connection(NODES)
    monkeypatch.setattr(Connection, "ensure_connection",
                        lambda self, **options: tried.append((len(self.alt), options)))
    ensure_connected(connection)
    assert tried == [(2, {"max_retries": 2, "interval_start": 0, "interval_step": 0})]
