"""RabbitMQ definitions of a deployment (deploy/rabbitmq/definitions.json): vhost, the shared
exchanges, each principal's outlets, policies, and one user per principal. `oss broker definitions`
writes them from deploy/regions/.

A principal is one service of one region (`intake_<slug>`, `notifications_<slug>`,
`reporting_<slug>`), a national service (`catalogue`, `reporting`, `notifications`), or `ministry`
(the administrators' commands: `oss catalogue load`). Its broker user is `oss-<principal>` with `_`
as `-` (oss-intake-fergana).

No user may configure (declare, delete) any exchange, nor write to the shared ones (`nameko-rpc`,
`oss.events`, `oss.dlx`): so none can bind them to an exchange of its own, delete them, or make a
queue dead-letter into them. A user publishes to its own outlets `<user>.rpc`, `<user>.events` and
`<user>.dlx`: the definitions bind the RPC outlet into `nameko-rpc` for exactly the routing keys the
principal owns, the events outlet straight to the deployed queues that take its events (by the keys
it owns), and the dlx outlet straight to the principal's own parking queues (below);
topic permissions pin the same keys on the outlets (a publish outside them is refused) and the
binding keys on the shared exchanges (a queue can be bound only to the principal's own keys).
RabbitMQ checks a publish's routing key but not the extra keys a `CC` or `BCC` header names, and
routes by all of them; an outlet bound into `oss.dlx` would so carry a message to any region's
`.retry` or `.requeue` key, and back into that region's queue as if it had been retried there.
Bound to its own queues only, the dlx outlet reaches nothing else whatever keys a message names; the
events outlet, bound to the queues meant to take its events, carries a CC'd copy to none other (one
bound into `oss.events` put a copy in any region's queue, parked there as misaddressed). The RPC
outlet must go through `nameko-rpc` (reply queues come and go): a CC'd copy of an allowed call reaches
another service's queue by the allowed call's key, which nameko answers with MethodNotFound.
Queues: configure, write and read on the principal's own queues only:
  rpc-<service>                       nameko's RPC queue, bound to `nameko-rpc` by `<service>.*`
  <service>.<purpose>[.dead|.retry]   event queues on `oss.events`, their dead letters and retries
  rpc-<service>.dead                  RPC requests that could not be read (oss_common.consumers)
  <queue>.dropped                     what `oss dead-letters drop` removed from `<queue>.dead`
  rpc.reply-<user>-<uuid>             RPC reply queues, bound by `reply-<user>-<uuid>` (oss_common.rpc)
Every deployed consumer's event queues (with their dead-letter and retry queues) and bindings are
declared here too, so an event published before its consumer ever started is kept for it (the
outbox publishes mandatory, and would otherwise hold it).
"""
import re
from urllib.parse import unquote, urlparse

from kombu import Queue, binding

from oss_common.config import ConfigurationError
from oss_common.events import (
    BROKER_DELIVERY_LIMIT, DEAD_LETTER_EXCHANGE, EVENTS_EXCHANGE, NATIONAL, dead_letter_queue, dropped_queue, event_queue,
    requeue_key, retry_queue,
)

VHOST = "oss"
RPC_EXCHANGE = "nameko-rpc"
SHARED_EXCHANGES = (RPC_EXCHANGE, EVENTS_EXCHANGE.name, DEAD_LETTER_EXCHANGE.name)
OUTLETS = {RPC_EXCHANGE: "rpc", EVENTS_EXCHANGE.name: "events", DEAD_LETTER_EXCHANGE.name: "dlx"}
USER_PREFIX = "oss-"
UUID = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
CATALOGUE_READS = ("list_services", "get_service")
CATALOGUE_WRITES = ("upsert_service", "publish_service", "retire_service", "load_catalogue", "set_base_amount")
# How many events no service consumes (`<principal>.published`) the broker keeps, newest first.
PUBLISHED_KEPT = 10000
# Each kind's event queues (`<service>.<suffix>`, oss_common.consumers.EventHandler's queue_suffix).
EVENT_QUEUES = {"intake": ("catalogue",), "notifications": ("applications",), "reporting": ("applications",)}


def user_name(principal: str, prefix: str = USER_PREFIX) -> str:
    return prefix + principal.replace("_", "-")


def amqp_user(amqp_uri: str) -> str:
    return unquote(urlparse(amqp_uri).username or "guest")


def ensure_connected(connection):
    """Connect to the first node that answers, trying each node the AMQP_URI names once and without a
    pause between them: a cluster's clients name every node (`amqp://...@node1/oss;amqp://...@node2/oss;...`,
    kombu's failover list), so losing one node costs a reconnection, not an outage."""
    connection.ensure_connection(max_retries=max(1, len(connection.alt)), interval_start=0, interval_step=0)
    return connection


def sanitized(amqp_uri: str) -> str:
    """The AMQP_URI for a log line: every node's password masked (nameko's own masks the first only)."""
    from nameko.utils import sanitize_url

    return ";".join(sanitize_url(part) for part in str(amqp_uri).split(";"))


def outlet(amqp_uri: str, exchange_name: str) -> str:
    """Where a process publishes what is meant for a shared exchange: a definitions user (`oss-*`)
    through its own outlet, any other (a development broker's guest) to the exchange itself."""
    user = amqp_user(amqp_uri)
    if not user.startswith(USER_PREFIX) or exchange_name not in OUTLETS:
        return exchange_name
    return f"{user}.{OUTLETS[exchange_name]}"


def reply_key(user: str, unique: str) -> str:
    """The routing key of an RPC reply queue: the user's name in it, so a user can bind only its own."""
    return f"reply-{user}-{unique}"


class Principal:
    """What one principal may do on the bus: the services it runs, the RPC methods it calls, the
    event keys it publishes and binds."""

    def __init__(self, name, calls=(), callers=(), publishes=(), binds=(), queue_kind=None, prefix=USER_PREFIX):
        self.name = name
        self.prefix = prefix
        self.user = user_name(name, prefix)
        self.calls = tuple(calls)  # `<service>.<method>` or `<service>.*` it may call
        self.callers = tuple(callers)  # principals whose reply queues it answers (those that call it)
        self.publishes = tuple(publishes)  # event routing keys (topic patterns) it publishes
        self.binds = tuple(binds)  # event routing keys (topic patterns) its queues bind
        self.event_queues = tuple(f"{name}.{suffix}" for suffix in EVENT_QUEUES.get(queue_kind, ()))
        self.serves_rpc = name != "ministry"
        # The queues whose consumers park what they give up on (or cannot read) in `<queue>.dead`.
        self.dead_lettering = self.event_queues + ((f"rpc-{name}",) if self.serves_rpc else ())
        # Keys on `oss.dlx` of its event queues' retries: to `<queue>.retry`, and back by `<queue>.requeue`.
        self.retrying = tuple(f"{queue}.{suffix}" for queue in self.event_queues for suffix in ("retry", "requeue"))
        # Keys of the records `oss dead-letters drop` keeps.
        self.dropping = tuple(f"{queue}.dropped" for queue in self.dead_lettering)
        # What it publishes that no deployed consumer binds (set by `definitions`): kept in `<name>.published`.
        self.unconsumed = ()
        # (binding key, queue) of every deployed queue its events go to (set by `definitions`).
        self.event_routes = ()

    def published_queue(self):
        """Where the events it publishes that no service consumes (`notification.failed`) go, so that the
        outbox relay's mandatory publish finds a queue: a sink for operators, none of ours consumes it.
        The outbox keeps every row after sending (the event history), so the oldest here are dropped
        past PUBLISHED_KEPT rather than filling the broker's disk."""
        if not self.unconsumed:
            return None
        return Queue(f"{self.name}.published", bindings=[binding(EVENTS_EXCHANGE, routing_key=key) for key in self.unconsumed],
                     durable=True, auto_delete=False,
                     queue_arguments={"x-queue-type": "quorum", "x-max-length": PUBLISHED_KEPT, "x-overflow": "drop-head"})

    def dlx_routes(self):
        """(routing key, queue) of everything its dlx outlet carries, each to one of its own queues:
        a dead letter to `<queue>.dead`, a retry to `<queue>.retry` and back to `<queue>` by
        `<queue>.requeue` (after the back-off or a replay), a drop's record to `<queue>.dropped`."""
        routes = []
        for queue in self.dead_lettering:
            routes.append((queue, f"{queue}.dead"))
            if queue in self.event_queues:
                routes += [(f"{queue}.retry", f"{queue}.retry"), (requeue_key(queue), queue)]
            routes.append((f"{queue}.dropped", f"{queue}.dropped"))
        return routes

    def parking_queues(self):
        """The queues the definitions declare for it beside the deployment's event queues (which
        `queue_definitions` declares with their `.dead` and `.retry`): its RPC queue's dead letters
        and every `.dropped`."""
        queues = [dead_letter_queue(f"rpc-{self.name}")] if self.serves_rpc else []
        return queues + [dropped_queue(queue) for queue in self.dead_lettering]

    def queue_pattern(self):
        names = [f"rpc-{self.name}"] if self.serves_rpc else []
        names += list(self.event_queues) + [f"{queue}.dead" for queue in self.dead_lettering]
        names += [f"{queue}.retry" for queue in self.event_queues]
        names += [f"{queue}.dropped" for queue in self.dead_lettering]
        names += [f"{self.name}.published"] if self.unconsumed else []
        alternatives = [re.escape(name) for name in names] + [rf"rpc\.reply-{re.escape(self.user)}-{UUID}"]
        return "^(" + "|".join(alternatives) + ")$"

    def outlets(self):
        return [f"{self.user}.{suffix}" for suffix in OUTLETS.values()]

    def rpc_keys(self):
        """Routing keys it may publish on its RPC outlet: its calls, and replies to its callers."""
        calls = [re.escape(call).replace(r"\*", "[a-z_]+") for call in self.calls]
        replies = [re.escape(reply_key(user_name(caller, self.prefix), "")) + UUID for caller in self.callers]
        return _anchored(calls + replies)

    def definitions(self):
        queues = self.queue_pattern()
        outlets = "|".join(re.escape(name) for name in self.outlets())
        shared = "|".join(re.escape(name) for name in SHARED_EXCHANGES)
        user = {"name": self.user, "password_hash": "", "hashing_algorithm": "rabbit_password_hashing_sha256", "tags": []}
        permission = {"user": self.user, "vhost": VHOST, "configure": queues,
                      "write": f"^({queues[1:-1]}|{outlets})$", "read": f"^({queues[1:-1]}|{shared})$"}
        own_replies = rf"{re.escape(reply_key(self.user, ''))}{UUID}"
        bind_rpc = [re.escape(f"{self.name}.*")] if self.serves_rpc else []
        topics = [
            (RPC_EXCHANGE, "^$", "^(" + "|".join(bind_rpc + [own_replies]) + ")$"),
            (EVENTS_EXCHANGE.name, "^$", _anchored(_topic_regex(key) for key in self.binds)),
            (DEAD_LETTER_EXCHANGE.name, "^$",
             _anchored(re.escape(key) for key in self.dead_lettering + self.retrying + self.dropping)),
            (f"{self.user}.rpc", self.rpc_keys(), "^$"),
            (f"{self.user}.events", _anchored(_topic_regex(key) for key in self.publishes), "^$"),
            (f"{self.user}.dlx", _anchored(re.escape(key) for key, _ in self.dlx_routes()), "^$"),
        ]
        topic_permissions = [{"user": self.user, "vhost": VHOST, "exchange": exchange, "write": write, "read": read}
                             for exchange, write, read in topics]
        bindings = (
            [_binding(f"{self.user}.rpc", RPC_EXCHANGE, call) for call in self.calls]
            + ([_binding(f"{self.user}.rpc", RPC_EXCHANGE, "*")] if self.callers else [])
            # Straight to the deployed queues that take its events, not into oss.events (CC headers, as below).
            + [_binding(f"{self.user}.events", queue, key, destination_type="queue") for key, queue in self.event_routes]
            # Straight to its own queues, not into oss.dlx: see the module's docstring (CC headers).
            + [_binding(f"{self.user}.dlx", queue, key, destination_type="queue") for key, queue in self.dlx_routes()]
        )
        return user, permission, topic_permissions, self.outlets(), bindings


def _topics_overlap(first, second):
    """Whether some routing key matches both topic patterns (`*` words; `#` taken to match anything)."""
    if "#" in first.split(".") or "#" in second.split("."):
        return True
    words, others = first.split("."), second.split(".")
    return len(words) == len(others) and all(a == b or "*" in (a, b) for a, b in zip(words, others))


def _topics_intersection(first, second):
    """The topic pattern of the keys both match (both of `*` words only): word by word the more specific."""
    if "#" in first.split(".") or "#" in second.split("."):
        return first if "#" in second.split(".") else second
    return ".".join(b if a == "*" else a for a, b in zip(first.split("."), second.split(".")))


def _topic_regex(pattern):
    """A regex for the routing keys (or binding keys) an AMQP topic pattern stands for, `*` itself included."""
    words = [r"([a-z0-9_-]+|\*)" if word == "*" else re.escape(word) for word in pattern.split(".")]
    return r"\.".join(words)


def _anchored(alternatives):
    alternatives = list(alternatives)
    return "^(" + "|".join(alternatives) + ")$" if alternatives else "^$"


def _binding(source, destination, routing_key, destination_type="exchange"):
    return {"source": source, "vhost": VHOST, "destination": destination, "destination_type": destination_type,
            "routing_key": routing_key, "arguments": {}}


def principals(region_slugs: list[str], national_notifications: bool = False, prefix: str = USER_PREFIX) -> list:
    """Every principal of a deployment of these regions (and the national notifications instance when
    the deployment runs one instead of the regions' own); user names start with `prefix` (`oss-`)."""
    def principal(name, **rights):
        return Principal(name, prefix=prefix, **rights)

    regional = []
    for slug in region_slugs:
        intake, notifications, reporting = f"intake_{slug}", f"notifications_{slug}", f"reporting_{slug}"
        regional += [
            principal(intake, calls=[f"catalogue.{method}" for method in CATALOGUE_READS] + [f"{intake}.*"],
                      callers=[intake, reporting], publishes=[f"{slug}.application.*"], binds=[f"{NATIONAL}.catalogue.*"],
                      queue_kind="intake"),
            principal(reporting, calls=[f"{intake}.export_events"], callers=["reporting"],
                      binds=[f"{slug}.application.*"], queue_kind="reporting"),
        ]
        if not national_notifications:
            regional.append(principal(notifications, publishes=[f"{slug}.notification.*"],
                                      binds=[f"{slug}.application.*"], queue_kind="notifications"))
    catalogue_callers = ["catalogue", "ministry"] + [f"intake_{slug}" for slug in region_slugs]
    national = [
        principal("catalogue", calls=[f"catalogue.{method}" for method in CATALOGUE_READS + CATALOGUE_WRITES],
                  callers=catalogue_callers, publishes=[f"{NATIONAL}.catalogue.*"]),
        principal("reporting", calls=[f"reporting_{slug}.{method}" for slug in region_slugs
                                      for method in ("regional_summary", "monthly")], callers=["ministry"]),
        principal("ministry", calls=[f"catalogue.{method}" for method in CATALOGUE_READS + CATALOGUE_WRITES]
                  + ["reporting.national_summary"]),
    ]
    if national_notifications:
        national.append(principal("notifications", publishes=[f"{NATIONAL}.notification.*"], binds=["*.application.*"],
                                  queue_kind="notifications"))
    return national + regional


def dead_letter_outlet(queue: str, prefix: str = USER_PREFIX) -> str:
    """The dlx outlet of the principal owning event queue `<principal>.<purpose>`."""
    return f"{user_name(queue.split('.', 1)[0], prefix)}.{OUTLETS[DEAD_LETTER_EXCHANGE.name]}"


def queue_definitions(event_queues, prefix: str = USER_PREFIX, other_queues=()) -> tuple[list, list]:
    """Queues and bindings of the deployment's consumers, from (queue name, binding patterns) pairs,
    declared exactly as the code declares them (oss_common.events), dead-lettering through their
    owner's outlet; then `other_queues` (kombu Queues) as they are."""
    declared = []
    for name, patterns in event_queues:
        declared += [event_queue(name, patterns, dead_letter_outlet(name, prefix)), dead_letter_queue(name),
                     retry_queue(name, dead_letter_outlet(name, prefix))]
    queues, bindings = [], []
    for queue in declared + list(other_queues):
        queues.append({"name": queue.name, "vhost": VHOST, "durable": True, "auto_delete": False,
                       "arguments": dict(queue.queue_arguments)})
        # kombu keeps a queue's bindings as a set: sorted, so that the file is the same every time.
        pairs = sorted((item.exchange.name, item.routing_key) for item in queue.bindings) or \
            [(queue.exchange.name, queue.routing_key)]
        bindings.extend({"source": exchange, "vhost": VHOST, "destination": queue.name, "destination_type": "queue",
                         "routing_key": routing_key, "arguments": {}} for exchange, routing_key in pairs)
    return queues, bindings


def definitions(region_slugs: list[str], national_notifications: bool = False, prefix: str = USER_PREFIX,
                event_queues=()) -> dict:
    """The whole definitions document for a deployment of these regions and their consumers' queues."""
    members = principals(region_slugs, national_notifications, prefix)
    consumed = [pattern for _, patterns in event_queues for pattern in patterns]
    for principal in members:
        principal.unconsumed = tuple(key for key in principal.publishes
                                     if not any(_topics_overlap(key, pattern) for pattern in consumed))
        takers = list(event_queues) + ([(f"{principal.name}.published", principal.unconsumed)] if principal.unconsumed else [])
        principal.event_routes = tuple(sorted({(_topics_intersection(key, pattern), queue) for key in principal.publishes
                                               for queue, patterns in takers for pattern in patterns
                                               if _topics_overlap(key, pattern)}))
    queues, queue_bindings = queue_definitions(
        event_queues, prefix, [queue for principal in members
                               for queue in principal.parking_queues() + [principal.published_queue()] if queue is not None])
    declared = {queue["name"] for queue in queues}
    missing = sorted({queue for principal in members for _, queue in principal.dlx_routes()} - declared)
    if missing:
        raise ConfigurationError(f"no definitions for the queues {', '.join(missing)} (each principal's own event queues "
                                 "must be among the deployment's event queues)")
    parts = [principal.definitions() for principal in members]
    exchange = {"vhost": VHOST, "type": "topic", "durable": True, "auto_delete": False, "internal": False, "arguments": {}}
    return {
        "rabbit_version": "3.10.8",
        "vhosts": [{"name": VHOST}],
        "users": [user for user, _, _, _, _ in parts],
        "permissions": [permission for _, permission, _, _, _ in parts],
        "topic_permissions": [topic for _, _, topics, _, _ in parts for topic in topics],
        "exchanges": [dict(exchange, name=name) for name in SHARED_EXCHANGES]
        + [dict(exchange, name=name) for _, _, _, outlets, _ in parts for name in outlets],
        "policies": [
            {
                # Event queues (`<service>.<purpose>`) are declared quorum with these same values as
                # arguments (oss_common.events.event_queue); the policy keeps a queue declared without
                # them (by hand, by an older build) from ever dropping a poison message. One per queue,
                # naming its owner's dlx outlet: a policy's dead-letter exchange is not checked against
                # the user who declares the queue, and `oss.dlx` itself would route a dead letter by
                # any key its CC header names (another region's `.requeue`).
                "vhost": VHOST, "name": f"oss-event-queue-{name}", "pattern": f"^{re.escape(name)}$",
                "apply-to": "queues", "priority": 1,
                "definition": {"dead-letter-exchange": dead_letter_outlet(name, prefix), "dead-letter-routing-key": name,
                               "delivery-limit": BROKER_DELIVERY_LIMIT},
            }
            for name, _ in event_queues
        ],
        "queues": queues,
        "bindings": [binding for _, _, _, _, bindings in parts for binding in bindings] + queue_bindings,
    }


def ensure_shared_exchanges(amqp_uri: str) -> None:
    """The shared exchanges must exist before a service starts (services declare them passively).
    On a broker without them (a development broker: the demo's guest, a test's vhost) they are
    declared here, as the definitions declare them; a user that may not (every definitions user)
    gets a ConfigurationError saying to import the definitions."""
    from amqp.exceptions import AccessRefused, NotFound
    from kombu import Connection, Exchange

    with Connection(amqp_uri) as connection:
        for name in SHARED_EXCHANGES:
            try:
                Exchange(name, type="topic", durable=True, passive=True)(connection.channel()).declare()
            except NotFound:
                try:
                    Exchange(name, type="topic", durable=True)(connection.channel()).declare()
                except AccessRefused:
                    raise ConfigurationError(
                        f"the broker has no exchange {name!r} and user {amqp_user(amqp_uri)!r} may not declare it: import "
                        "deploy/rabbitmq/definitions.json (rabbitmqctl import_definitions)") from None


def ensure_quorum_rpc_queue(amqp_uri: str, service_name: str) -> None:
    """A service's RPC request queue is a quorum queue (oss_common.rpc); a broker that ran an older
    build holds it classic, and refuses to declare it anew. An empty, unconsumed classic one (the
    service is stopped, nothing waits in it) is deleted here so that the service declares it quorum;
    one holding requests is left alone, with a ConfigurationError saying what to do. Nothing happens
    when the queue is missing or quorum already."""
    from amqp.exceptions import AccessRefused, NotFound, PreconditionFailed
    from kombu import Connection, Queue

    name = f"rpc-{service_name}"
    with Connection(amqp_uri) as connection:
        try:
            Queue(name, durable=True, queue_arguments={"x-queue-type": "quorum"})(
                connection.channel()).queue_declare(passive=False)
            return
        except (NotFound, AccessRefused):
            return  # not this user's to declare here (the service itself will say so)
        except PreconditionFailed:
            pass
        state = connection.channel().queue_declare(queue=name, passive=True)
        if state.message_count or state.consumer_count:
            raise ConfigurationError(
                f"queue {name!r} is a classic queue from an older build and holds {state.message_count} request(s) "
                f"({state.consumer_count} consumer(s)): stop its service, let it drain, then "
                f"`rabbitmqctl delete_queue {name}`; the service declares it as a quorum queue")
        connection.channel().queue_delete(name, if_unused=True, if_empty=True)
