"""How the Open311 face reaches its settings (partners' API keys, request mode) and queues a
request for its own service to create."""
import hashlib
import hmac
import re

from nameko.extensions import DependencyProvider
from nameko.rpc import RpcProxy

from oss_common.config import ConfigurationError, as_list

REQUEST_MODES = ("realtime", "batch")
SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
PARTNER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def key_digest(api_key):
    """What the configuration keeps of a partner's API key: its SHA-256, in hex."""
    return hashlib.sha256(api_key.encode("utf-8")).hexdigest()


def parse_partner_keys(value):
    """`OPEN311_API_KEYS`: `partner:sha256hex` pairs, comma-separated (or a YAML list of them),
    as {digest: partner}."""
    digests = {}
    for item in as_list(value):
        partner, _, digest = item.partition(":")
        partner, digest = partner.strip(), digest.strip().lower()
        if not PARTNER.match(partner) or not SHA256_HEX.match(digest):
            raise ConfigurationError(
                "OPEN311_API_KEYS takes `partner:sha256-hex-digest` pairs, comma-separated "
                "(digest: printf %s \"$KEY\" | sha256sum)")
        digests[digest] = partner
    return digests


class Open311Settings:
    def __init__(self, config):
        self.partners = parse_partner_keys(config.get("OPEN311_API_KEYS"))
        self.request_mode = str(config.get("OPEN311_REQUEST_MODE") or "realtime")
        if self.request_mode not in REQUEST_MODES:
            raise ConfigurationError(f"OPEN311_REQUEST_MODE is one of {', '.join(REQUEST_MODES)}")
        self.contact = str(config.get("OPEN311_CONTACT") or "")
        self.key_service = str(config.get("OPEN311_KEY_SERVICE") or "")

    def partner(self, api_key):
        """The partner an API key belongs to, or None."""
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
