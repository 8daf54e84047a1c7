"""The plumbing's Prometheus metrics (entrypoints, outbox, consumers), the /metrics server and the
dependency that measures every entrypoint; each service declares its business metrics in its own
metrics.py.

Labels are service, entrypoint, region and queue only: never anything a citizen typed.
"""
import functools
import logging
import time
from typing import Any

from nameko.extensions import DependencyProvider
from nameko.containers import WorkerContext
from nameko.rpc import Rpc
from prometheus_client import Counter, Gauge, Histogram, start_http_server

log = logging.getLogger(__name__)

ENTRYPOINT_CALLS = Counter(
    "oss_entrypoint_calls_total", "Entrypoint calls handled (RPC, HTTP, event and timer), errors included.",
    ["service", "entrypoint", "region"],
)
ENTRYPOINT_ERRORS = Counter(
    "oss_entrypoint_errors_total", "Entrypoint calls that raised, by exception type.",
    ["service", "entrypoint", "region", "exception"],
)
ENTRYPOINT_LATENCY = Histogram(
    "oss_entrypoint_duration_seconds", "Time spent handling one entrypoint call.",
    ["service", "entrypoint", "region"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
OUTBOX_PENDING = Gauge(
    "oss_outbox_pending_events", "Outbox rows not yet published to the bus, counted at most once a second.",
    ["service", "region"],
)
OUTBOX_OLDEST_AGE = Gauge(
    "oss_outbox_oldest_pending_age_seconds", "Age of the oldest unpublished outbox row (0 when none waits).",
    ["service", "region"],
)
OUTBOX_RELAYED = Counter(
    "oss_outbox_relayed_events_total", "Outbox events published to the bus with a confirm.",
    ["service", "region"],
)
OUTBOX_RETURNED = Counter(
    "oss_outbox_returned_events_total", "Outbox events the broker returned as unroutable (no queue bound); kept unsent.",
    ["service", "region"],
)
OUTBOX_UNROUTABLE = Gauge(
    "oss_outbox_unroutable_events", "Unsent outbox rows the broker has returned at least once, counted at most once a second.",
    ["service", "region"],
)
EVENT_LAG = Histogram(
    "oss_event_consumer_lag_seconds", "Time from an event's occurrence to its handling by a consumer.",
    ["service", "region", "event_type"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
EVENTS_DEAD_LETTERED = Counter(
    "oss_events_dead_lettered_total", "Events a consumer gave up on and dead-lettered.",
    ["service", "region", "event_type"],
)
EVENT_QUEUE_MESSAGES = Gauge(
    "oss_event_queue_messages", "Events ready in a consumer's queue, waiting for a worker, polled from the broker.",
    ["service", "region", "queue"],
)
DEAD_LETTER_MESSAGES = Gauge(
    "oss_dead_letter_queue_messages",
    "Messages parked in a dead-letter queue (a consumer's events, a service's RPC requests), polled from the broker.",
    ["service", "region", "queue"],
)
ANONYMOUS_REFUSED = Counter(
    "oss_anonymous_requests_refused_total",
    "Anonymous requests answered 429, by the limit they ran into (address: all public endpoints of a client "
    "address; status_address, status_tracking: wrong status codes from an address, for a tracking number).",
    ["service", "region", "entrypoint", "limit"],
)
EVENTS_RETRIED = Counter(
    "oss_events_retried_total", "Events whose handler failed for a reason that passes, sent to wait out a back-off.",
    ["service", "region", "queue", "reason"],
)
RETRY_QUEUE_MESSAGES = Gauge(
    "oss_event_retry_queue_messages", "Events waiting out a back-off in a consumer's retry queue, polled from the broker.",
    ["service", "region", "queue"],
)
RETRY_CEILING = Gauge(
    "oss_event_retry_ceiling_seconds",
    "Longest back-off between tries of an event whose handler failed for a reason that passes (RETRY_CEILING_SECONDS).",
    ["service", "region", "queue"],
)

_server_ports = set()


def serve_metrics(port: int | str | None, address: str = "0.0.0.0") -> None:
    """Expose /metrics on `port` once per process; 0 or empty turns it off."""
    if not port or int(port) in _server_ports:
        return
    start_http_server(int(port), addr=address)
    _server_ports.add(int(port))
    log.info("metrics on :%s/metrics", port)


class Metrics(DependencyProvider):
    """RED metrics for every entrypoint of the service it is declared on, and the /metrics server."""

    def setup(self) -> None:
        config = self.container.config
        self.region = config.get("REGION") or "national"
        self.starts = {}
        serve_metrics(config.get("METRICS_PORT"))

        self._rpc_dead_letters = None

    def start(self) -> None:
        """A service that answers RPC also reports its RPC dead-letter queue's depth."""
        if any(isinstance(entrypoint, Rpc) for entrypoint in self.container.entrypoints):
            from oss_common.consumers import watch_rpc_dead_letters  # consumers imports this module
            self._rpc_dead_letters = self.container.spawn_managed_thread(functools.partial(
                watch_rpc_dead_letters, self.container.config, self.container.service_name, self.region))

    def stop(self) -> None:
        if self._rpc_dead_letters is not None:
            self._rpc_dead_letters.kill()

    kill = stop

    def worker_setup(self, worker_ctx: WorkerContext) -> None:
        self.starts[worker_ctx] = time.perf_counter()

    def worker_result(self, worker_ctx: WorkerContext, result: Any = None, exc_info: tuple | None = None) -> None:
        started = self.starts.pop(worker_ctx, None)
        entrypoint = worker_ctx.entrypoint
        labels = (self.container.service_name, entrypoint.method_name, self.region)
        if started is not None:
            ENTRYPOINT_LATENCY.labels(*labels).observe(time.perf_counter() - started)
        ENTRYPOINT_CALLS.labels(*labels).inc()
        if exc_info is not None:
            ENTRYPOINT_ERRORS.labels(*labels, exc_info[0].__name__).inc()

    def get_dependency(self, worker_ctx: WorkerContext) -> "Metrics":
        return self
