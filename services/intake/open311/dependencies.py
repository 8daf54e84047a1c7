"""How the Open311 face reaches its settings (partners' API keys and the services each may see,
request mode, page sizes) and queues a request for its own service to create."""
import hashlib
import hmac
import logging
import re
from dataclasses import dataclass

import eventlet
from nameko.extensions import DependencyProvider
from nameko.rpc import Rpc, RpcProxy

from oss_common.config import ConfigurationError, as_list, setting
from oss_common.consumers import DEFAULT_DELIVERY_LIMIT, dead_letter_message, delivery_number
from oss_common.failures import DEFAULT_RETRY_BASE_SECONDS, DEFAULT_RETRY_CEILING_SECONDS, is_transient, retry_delay

log = logging.getLogger(__name__)

REQUEST_MODES = ("realtime", "batch")
SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
PARTNER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
SERVICE_CODE = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
ALL_SERVICES = "*"
# GeoReport's own default page; a partner may ask for this many, anonymous callers for ANONYMOUS_PAGE_SIZE.
MAX_PAGE_SIZE = 1000


@dataclass(frozen=True)
class Partner:
    """A holder of an api_key: it may POST requests, and GET those of public-interest services and
    of `services` (every service when `all_services`)."""

    name: str
    services: frozenset = frozenset()
    all_services: bool = False

    def sees(self, service_code):
        return self.all_services or service_code in self.services


def key_digest(api_key):
    """What the configuration keeps of a partner's API key: its SHA-256, in hex."""
    return hashlib.sha256(api_key.encode("utf-8")).hexdigest()


def parse_partner_keys(value):
    """`OPEN311_API_KEYS`: `partner:sha256hex[:service|service...]` items, comma-separated (or a
    YAML list of them), as {digest: Partner}. The services a key may see beyond the public-interest
    ones are listed after the digest, `|`-separated; `*` is every service."""
    digests = {}
    for item in as_list(value):
        partner, _, rest = item.partition(":")
        digest, _, services = rest.partition(":")
        partner, digest = partner.strip(), digest.strip().lower()
        codes = [code.strip() for code in services.split("|") if code.strip()]
        if (not PARTNER.match(partner) or not SHA256_HEX.match(digest)
                or not all(code == ALL_SERVICES or SERVICE_CODE.match(code) for code in codes)):
            raise ConfigurationError(
                "OPEN311_API_KEYS takes `partner:sha256-hex-digest[:service-code|service-code...]` items, "
                "comma-separated; `*` for every service (digest: printf %s \"$KEY\" | sha256sum)")
        digests[digest] = Partner(partner, frozenset(code for code in codes if code != ALL_SERVICES), ALL_SERVICES in codes)
    return digests


class Open311Settings:
    def __init__(self, config):
        self.partners = parse_partner_keys(config.get("OPEN311_API_KEYS"))
        self.request_mode = str(config.get("OPEN311_REQUEST_MODE") or "realtime")
        if self.request_mode not in REQUEST_MODES:
            raise ConfigurationError(f"OPEN311_REQUEST_MODE is one of {', '.join(REQUEST_MODES)}")
        self.contact = str(config.get("OPEN311_CONTACT") or "")
        self.key_service = str(config.get("OPEN311_KEY_SERVICE") or "")
        self.anonymous_page_size = setting(config, "OPEN311_ANONYMOUS_PAGE_SIZE", 50, int)
        if not 1 <= self.anonymous_page_size <= MAX_PAGE_SIZE:
            raise ConfigurationError(f"OPEN311_ANONYMOUS_PAGE_SIZE is 1 to {MAX_PAGE_SIZE}")

    def max_page_size(self, partner):
        return MAX_PAGE_SIZE if partner is not None else self.anonymous_page_size

    def partner(self, api_key):
        """The Partner an API key belongs to, or None."""
        if not api_key:
            return None
        given = key_digest(api_key)
        found = None
        for digest, partner in self.partners.items():
            if hmac.compare_digest(given, digest):
                found = partner
        return found


class Open311Config(DependencyProvider):
    """The Open311 settings, checked when the service starts (a malformed key list stops it)."""

    def setup(self):
        self.settings = Open311Settings(self.container.config)

    def get_dependency(self, worker_ctx):
        return self.settings


class OwnService(RpcProxy):
    """RPC to this very service (`intake_<region>`), through its durable queue: the batch mode's
    queue of requests, which any process of the region may take."""

    def __init__(self, **options):
        super().__init__(None, **options)

    def setup(self):
        self.target_service = self.container.service_name


class QueuedRpc(Rpc):
    """An RPC entrypoint for requests posted with `call_async` that nobody waits for (the batch
    queue): one that fails for a reason that passes (the database away) goes back on the durable
    queue after a back-off, RETRY_BASE_SECONDS doubling up to RETRY_CEILING_SECONDS while failures
    follow each other, instead of being answered with the error and acknowledged (lost). Until it
    is back on the queue it stays unacknowledged, so a process that stops meanwhile loses nothing.
    One that fails otherwise (a defect: what the handler refuses for good it answers, not raises) is
    tried again up to DELIVERY_LIMIT deliveries, then parked in `rpc-<service>.dead` with the
    reason, as an event consumer parks poison, for `oss dead-letters replay` once it is fixed."""

    def setup(self):
        super().setup()
        config = self.container.config
        self.retry_base = setting(config, "RETRY_BASE_SECONDS", DEFAULT_RETRY_BASE_SECONDS, float)
        self.retry_ceiling = setting(config, "RETRY_CEILING_SECONDS", DEFAULT_RETRY_CEILING_SECONDS, float)
        self.delivery_limit = setting(config, "DELIVERY_LIMIT", DEFAULT_DELIVERY_LIMIT, int)
        self.failures_in_a_row = 0

    def handle_result(self, message, worker_ctx, result, exc_info):
        if exc_info is not None and is_transient(exc_info[1]):
            self.failures_in_a_row += 1
            delay = retry_delay(self.failures_in_a_row, self.retry_base, self.retry_ceiling)
            log.warning("queued %s failed for now (%s); back on its queue in %.1fs",
                        self.method_name, type(exc_info[1]).__name__, delay)
            eventlet.spawn_after(delay, self.rpc_consumer.requeue_message, message)
            return result, exc_info
        self.failures_in_a_row = 0
        if exc_info is not None:
            deliveries = delivery_number(message.headers)
            if deliveries < self.delivery_limit:
                delay = retry_delay(deliveries, self.retry_base, self.retry_ceiling)
                log.warning("queued %s failed with %s (delivery %d of %d); back on its queue in %.1fs",
                            self.method_name, type(exc_info[1]).__name__, deliveries, self.delivery_limit, delay)
                eventlet.spawn_after(delay, self.rpc_consumer.requeue_message, message)
                return result, exc_info
            try:
                dead_letter_message(self.container.config["AMQP_URI"], self.rpc_consumer.queue.name, message,
                                    f"{type(exc_info[1]).__name__} after {deliveries} deliveries",
                                    handler=f"{self.container.service_name}.{self.method_name}")
            except Exception as exc:  # noqa: BLE001 - the broker may be away: keep it on its queue, decide later
                log.warning("could not park queued %s (%s); back on its queue in %.1fs", self.method_name,
                            type(exc).__name__, self.retry_ceiling)
                eventlet.spawn_after(self.retry_ceiling, self.rpc_consumer.requeue_message, message)
                return result, exc_info
            log.error("queued %s dead-lettered to %s.dead: %s after %d deliveries", self.method_name,
                      self.rpc_consumer.queue.name, type(exc_info[1]).__name__, deliveries)
        return super().handle_result(message, worker_ctx, result, exc_info)


queued_rpc = QueuedRpc.decorator
