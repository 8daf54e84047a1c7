"""nameko's RPC on a broker where no user may declare, or publish straight to, the shared `nameko-rpc`
exchange (oss_common.broker): it is declared passively, requests and replies go out through the
user's own outlet, and a reply queue is bound by a key that names the user (`reply-<user>-<uuid>`),
so a user can bind, and read, only its own replies.

On a cluster: a service's request queue (`rpc-<service>`) is a quorum queue, replicated on every
node, so requests waiting in it outlive a node and the service goes on serving through the others.
Reply queues stay classic (non-durable, expiring): one lives on the node its caller is connected to
and only as long as that connection; when the node goes, the caller reconnects elsewhere and declares
it anew, and a call that was in flight times out for the caller to repeat (quorum queues could not
help there: the reply is addressed to the lost connection's consumer, and a quorum queue cannot expire
as fast or be declared as cheaply for each process).

`use_broker_permissions()` applies all this (and masks every node's password in nameko's log lines) to nameko's classes, once per process, before any service
or ClusterRpcProxy starts (`oss` does it for every command; the tests and the bench do it too).
"""
import uuid

import nameko.messaging
import nameko.rpc
from kombu import Exchange, Queue
from nameko.amqp.publish import Publisher
from nameko.constants import AMQP_URI_CONFIG_KEY, RPC_EXCHANGE_CONFIG_KEY

from oss_common.broker import RPC_EXCHANGE, amqp_user, outlet, reply_key, sanitized


def rpc_exchange(config: dict) -> Exchange:
    """`nameko-rpc`, declared passively: it must exist (the definitions, or `oss run` on a development broker)."""
    return Exchange(config.get(RPC_EXCHANGE_CONFIG_KEY, RPC_EXCHANGE), type="topic", durable=True, passive=True)


class OutletPublisher(Publisher):
    """nameko's publisher, sending what is meant for `nameko-rpc` through the user's outlet."""

    def publish(self, payload, **kwargs):
        exchange = kwargs.get("exchange")
        if exchange is not None:
            name = outlet(self.amqp_uri, exchange.name)
            if name != exchange.name:
                kwargs["exchange"] = Exchange(name, type="topic", durable=True, passive=True)
        return super().publish(payload, **kwargs)


def _reply_listener_setup(self):
    """nameko's ReplyListener.setup, with the user's name in the reply queue's name and routing key."""
    config = self.container.config
    self.routing_key = reply_key(amqp_user(config[AMQP_URI_CONFIG_KEY]), uuid.uuid4())
    self.queue = Queue(f"rpc.{self.routing_key}", exchange=rpc_exchange(config), routing_key=self.routing_key,
                       queue_arguments={"x-expires": nameko.rpc.RPC_REPLY_QUEUE_TTL})
    self.queue_consumer.register_provider(self)


def _rpc_consumer_setup(self):
    """nameko's RpcConsumer.setup, with the service's request queue a quorum queue."""
    if self.queue is None:
        service_name = self.container.service_name
        self.queue = Queue(nameko.rpc.RPC_QUEUE_TEMPLATE.format(service_name), exchange=rpc_exchange(self.container.config),
                           routing_key=f"{service_name}.*", durable=True, queue_arguments={"x-queue-type": "quorum"})
        self.queue_consumer.register_provider(self)
        self._registered = True


def use_broker_permissions() -> None:
    nameko.rpc.get_rpc_exchange = rpc_exchange
    nameko.rpc.MethodProxy.publisher_cls = OutletPublisher
    nameko.rpc.Responder.publisher_cls = OutletPublisher
    nameko.rpc.ReplyListener.setup = _reply_listener_setup
    nameko.rpc.RpcConsumer.setup = _rpc_consumer_setup
    # nameko logs the AMQP_URI when it cannot connect: with a cluster's node list, every password masked.
    nameko.messaging.sanitize_url = sanitized
