"""The pipeline benchmark: the bus's own limits, then submissions, relay and event lag, in one run.

    .venv/bin/python -m bench.pipeline [--db sqlite|postgresql] [--quick] [--rounds N]

Prints one table; every ratio compares figures measured in this same run on this machine.
"""
import warnings

warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")

import eventlet  # noqa: E402

eventlet.monkey_patch()

import argparse  # noqa: E402
import contextlib  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from datetime import datetime, timezone  # noqa: E402
from pathlib import Path  # noqa: E402

import requests  # noqa: E402
import yaml  # noqa: E402
from kombu import Connection, Consumer, Producer, Queue, binding  # noqa: E402
from nameko.standalone.rpc import ClusterRpcProxy  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402

from oss_common.auth import CATALOGUE_ADMIN, OPERATOR, SigningKey, issue_token, new_key_pair  # noqa: E402
from oss_common.broker import ensure_shared_exchanges  # noqa: E402
from oss_common.callers import caller_context  # noqa: E402
from oss_common.config import PROJECT_ROOT  # noqa: E402
from oss_common.events import EVENTS_EXCHANGE, make_event, utc_now  # noqa: E402
from oss_common.regions import get_region  # noqa: E402
from oss_common.rpc import use_broker_permissions  # noqa: E402
from oss_common.supervisor import ServiceProcess  # noqa: E402

BROKER = os.environ.get("BENCH_BROKER", "amqp://guest:guest@127.0.0.1:5672")
POSTGRES_ADMIN_URL = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
REGIONS = ("jizzakh", "namangan", "fergana")
SEED = PROJECT_ROOT / "services" / "catalogue" / "seed" / "services.yml"


def percentile(values, fraction):
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def machine_cpu():
    """(busy, total) jiffies of all cores since boot, from /proc/stat."""
    with open("/proc/stat", encoding="ascii") as handle:
        values = [int(value) for value in handle.readline().split()[1:9]]
    return sum(values) - values[3] - values[4], sum(values)  # idle and iowait are not busy


def process_cpu_seconds(pids):
    """User + system CPU seconds the processes have used so far."""
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


class Window:
    """CPU use over one measurement: how busy the whole machine was (all cores, /proc/stat), and how
    many CPU seconds the given service processes used."""

    def __init__(self, pids=()):
        self.pids = list(pids)
        self._machine = machine_cpu()
        self._cpu = process_cpu_seconds(self.pids)
        self.busy = self.cpu_seconds = None

    def close(self):
        busy, total = (now - then for now, then in zip(machine_cpu(), self._machine))
        self.busy = busy / total if total else None
        self.cpu_seconds = process_cpu_seconds(self.pids) - self._cpu if self.pids else None
        return self

    @classmethod
    def merged(cls, windows):
        """Several closed windows as one: the mean busy share, the CPU seconds summed."""
        windows = list(windows)
        merged = cls()
        merged.busy = statistics.mean(window.busy for window in windows)
        seconds = [window.cpu_seconds for window in windows]
        merged.cpu_seconds = None if None in seconds else sum(seconds)
        return merged


class Figures:
    def __init__(self):
        self.rows = []

    def add(self, name, throughput=None, latencies=None, note="", window=None, calls=None):
        """A row; with a closed `window`, the machine's busy share and the service CPU per call
        (over `calls`, by default one per latency)."""
        median = statistics.median(latencies) * 1000 if latencies else None
        p99 = percentile(latencies, 0.99) * 1000 if latencies else None
        machine = f"{window.busy:.0%}" if window is not None and window.busy is not None else "-"
        calls = calls or (len(latencies) if latencies else None)
        if window is not None and window.cpu_seconds is not None and calls:
            cost = f"service CPU {window.cpu_seconds / calls * 1000:.2f} ms each"
            note = f"{note}; {cost}" if note else cost
        self.rows.append((name, throughput, median, p99, machine, note))
        print(f"  measured {name}: {_fmt(throughput, '/s')} p50 {_fmt(median, ' ms')} p99 {_fmt(p99, ' ms')} "
              f"machine CPU {machine} {note}", flush=True)

    def print_table(self, title):
        print(f"\n{title}")
        print(f"{'measurement':<48} {'throughput':>12} {'p50':>10} {'p99':>10} {'machine':>8}  note")
        for name, throughput, median, p99, machine, note in self.rows:
            print(f"{name:<48} {_fmt(throughput, '/s'):>12} {_fmt(median, ' ms'):>10} {_fmt(p99, ' ms'):>10} {machine:>8}  {note}")


def print_targets(targets):
    """(name, met, value) rows, each marked met or MISSED."""
    print("\ntargets")
    for name, met, value in targets:
        print(f"  [{'met' if met else 'MISSED'}] {name}: {value}")


def _fmt(value, unit):
    return "-" if value is None else f"{value:,.1f}{unit}"


# ---------------------------------------------------------------- environment


class BenchStack:
    """A vhost of its own and the services on fresh databases, like the integration tests."""

    def __init__(self, backend, workdir):
        self.backend = backend
        self.workdir = Path(workdir)
        self.vhost = f"oss-bench-{uuid.uuid4().hex[:6]}"
        self.amqp_uri = f"{BROKER}/{self.vhost}"
        self.processes = []
        self.databases = []
        self.urls = {}
        self.intake_db = {}
        self.port = 28000
        # Every API but /health, and every RPC that changes state, needs a bearer token of the bench's issuer.
        private, public = new_key_pair()
        self.signing_key = SigningKey.from_jwk(private)
        self.jwks = self.workdir / "jwks.json"
        self.jwks.write_text(json.dumps({"keys": [public]}), encoding="utf-8")

    def operator_token(self, region_slug):
        """An operator of the region at all its centres, as the submissions' caller."""
        centres = [centre.code for centre in get_region(region_slug).centres]
        return issue_token(self.signing_key, OPERATOR, f"bench-{region_slug}", region=region_slug, centres=centres)

    def operator_headers(self, region_slug):
        return {"Authorization": f"Bearer {self.operator_token(region_slug)}"}

    def operator_context(self, region_slug):
        """RPC context data: calls made as the region's operator."""
        return caller_context(self.operator_token(region_slug))

    def __enter__(self):
        subprocess.run(["rabbitmqctl", "add_vhost", self.vhost], check=True, capture_output=True)
        subprocess.run(["rabbitmqctl", "set_permissions", "-p", self.vhost, "guest", ".*", ".*", ".*"], check=True, capture_output=True)
        ensure_shared_exchanges(self.amqp_uri)
        # What a deployment's definitions give every region: a queue for its application events, so
        # the relay (which publishes mandatory) never holds the submissions' events as unroutable.
        readers = Queue("bench.application-events", bindings=[binding(EVENTS_EXCHANGE, routing_key="*.application.#")],
                        durable=True, auto_delete=False, queue_arguments={"x-queue-type": "quorum"})
        with Connection(self.amqp_uri) as connection:
            readers(connection.channel()).declare()
        return self

    def __exit__(self, *exc):
        for process in reversed(self.processes):
            process.stop()
        subprocess.run(["rabbitmqctl", "delete_vhost", self.vhost], capture_output=True)
        if self.databases:
            engine = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
            with engine.connect() as connection:
                for name in self.databases:
                    connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            engine.dispose()

    def database(self, name):
        if self.backend == "sqlite":
            return f"sqlite:///{self.workdir / (name + '.db')}"
        database = f"oss_bench_{name}_{uuid.uuid4().hex[:6]}"
        engine = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with engine.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{database}"'))
        engine.dispose()
        self.databases.append(database)
        return POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + "/" + database

    def start(self, service, region=None, database_url=None, national=False, wait=True, **env):
        self.port += 1
        http_port = self.port
        self.port += 1
        environment = {"AMQP_URI": self.amqp_uri, "HTTP_PORT": http_port, "METRICS_PORT": self.port,
                       "DATABASE_URL": database_url or self.database(f"{service}_{region or 'national'}"),
                       "LOG_LEVEL": "WARNING", "OSS_VAR_DIR": str(self.workdir), "AUTH_JWKS": str(self.jwks)}
        environment.update(env)
        process = ServiceProcess(service, region=region, env=environment, http_port=http_port, national=national,
                                 log_path=self.workdir / "logs" / f"{service}_{region or 'national'}_{len(self.processes)}.log")
        process.database_url = environment["DATABASE_URL"]
        process.start()
        self.processes.append(process)
        if wait:
            process.wait_healthy(timeout=120)
        return process

    def rpc(self, timeout=60, caller=None):
        return ClusterRpcProxy({"AMQP_URI": self.amqp_uri}, timeout=timeout, context_data=caller)


def sample_submission(region_slug, service):
    region = get_region(region_slug)
    attributes = {}
    for attribute in service["attributes"]:
        if attribute.get("required"):
            attributes[attribute["code"]] = {"string": "v", "text": "t", "number": 1, "datetime": "2026-01-15",
                                             "singlevaluelist": (attribute.get("values") or [{"key": "x"}])[0]["key"],
                                             "multivaluelist": [(attribute.get("values") or [{"key": "x"}])[0]["key"]]}[attribute["datatype"]]
    return {
        "service_code": service["code"],
        "applicant": {"pinfl": "31234567890123", "full_name": "Bench Applicant", "phone": "+998901234567",
                      "language": "uz", "channel": "sms"},
        "district": region.districts[0].code,
        "documents": [document["code"] for document in service["required_documents"]],
        "attributes": attributes,
    }


def bench_service():
    document = yaml.safe_load(SEED.read_text(encoding="utf-8"))
    return next(s for s in document["services"] if s.get("state") == "published" and s["regions"] == "all" and s["required_documents"])


# ---------------------------------------------------------------- measurements


def run_clients(clients, total, call, pids=()):
    """`total` calls spread over `clients` green threads; returns (throughput, latencies, Window
    of the service processes `pids`)."""
    latencies = []
    per_client = total // clients

    def client(index):
        with call.session() as session:
            for _ in range(per_client):
                started = time.perf_counter()
                session(index)
                latencies.append(time.perf_counter() - started)

    pool = eventlet.GreenPool(clients)
    window = Window(pids)
    started = time.perf_counter()
    for index in range(clients):
        pool.spawn(client, index)
    pool.waitall()
    elapsed = time.perf_counter() - started
    return len(latencies) / elapsed, latencies, window.close()


class RpcCall:
    def __init__(self, amqp_uri, service, method, args_for, context_data=None):
        self.amqp_uri, self.service, self.method, self.args_for = amqp_uri, service, method, args_for
        self.context_data = context_data

    @contextlib.contextmanager
    def session(self):
        with ClusterRpcProxy({"AMQP_URI": self.amqp_uri}, timeout=60, context_data=self.context_data) as cluster:
            method = getattr(getattr(cluster, self.service), self.method)
            yield lambda index: method(*self.args_for(index))


class HttpCall:
    def __init__(self, url, body_for, headers):
        self.url, self.body_for, self.headers = url, body_for, headers

    @contextlib.contextmanager
    def session(self):
        with requests.Session() as http:
            http.headers.update(self.headers)

            def call(index):
                response = http.post(self.url, json=self.body_for(index), timeout=60)
                if response.status_code != 201:
                    raise RuntimeError(f"submission answered {response.status_code}: {response.text[:200]}")
            yield call


def raw_publish_with_confirms(amqp_uri, count):
    """kombu persistent publish, one confirm per message, on `oss.events`; then consume with acks."""
    queue = Queue(f"bench.raw.{uuid.uuid4().hex[:6]}", bindings=[binding(EVENTS_EXCHANGE, routing_key="bench.raw.*")],
                  durable=True, auto_delete=False, queue_arguments={"x-queue-type": "quorum"})
    body = make_event("application.submitted", "bench", "bench", {"tracking_number": "XX-2026-000000", "pad": "x" * 600})
    with Connection(amqp_uri, transport_options={"confirm_publish": True}) as connection:
        channel = connection.channel()
        EVENTS_EXCHANGE(channel).declare()
        bound = queue(channel)
        bound.declare()
        producer = Producer(channel, exchange=EVENTS_EXCHANGE, serializer="json")
        started = time.perf_counter()
        for _ in range(count):
            producer.publish(body, routing_key="bench.raw.ping", delivery_mode=2, retry=False)
        publish_rate = count / (time.perf_counter() - started)
        received = 0

        def on_message(_body, message):
            nonlocal received
            received += 1
            message.ack()

        started = time.perf_counter()
        with Consumer(connection.channel(), queues=[queue], callbacks=[on_message], accept=["json"], prefetch_count=100):
            while received < count:
                connection.drain_events(timeout=10)
        consume_rate = count / (time.perf_counter() - started)
        bound.delete()
    return publish_rate, consume_rate


def relay_throughput(stack, region, count):
    """Stop one intake, queue `count` events in its outbox, start it: events relayed per second.

    A queue is bound for the events first, as for the raw baseline: the relay publishes mandatory
    and keeps what no queue would take."""
    intake = stack.intakes[region]
    intake.stop()
    sink = Queue(f"bench.relay.{uuid.uuid4().hex[:6]}", durable=True, auto_delete=False,
                 bindings=[binding(EVENTS_EXCHANGE, routing_key=f"{region}.application.bench")],
                 queue_arguments={"x-queue-type": "quorum"})
    with Connection(stack.amqp_uri) as connection:
        sink(connection.channel()).declare()
    engine = create_engine(intake.database_url)
    with engine.begin() as connection:
        rows = []
        for index in range(count):
            event = make_event("application.bench", region, f"intake_{region}", {"tracking_number": f"B-{index}", "pad": "x" * 600})
            rows.append({"event_id": event["event_id"], "event_type": event["type"], "routing_key": f"{region}.application.bench",
                         "payload": event, "created_at": utc_now()})
        from services.intake.models import OutboxEvent

        connection.execute(OutboxEvent.__table__.insert(), rows)
    restarted = stack.start("intake", region=region, database_url=intake.database_url, wait=False)
    stack.intakes[region] = restarted
    # The clock starts at the first batch seen sent, not at process start (interpreter start-up and
    # migrations are not the relay's work); the events of that first batch are not counted.
    first_seen = None
    while True:
        with engine.connect() as connection:
            pending = connection.execute(text("SELECT count(*) FROM outbox WHERE sent_at IS NULL AND routing_key = :key"),
                                         {"key": f"{region}.application.bench"}).scalar()
        if pending < count and first_seen is None:
            first_seen = (time.perf_counter(), pending)
        if pending == 0:
            break
        eventlet.sleep(0.01)
    elapsed = time.perf_counter() - first_seen[0]
    engine.dispose()
    with Connection(stack.amqp_uri) as connection:
        sink(connection.channel()).delete()
    restarted.wait_healthy()
    return first_seen[1] / elapsed, elapsed


def event_lag(stack, rate, seconds, service, regions=REGIONS, weights=None):
    """Submissions at `rate`/s across `regions` over HTTP (in turn, or spread in proportion to
    `weights`); returns (achieved rate, submission latencies, lag to the bus, lag to regional reporting).

    Lag to the bus: from the submit call to the event's arrival at a consumer of
    `*.application.submitted`. Lag to reporting: from the submit call to the moment
    reporting_<region> recorded the event as applied (`processed_events.processed_at`, written in the
    transaction that counts the application; same machine, so the same wall clock)."""
    submitted_at = {}  # tracking number -> (perf_counter, wall clock) at the submit call
    arrived_at = {}  # tracking number -> perf_counter at the listener (often before the HTTP answer)
    event_of = {}  # event id -> tracking number, as the listener saw them
    queue = Queue(exclusive=True, auto_delete=True, bindings=[binding(EVENTS_EXCHANGE, routing_key="*.application.submitted")])
    submission_latencies = []
    done = eventlet.event.Event()

    def listen():
        with Connection(stack.amqp_uri) as connection:
            def on_message(body, message):
                number = body["data"]["tracking_number"]
                arrived_at[number] = time.perf_counter()
                event_of[body["event_id"]] = number
                message.ack()
            with Consumer(connection.channel(), queues=[queue], callbacks=[on_message], accept=["json"]):
                ready.send(True)
                while not done.ready():
                    try:
                        connection.drain_events(timeout=0.5)
                    except TimeoutError:
                        if done.ready():
                            break

    ready = eventlet.event.Event()
    listener = eventlet.spawn(listen)
    ready.wait()
    sessions = {region: requests.Session() for region in regions}
    for region in regions:
        sessions[region].headers.update(stack.operator_headers(region))
    bodies = {region: sample_submission(region, service) for region in regions}
    order = spread(regions, weights or [1] * len(regions), int(rate * seconds))
    pool = eventlet.GreenPool(64)

    def one(region):
        started, wall = time.perf_counter(), time.time()
        response = sessions[region].post(f"{stack.intakes[region].url}/api/v1/applications", json=bodies[region], timeout=60)
        submission_latencies.append(time.perf_counter() - started)
        if response.status_code != 201:
            raise RuntimeError(f"submission answered {response.status_code}: {response.text[:200]}")
        submitted_at[response.json()["tracking_number"]] = (started, wall)

    interval = 1.0 / rate
    start = time.perf_counter()
    for index in range(int(rate * seconds)):
        target = start + index * interval
        delay = target - time.perf_counter()
        if delay > 0:
            eventlet.sleep(delay)
        pool.spawn(one, order[index])
    pool.waitall()
    achieved = len(submission_latencies) / (time.perf_counter() - start)
    reporting_lags = wait_counted_in_reporting(stack, submitted_at, event_of)
    done.send(True)
    listener.wait()
    lags = [arrived_at[number] - started for number, (started, _wall) in submitted_at.items() if number in arrived_at]
    return achieved, submission_latencies, lags, reporting_lags


def spread(regions, weights, count):
    """`count` regions in a fixed interleaved order, each in proportion to its weight (the region
    furthest behind its share goes next), so any stretch of the run carries every region's share."""
    total = sum(weights)
    taken = [0] * len(regions)
    order = []
    for index in range(1, count + 1):
        lag = [index * weight / total - done for weight, done in zip(weights, taken)]
        chosen = lag.index(max(lag))
        taken[chosen] += 1
        order.append(regions[chosen])
    return order


def wait_counted_in_reporting(stack, submitted_at, event_of, timeout=60.0):
    """Lags from submission to being applied by each region's reporting, once all are applied."""
    engines = {region: create_engine(process.database_url) for region, process in stack.reporting.items()}
    deadline = time.monotonic() + timeout
    applied = {}
    try:
        while time.monotonic() < deadline:
            applied = {}
            for engine in engines.values():
                with engine.connect() as connection:
                    applied.update(connection.execute(text(
                        "SELECT event_id, processed_at FROM processed_events WHERE event_type = 'application.submitted'")).all())
            if len(applied) >= len(submitted_at) and len(event_of) >= len(submitted_at):
                break
            eventlet.sleep(0.5)
    finally:
        for engine in engines.values():
            engine.dispose()
    lags = []
    for event_id, processed_at in applied.items():
        number = event_of.get(event_id)
        if number in submitted_at:
            if isinstance(processed_at, str):
                processed_at = datetime.fromisoformat(processed_at)
            if processed_at.tzinfo is None:
                processed_at = processed_at.replace(tzinfo=timezone.utc)
            lags.append(processed_at.timestamp() - submitted_at[number][1])
    if len(lags) < len(submitted_at):
        print(f"  WARNING: only {len(lags)} of {len(submitted_at)} submissions counted in reporting", flush=True)
    return lags


def scaling(stack, body, clients, total, extra_processes):
    """RPC submissions to Jizzakh at `clients` clients with `extra_processes` more intake processes
    of the region sharing its RPC queue and database."""
    extras = [stack.start("intake", region="jizzakh", database_url=stack.intakes["jizzakh"].database_url, wait=False)
              for _ in range(extra_processes)]
    try:
        for process in extras:
            process.wait_healthy(timeout=120)
        call = RpcCall(stack.amqp_uri, "intake_jizzakh", "submit_application", lambda index: (body,),
                       stack.operator_context("jizzakh"))
        return run_clients(clients, total, call, pids=[stack.intakes["jizzakh"].process.pid, *(process.process.pid for process in extras)])
    finally:
        for process in extras:
            process.stop()


def three_regions(stack, bodies, clients, total):
    """RPC submissions spread over the three regions' intakes at once (client i calls region i mod 3)."""

    class SpreadCall:
        @contextlib.contextmanager
        def session(self):
            with contextlib.ExitStack() as clusters:
                intakes = {region: getattr(clusters.enter_context(stack.rpc(caller=stack.operator_context(region))),
                                           f"intake_{region}") for region in REGIONS}

                def call(index):
                    region = REGIONS[index % len(REGIONS)]
                    intakes[region].submit_application(bodies[region])
                yield call

    return run_clients(clients, total, SpreadCall(), pids=[process.process.pid for process in stack.intakes.values()])


# ---------------------------------------------------------------- main


def main(argv=None):
    use_broker_permissions()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--quick", action="store_true", help="fewer calls, for a smoke run")
    parser.add_argument("--rounds", type=int, default=3,
                        help="rounds of no-op, RPC and HTTP measurements, back to back at each concurrency (default 3)")
    args = parser.parse_args(argv)
    scale = 0.25 if args.quick else 1.0
    figures = Figures()
    service = bench_service()
    with tempfile.TemporaryDirectory(prefix="oss-bench-") as workdir, BenchStack(args.db, workdir) as stack:
        print(f"bench on {args.db}, vhost {stack.vhost}, work dir {workdir}", flush=True)
        noop = subprocess.Popen([sys.executable, "-m", "bench.noop_service"], cwd=PROJECT_ROOT,
                                env=dict(os.environ, AMQP_URI=stack.amqp_uri))
        catalogue = stack.start("catalogue")
        with stack.rpc(caller=caller_context(issue_token(stack.signing_key, CATALOGUE_ADMIN, "bench"))) as cluster:
            cluster.catalogue.load_catalogue(yaml.safe_load(SEED.read_text(encoding="utf-8")))
        stack.intakes = {region: stack.start("intake", region=region, wait=False) for region in REGIONS}
        for process in stack.intakes.values():
            process.wait_healthy(timeout=120)
        del catalogue
        try:
            # No-op RPC, RPC submissions and HTTP submissions at one concurrency are measured back to
            # back, in `rounds` rounds: each ratio pairs figures taken within seconds of each other,
            # and the table gives medians over the rounds (the machine is shared, and one disturbed
            # baseline would otherwise move a ratio by half).
            body = sample_submission("jizzakh", service)
            jizzakh = stack.intakes["jizzakh"].process
            url = f"{stack.intakes['jizzakh'].url}/api/v1/applications"
            calls = {
                "noop": (RpcCall(stack.amqp_uri, "bench_noop", "ping", lambda index: ({"n": index},)), noop.pid),
                "rpc": (RpcCall(stack.amqp_uri, "intake_jizzakh", "submit_application", lambda index: (body,),
                                stack.operator_context("jizzakh")), jizzakh.pid),
                "http": (HttpCall(url, lambda index: body, stack.operator_headers("jizzakh")), jizzakh.pid),
            }
            runs = {(kind, clients): [] for kind in calls for clients in (1, 8, 32)}
            for round_ in range(args.rounds):
                print(f"  round {round_ + 1} of {args.rounds}", flush=True)
                for clients in (1, 8, 32):
                    total = max(clients * 10, int(2000 * scale) if clients > 1 else int(500 * scale))
                    for kind, (call, pid) in calls.items():
                        runs[(kind, clients)].append(run_clients(clients, total, call, pids=[pid]))
            rates = {key: statistics.median(rate for rate, _, _ in measured) for key, measured in runs.items()}
            ratios = {key: statistics.median(rate / noop_rate for (rate, _, _), (noop_rate, _, _)
                                             in zip(measured, runs[("noop", key[1])]))
                      for key, measured in runs.items() if key[0] != "noop"}
            names = {"noop": "baseline: no-op nameko RPC", "rpc": "submission via RPC", "http": "submission via HTTP"}
            for kind in calls:
                for clients in (1, 8, 32):
                    measured = runs[(kind, clients)]
                    note = f"{ratios[(kind, clients)]:.0%} of no-op RPC" if kind != "noop" else ""
                    figures.add(f"{names[kind]}, {clients} clients", rates[(kind, clients)],
                                [latency for _, latencies, _ in measured for latency in latencies], note,
                                window=Window.merged(window for _, _, window in measured))
            window = Window()
            publish_rate, consume_rate = raw_publish_with_confirms(stack.amqp_uri, int(5000 * scale))
            figures.add("baseline: kombu publish with confirm (persistent)", publish_rate, window=window.close())
            figures.add("baseline: kombu consume with ack", consume_rate)
            total = int(2000 * scale)
            rate, latencies, window = scaling(stack, body, 32, total, extra_processes=1)
            figures.add("scaling: RPC, 32 clients, 2 Jizzakh intakes", rate, latencies,
                        f"x{rate / rates[('rpc', 32)]:.2f} of 1 process", window=window)
            bodies = {region: sample_submission(region, service) for region in REGIONS}
            rate, latencies, window = three_regions(stack, bodies, 33, total)
            figures.add("scaling: RPC, 33 clients over 3 regions", rate, latencies,
                        f"x{rate / rates[('rpc', 32)]:.2f} of 1 region", window=window)
            relay_rate, _ = relay_throughput(stack, "fergana", int(5000 * scale))
            figures.add("outbox relay (events published with confirm)", relay_rate,
                        note=f"{relay_rate / publish_rate:.0%} of raw publish-with-confirm")
            stack.reporting = {region: stack.start("reporting", region=region, wait=False) for region in REGIONS}
            for process in stack.reporting.values():
                process.wait_healthy(timeout=120)
            window = Window([process.process.pid for process in (*stack.intakes.values(), *stack.reporting.values())])
            achieved, submit_latencies, lags, reporting_lags = event_lag(stack, 100, 20 * scale, service)
            figures.add("steady load 100/s over 3 regions: submission", achieved, submit_latencies,
                        "service CPU of the 3 intakes and 3 reportings", window=window.close())
            figures.add("  event lag: submit -> bus consumer", None, lags, f"{len(lags)} events")
            figures.add("  event lag: submit -> counted in reporting", None, reporting_lags, f"{len(reporting_lags)} events")
        finally:
            noop.terminate()
            noop.wait()
    figures.print_table(f"OSS pipeline benchmark ({args.db}, {os.cpu_count()} cores)")
    best_rpc = max(ratios[("rpc", c)] for c in (1, 8, 32))
    lag_p99 = percentile(reporting_lags, 0.99) * 1000
    submit_p99 = percentile(submit_latencies, 0.99) * 1000
    targets = [
        ("submission throughput (RPC) >= 50% of no-op RPC (best concurrency, median of rounds)", best_rpc >= 0.5, f"{best_rpc:.0%}"),
        ("p99 submission latency < 50 ms at 100/s", submit_p99 < 50, f"{submit_p99:.1f} ms"),
        ("event lag (submit -> counted in reporting) p99 < 250 ms at 100/s", lag_p99 < 250, f"{lag_p99:.1f} ms"),
        ("relay >= 80% of raw publish-with-confirm", relay_rate / publish_rate >= 0.8, f"{relay_rate / publish_rate:.0%}"),
    ]
    print_targets(targets)
    return 0


if __name__ == "__main__":
    sys.exit(main())
