"""Rate limits for what anonymous callers may ask: token buckets per key (a client address, a
tracking number), kept in the memory of one process.

A limit is written `N/S`: N requests in S seconds, refilled evenly, so a burst of N is allowed
after a quiet spell and N/S a second after that. Each process keeps its own buckets: a region run
as P processes behind one address lets a client P times as much, which the limits are sized for.
"""
import time
from collections import OrderedDict
from dataclasses import dataclass

from oss_common.config import ConfigurationError, setting

# Buckets kept per limiter; the least recently used is forgotten first (a full bucket is the same
# as a forgotten one, so forgetting only ever errs towards letting a flood of new addresses through).
MAX_KEYS = 100_000


@dataclass(frozen=True)
class Rate:
    requests: int
    seconds: float

    @classmethod
    def parse(cls, text, name):
        """`N/S` (requests per seconds); ConfigurationError naming the setting otherwise."""
        count, _, seconds = str(text).partition("/")
        try:
            rate = cls(int(count), float(seconds))
        except ValueError:
            rate = None
        if rate is None or rate.requests < 1 or not 0 < rate.seconds <= 86_400:
            raise ConfigurationError(f"{name} takes N/S: N requests in S seconds (1 to 86400), e.g. 120/60; not {text!r}")
        return rate


def rate_setting(config: dict, name: str, default: str) -> "Rate":
    return Rate.parse(setting(config, name, default), name)


class Limiter:
    """Token buckets of one Rate, one per key."""

    def __init__(self, rate, clock=time.monotonic, max_keys=MAX_KEYS):
        self.rate = rate
        self.clock = clock
        self.max_keys = max_keys
        self._buckets = OrderedDict()  # key -> (tokens, when they were counted)

    def _tokens(self, key):
        now = self.clock()
        tokens, counted = self._buckets.get(key, (self.rate.requests, now))
        refill = (now - counted) * self.rate.requests / self.rate.seconds
        return min(self.rate.requests, tokens + refill), now

    def wait(self, key: str) -> float:
        """Seconds until `key` has a request left (0: it has one now); takes nothing."""
        tokens, _now = self._tokens(key)
        return 0.0 if tokens >= 1 else (1 - tokens) * self.rate.seconds / self.rate.requests

    def take(self, key: str) -> float:
        """Take one request for `key`: 0 when allowed, else the seconds to wait (nothing taken)."""
        tokens, now = self._tokens(key)
        if tokens < 1:
            return (1 - tokens) * self.rate.seconds / self.rate.requests
        self._buckets[key] = (tokens - 1, now)
        self._buckets.move_to_end(key)
        while len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)
        return 0.0


def client_address(request, forwarded_hops: int = 0) -> str:
    """The address a request came from: the connection's peer, or with `forwarded_hops` proxies of
    the deployment in front (FORWARDED_HOPS), the address the outermost of them saw in
    X-Forwarded-For. Entries a client wrote itself are to the left of those and never read."""
    if forwarded_hops:
        chain = [part.strip() for part in request.headers.get("X-Forwarded-For", "").split(",") if part.strip()]
        if len(chain) >= forwarded_hops:
            return chain[-forwarded_hops]
    return request.remote_addr or "unknown"
