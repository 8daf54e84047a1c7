"""`oss status`: each service process of a deployment, up or down, its queues (events waiting, retrying
with their back-off's ceiling, dead-lettered) and its outbox backlog.

It asks what an operator could ask by hand: the process's `/health`, the broker (a passive
declare of each queue, which creates nothing) and the process's `/metrics`.
"""
from dataclasses import dataclass, field

import requests
from amqp.exceptions import NotFound
from kombu import Connection
from prometheus_client.parser import text_string_to_metric_families

from oss_common.broker import ensure_connected
from oss_common.config import setting
from oss_common.consumers import event_handlers
from oss_common.failures import DEFAULT_RETRY_CEILING_SECONDS
from oss_common.service_kinds import service_class, service_config
from oss_common.supervisor import service_process


@dataclass
class QueueDepth:
    name: str
    messages: int | None  # None: the queue does not exist (the service never ran here)
    consumers: int | None = None
    ceiling: float | None = None  # a retry queue's longest back-off (RETRY_CEILING_SECONDS)


@dataclass
class ProcessStatus:
    name: str
    http_port: int
    metrics_port: int | None
    up: bool
    rpc: QueueDepth | None = None
    events: list = field(default_factory=list)
    dead: list = field(default_factory=list)
    retrying: list = field(default_factory=list)
    outbox_pending: float | None = None

    @property
    def dead_messages(self):
        return _total(self.dead)

    @property
    def retrying_messages(self):
        return _total(self.retrying)


def _total(queues):
    counts = [queue.messages for queue in queues if queue.messages is not None]
    return sum(counts) if counts else None


def event_queue_names(cls: type) -> list[str]:
    """`<service>.<suffix>` of each event handler the service class declares."""
    return sorted({f"{cls.name}.{handler.queue_suffix}" for handler in event_handlers(cls)})


def queue_depth(connection, name: str) -> "QueueDepth":
    channel = connection.channel()
    try:
        declared = channel.queue_declare(queue=name, passive=True)
        return QueueDepth(name, declared.message_count, declared.consumer_count)
    except NotFound:
        return QueueDepth(name, None)
    finally:
        if channel.is_open:
            channel.close()


def metric_value(text: str, name: str) -> float | None:
    """Sum of a metric's samples in a /metrics page (None when the page does not have it)."""
    values = [sample.value for family in text_string_to_metric_families(text)
              for sample in family.samples if sample.name == name]
    return sum(values) if values else None


def metric_by_label(text: str, name: str, label: str) -> dict:
    """A metric's samples in a /metrics page by the value of one of their labels."""
    return {sample.labels.get(label): sample.value for family in text_string_to_metric_families(text)
            for sample in family.samples if sample.name == name}


def process_status(process, cls, connection, host, timeout, retry_ceiling=None):
    """`retry_ceiling`: RETRY_CEILING_SECONDS as the process's configuration gives it, shown where
    the process does not say its own (`oss_event_retry_ceiling_seconds`: it is down)."""
    status = ProcessStatus(process.name, int(process.http_port),
                           int(process.metrics_port) if process.metrics_port else None, up=False)
    try:
        status.up = requests.get(f"http://{host}:{status.http_port}/health", timeout=timeout).status_code == 200
    except requests.RequestException:
        status.up = False
    names = event_queue_names(cls)
    status.retrying = [QueueDepth(f"{name}.retry", None, ceiling=retry_ceiling) for name in names]
    if connection is not None:
        status.rpc = queue_depth(connection, f"rpc-{cls.name}")
        status.dead.append(queue_depth(connection, f"rpc-{cls.name}.dead"))  # requests that could not be read
        for name, retrying in zip(names, status.retrying):
            status.events.append(queue_depth(connection, name))
            status.dead.append(queue_depth(connection, f"{name}.dead"))
            depth = queue_depth(connection, retrying.name)
            retrying.messages, retrying.consumers = depth.messages, depth.consumers
    if status.metrics_port:
        try:
            page = requests.get(f"http://{host}:{status.metrics_port}/metrics", timeout=timeout)
            status.outbox_pending = metric_value(page.text, "oss_outbox_pending_events")
            ceilings = metric_by_label(page.text, "oss_event_retry_ceiling_seconds", "queue")
            for retrying in status.retrying:
                retrying.ceiling = ceilings.get(retrying.name, retrying.ceiling)
        except requests.RequestException:
            pass
    return status


def deployment_status(members: list[tuple], amqp_uri: str, host: str = "127.0.0.1", timeout: float = 2.0) -> list:
    """Statuses of the (kind, region) processes; the broker's part is left out when it is away."""
    connection = Connection(amqp_uri, connect_timeout=timeout)
    try:
        ensure_connected(connection)
    except Exception:  # noqa: BLE001 - status still reports the processes without the broker
        connection = None
    try:
        return [process_status(service_process(kind, region), service_class(kind, region), connection, host, timeout,
                               retry_ceiling=setting(service_config(kind, region), "RETRY_CEILING_SECONDS",
                                                     DEFAULT_RETRY_CEILING_SECONDS, float))
                for kind, region in members]
    finally:
        if connection is not None:
            connection.release()


def _count(value):
    return "-" if value is None else f"{value:g}"


def _retrying(queues):
    """Per retry queue: how many wait out a back-off, and the longest back-off (`7 <=60s`)."""
    shown = []
    for queue in queues:
        ceiling = "" if queue.ceiling is None else f" <={queue.ceiling:g}s"
        label = f"{queue.name.split('.')[1]}: " if len(queues) > 1 else ""
        shown.append(f"{label}{_count(queue.messages)}{ceiling}")
    return ", ".join(shown) or "-"


def format_status(statuses: list, broker_reachable: bool = True) -> str:
    lines = [f"{'SERVICE':<24} {'HTTP':>5}  {'STATE':<5}  {'RPC QUEUE':<14} {'EVENT QUEUES':<28} {'RETRY (CEILING)':<15} "
             f"{'DEAD':>5} {'OUTBOX':>7}"]
    for status in statuses:
        rpc = "-" if status.rpc is None or status.rpc.messages is None else \
            f"{status.rpc.messages} ({status.rpc.consumers} cons.)"
        events = ", ".join(f"{queue.name.split('.', 1)[1]}: {_count(queue.messages)}" for queue in status.events) or "-"
        dead = _count(status.dead_messages)
        lines.append(f"{status.name:<24} {status.http_port:>5}  {'up' if status.up else 'DOWN':<5}  {rpc:<14} "
                     f"{events:<28} {_retrying(status.retrying):<15} {dead:>5} {_count(status.outbox_pending):>7}")
    if not broker_reachable:
        lines.append("(the broker did not answer: queue columns are empty)")
    return "\n".join(lines)
