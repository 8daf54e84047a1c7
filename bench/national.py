"""The national peak hour on one box: every division of the registry at once.

Runs the catalogue, national reporting, and intake, notifications and reporting for all 14
first-level divisions (each on its own database, on a vhost of its own), with the demo SMTP and SMS
sinks standing in for the gateways. Then, on the same stack and machine:

- baseline: the same rate of HTTP submissions spread over the three first-rollout regions only
  (today's three-region shape, with the other eleven divisions idle beside it);
- national: the same rate spread over all 14 divisions in proportion to their population.

Each prints throughput, p50/p99 submission latency, p99 event lag (submit -> counted in the region's
reporting) and the machine's CPU; then the memory (RSS and PSS) of every process and in total, and
checks that every submission was counted in reporting and notified. Targets (issue: beyond one
machine): p99 < 50 ms, lag p99 < 250 ms, total memory under 6 GB.

    python -m bench.national [--db sqlite|postgresql] [--rate 50] [--seconds 60]
"""
import warnings

warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")

import eventlet  # noqa: E402

eventlet.monkey_patch()

import argparse  # noqa: E402
import os  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import yaml  # noqa: E402

from bench.pipeline import (  # noqa: E402
    REGIONS,
    SEED,
    BenchStack,
    Figures,
    Window,
    bench_service,
    event_lag,
    percentile,
    print_targets,
)
from oss_common.auth import CATALOGUE_ADMIN, issue_token  # noqa: E402
from oss_common.callers import caller_context  # noqa: E402
from oss_common.regions import all_regions  # noqa: E402
from oss_common.rpc import use_broker_permissions  # noqa: E402
from oss_common.supervisor import stop_all  # noqa: E402
from services.notifications.demo_sinks import DemoSinks  # noqa: E402

PORT_BASE = 29000  # clear of bench.pipeline's 28000+
MEMORY_TARGET_BYTES = 6 * 1024 ** 3


def memory(pid):
    """(RSS, PSS) in bytes of one process, from /proc/<pid>/smaps_rollup."""
    values = {}
    with open(f"/proc/{pid}/smaps_rollup", encoding="ascii") as handle:
        for line in handle:
            key, _, rest = line.partition(":")
            if key in ("Rss", "Pss"):
                values[key] = int(rest.split()[0]) * 1024
    return values["Rss"], values["Pss"]


def broker_pid():
    """The RabbitMQ node's Erlang VM on this machine (None when the broker runs elsewhere)."""
    found = subprocess.run(["pgrep", "-f", "beam.smp.*rabbit"], capture_output=True, text=True).stdout.split()
    return int(found[0]) if found else None


def start_all(stack, slugs, sinks):
    """The catalogue (loaded with the seed), then the 14 divisions' services and national reporting."""
    stack.start("catalogue")
    with stack.rpc(caller=caller_context(issue_token(stack.signing_key, CATALOGUE_ADMIN, "bench"))) as cluster:
        cluster.catalogue.load_catalogue(yaml.safe_load(SEED.read_text(encoding="utf-8")))
    stack.intakes, stack.reporting, notifications = {}, {}, {}
    for slug in slugs:  # started a division at a time: 42 interpreters starting at once thrash two cores
        stack.intakes[slug] = stack.start("intake", region=slug, wait=False)
        notifications[slug] = stack.start("notifications", region=slug, wait=False, **sinks.settings())
        stack.reporting[slug] = stack.start("reporting", region=slug, wait=False)
        for process in (stack.intakes[slug], notifications[slug], stack.reporting[slug]):
            process.wait_healthy(timeout=300)
        print(f"  {slug} up", flush=True)
    national = stack.start("reporting", national=True, REGIONS=",".join(slugs))
    return notifications, national


def messages_sent(store):
    return sum(1 for line in Path(store).read_text(encoding="utf-8").splitlines() if line.strip()) \
        if Path(store).exists() else 0


def wait_notified(store, expected, timeout=120):
    deadline = time.monotonic() + timeout
    while messages_sent(store) < expected and time.monotonic() < deadline:
        eventlet.sleep(0.5)
    return messages_sent(store)


def run_load(stack, figures, name, service, rate, seconds, regions, weights=None):
    pids = [process.process.pid for process in (*stack.intakes.values(), *stack.reporting.values())]
    window = Window(pids)
    achieved, latencies, bus_lags, reporting_lags = event_lag(stack, rate, seconds, service, regions, weights)
    figures.add(f"{name}: submission", achieved, latencies, f"{len(latencies)} submissions; "
                "service CPU of every intake and reporting", window=window.close())
    figures.add(f"  {name}: event lag submit -> bus", None, bus_lags, f"{len(bus_lags)} events")
    figures.add(f"  {name}: event lag submit -> reporting", None, reporting_lags, f"{len(reporting_lags)} events")
    return len(latencies), latencies, reporting_lags


def print_memory(processes):
    print(f"\n{'process':<32} {'RSS':>10} {'PSS':>10}")
    total_rss = total_pss = 0
    for name, pid in processes:
        rss, pss = memory(pid)
        total_rss, total_pss = total_rss + rss, total_pss + pss
        print(f"{name:<32} {rss / 2 ** 20:>8.0f} MB {pss / 2 ** 20:>8.0f} MB")
    print(f"{'total':<32} {total_rss / 2 ** 20:>8.0f} MB {total_pss / 2 ** 20:>8.0f} MB")
    return total_rss, total_pss


def main(argv=None):
    use_broker_permissions()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--rate", type=float, default=50.0, help="submissions per second (default 50)")
    parser.add_argument("--seconds", type=float, default=60.0, help="length of each load run (default 60)")
    args = parser.parse_args(argv)
    regions = all_regions()
    slugs = [region.slug for region in regions]
    weights = [region.population or 1 for region in regions]
    service = bench_service()
    figures = Figures()
    with tempfile.TemporaryDirectory(prefix="oss-bench-national-") as workdir, BenchStack(args.db, workdir) as stack:
        stack.port = PORT_BASE
        sinks = DemoSinks(Path(workdir) / "messages.jsonl", smtp_port=PORT_BASE - 2, http_port=PORT_BASE - 1).start()
        try:
            print(f"national bench on {args.db}, {len(slugs)} divisions, vhost {stack.vhost}", flush=True)
            started = time.monotonic()
            notifications, national = start_all(stack, slugs, sinks)
            print(f"  {len(stack.processes)} service processes up in {time.monotonic() - started:.0f} s", flush=True)
            filed = 0
            count, _, _ = run_load(stack, figures, "baseline, 3 regions", service, args.rate, args.seconds, list(REGIONS))
            filed += count
            count, latencies, lags = run_load(stack, figures, f"national, {len(slugs)} divisions", service,
                                              args.rate, args.seconds, slugs, weights)
            filed += count
            notified = wait_notified(sinks.store.path, filed)
            figures.print_table(f"OSS national peak hour ({args.db}, {os.cpu_count()} cores, {len(slugs)} divisions)")
            processes = [(process.name, process.process.pid) for process in stack.processes]
            processes.append(("demo SMTP/SMS sinks", sinks.process.pid))
            total_rss, total_pss = print_memory(processes)
            broker = broker_pid()
            if broker is not None:
                rss, pss = memory(broker)
                print(f"{'RabbitMQ node (whole node)':<32} {rss / 2 ** 20:>8.0f} MB {pss / 2 ** 20:>8.0f} MB")
                total_rss, total_pss = total_rss + rss, total_pss + pss
                print(f"{'total with the broker':<32} {total_rss / 2 ** 20:>8.0f} MB {total_pss / 2 ** 20:>8.0f} MB")
            print(f"\nnotified: {notified} messages for {filed} submissions (each asked for one SMS)")
        finally:
            sinks.stop()
            stop_all(stack.processes)  # side by side, not one after another on the way out
    submit_p99 = percentile(latencies, 0.99) * 1000
    lag_p99 = percentile(lags, 0.99) * 1000
    targets = [
        (f"p99 submission latency < 50 ms at {args.rate:g}/s over {len(slugs)} divisions", submit_p99 < 50, f"{submit_p99:.1f} ms"),
        ("event lag (submit -> counted in reporting) p99 < 250 ms", lag_p99 < 250, f"{lag_p99:.1f} ms"),
        ("total memory (PSS, with the broker) < 6 GB", total_pss < MEMORY_TARGET_BYTES, f"{total_pss / 2 ** 30:.2f} GB"),
        ("every submission counted in reporting", len(lags) == len(latencies), f"{len(lags)} of {len(latencies)}"),
        ("every submission notified", notified >= filed, f"{notified} of {filed}"),
    ]
    print_targets(targets)
    return 0


if __name__ == "__main__":
    sys.exit(main())
