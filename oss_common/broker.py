"""RabbitMQ definitions of a deployment (deploy/rabbitmq/definitions.json): vhost, exchanges,
policies, and one user per oblast, one for the catalogue and one for the ministry, each allowed
only its own queues and routing keys. `oss broker definitions` writes them from deploy/regions/.

What each user's processes touch (names from nameko and oss_common.events):
  queues      rpc-<service>            nameko's RPC queue, bound to `nameko-rpc` by `<service>.*`
              <service>.<purpose>      event queues, bound to `oss.events`; and <queue>.dead on `oss.dlx`
              rpc.reply-<service>-<uuid>, rpc.reply-standalone_rpc_proxy-<uuid>   RPC reply queues
  exchanges   oss.events, oss.dlx, nameko-rpc (declared by the code: configure is needed on them)
A region's services are `<kind>_<slug>`; its routing keys start with `<slug>.`.
"""
import json

from oss_common.events import BROKER_DELIVERY_LIMIT, DEAD_LETTER_EXCHANGE, EVENTS_EXCHANGE, NATIONAL

VHOST = "oss"
RPC_EXCHANGE = "nameko-rpc"
SHARED_EXCHANGES = rf"{EVENTS_EXCHANGE.name}|{DEAD_LETTER_EXCHANGE.name}|{RPC_EXCHANGE}".replace(".", r"\.")
UUID = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"

# National principals: which service names they run, and which region's events they may publish.
CATALOGUE_SERVICES = "catalogue"
MINISTRY_SERVICES = "reporting|notifications"


def user_name(principal):
    return f"oss-{principal}"


def _resources(services):
    """Queues of the services matched by `services` (a regex alternative), plus the shared exchanges."""
    return (rf"^(({services})\.[a-z0-9_.-]+|rpc-({services})|rpc\.reply-({services})-{UUID}"
            rf"|rpc\.reply-standalone_rpc_proxy-{UUID}|{SHARED_EXCHANGES})$")


def _principal(name, services, event_write, event_read, rpc_write, rpc_read):
    resources = _resources(services)
    user = user_name(name)
    return (
        {"name": user, "password_hash": "", "hashing_algorithm": "rabbit_password_hashing_sha256",
         "tags": []},
        {"user": user, "vhost": VHOST, "configure": resources, "write": resources, "read": resources},
        [
            {"user": user, "vhost": VHOST, "exchange": EVENTS_EXCHANGE.name, "write": event_write, "read": event_read},
            {"user": user, "vhost": VHOST, "exchange": DEAD_LETTER_EXCHANGE.name,
             "write": rf"^({services})\.", "read": rf"^({services})\."},
            {"user": user, "vhost": VHOST, "exchange": RPC_EXCHANGE, "write": rpc_write, "read": rpc_read},
        ],
    )


def region_principal(slug):
    """A region's user: its own services (`<kind>_<slug>`), events `<slug>.*`, national events to read,
    RPC to the catalogue and to its own services, replies (routed by a uuid) to anyone."""
    services = rf"[a-z]+_{slug}"
    return _principal(
        slug, services,
        event_write=rf"^{slug}\.",
        event_read=rf"^({slug}|{NATIONAL})\.",
        rpc_write=rf"^(({CATALOGUE_SERVICES}|{services})\.[a-z_]+|{UUID})$",
        rpc_read=rf"^({services}\.\*|{UUID})$",
    )


def national_principals():
    catalogue = _principal(
        "catalogue", CATALOGUE_SERVICES,
        event_write=rf"^{NATIONAL}\.catalogue\.", event_read=rf"^{NATIONAL}\.",
        rpc_write=rf"^({CATALOGUE_SERVICES}\.[a-z_]+|{UUID})$", rpc_read=rf"^({CATALOGUE_SERVICES}\.\*|{UUID})$",
    )
    # The ministry reads every region's events; over RPC it asks the catalogue and the regions'
    # reporting (the national view's fan-out), never a region's intake or notifications.
    ministry = _principal(
        "ministry", MINISTRY_SERVICES,
        event_write=rf"^{NATIONAL}\.", event_read=".*",
        rpc_write=rf"^(({CATALOGUE_SERVICES}|reporting_[a-z]+)\.[a-z_]+|{UUID})$",
        rpc_read=rf"^(({MINISTRY_SERVICES})\.\*|{UUID})$",
    )
    return [catalogue, ministry]


def definitions(region_slugs):
    """The whole definitions document for a deployment of these regions."""
    principals = national_principals() + [region_principal(slug) for slug in region_slugs]
    return {
        "rabbit_version": "3.10.8",
        "vhosts": [{"name": VHOST}],
        "users": [user for user, _, _ in principals],
        "permissions": [permission for _, permission, _ in principals],
        "topic_permissions": [topic for _, _, topics in principals for topic in topics],
        "exchanges": [
            {"name": exchange.name, "vhost": VHOST, "type": "topic", "durable": True, "auto_delete": False,
             "internal": False, "arguments": {}}
            for exchange in (EVENTS_EXCHANGE, DEAD_LETTER_EXCHANGE)
        ] + [{"name": RPC_EXCHANGE, "vhost": VHOST, "type": "topic", "durable": True, "auto_delete": False,
              "internal": False, "arguments": {}}],
        "policies": [
            {
                # Event queues (`<service>.<purpose>`) are declared quorum with these same values as
                # arguments (oss_common.events.event_queue); the policy keeps a queue declared without
                # them (by hand, by an older build) from ever dropping a poison message.
                "vhost": VHOST, "name": "oss-event-queues", "pattern": r"^[a-z]+(_[a-z0-9-]+)?\.[a-z_]+$",
                "apply-to": "queues", "priority": 1,
                "definition": {"dead-letter-exchange": DEAD_LETTER_EXCHANGE.name, "delivery-limit": BROKER_DELIVERY_LIMIT},
            },
        ],
        "queues": [],
        "bindings": [],
    }


def render(region_slugs):
    return json.dumps(definitions(region_slugs), indent=2, ensure_ascii=False) + "\n"
