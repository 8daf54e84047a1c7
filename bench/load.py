"""A steady load of submissions over HTTP, spread over regions by weight, every one recorded (region,
when it was sent, how long it took, its answer): what the cluster fault test (tests/cluster/) drives
while a broker node goes away."""
import time
from dataclasses import dataclass

import eventlet
import requests
from sqlalchemy import create_engine, text

from bench.pipeline import percentile, spread  # noqa: F401 - percentile: the benches' one, for this module's callers


@dataclass
class Submission:
    region: str
    sent_at: float  # time.monotonic() when it was sent
    latency: float  # seconds until its answer (or its failure)
    status: int  # HTTP status; 0 when no answer came (connection refused, timeout)
    tracking_number: str | None = None


@dataclass
class Desk:
    """Where one region's submissions go: its intake's URL, an operator's headers, a valid body."""
    url: str
    headers: dict
    body: dict


def drive(desks, rate, seconds, weights=None, concurrency=128, timeout=30.0):
    """Submit at `rate` per second for `seconds`, regions in proportion to `weights` (equal by default);
    returns every Submission, in the order sent."""
    weights = weights or dict.fromkeys(desks, 1)
    total = int(rate * seconds)
    order = spread(list(weights), list(weights.values()), total)
    sessions = {}
    records = []
    pool = eventlet.GreenPool(concurrency)

    def one(region, sent_at):
        session = sessions.get(region)
        if session is None:
            session = sessions[region] = requests.Session()
            session.headers.update(desks[region].headers)
        status, number = 0, None
        try:
            response = session.post(desks[region].url, json=desks[region].body, timeout=timeout)
            status = response.status_code
            if status == 201:
                number = response.json()["tracking_number"]
        except requests.RequestException:
            pass
        records.append(Submission(region, sent_at, time.monotonic() - sent_at, status, number))

    interval = 1.0 / rate
    start = time.monotonic()
    for index in range(total):
        delay = start + index * interval - time.monotonic()
        if delay > 0:
            eventlet.sleep(delay)
        pool.spawn(one, order[index], time.monotonic())
    pool.waitall()
    for session in sessions.values():
        session.close()
    return sorted(records, key=lambda record: record.sent_at)


def count(database_url, statement):
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            return connection.execute(text(statement)).scalar()
    finally:
        engine.dispose()


def wait_until(predicate, timeout, what, interval=0.5):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {timeout:.0f}s for {what}")
        time.sleep(interval)
