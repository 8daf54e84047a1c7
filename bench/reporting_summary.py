"""Reporting summary latency: the pre-aggregated projection against a GROUP BY over raw rows.

    .venv/bin/python -m bench.reporting_summary [--rows 1000000] [--queries 300] [--db sqlite|postgresql|both]

Fills a reporting database with `--rows` applications spread over a year (bulk insert on SQLite,
COPY on PostgreSQL), derives the daily buckets the live projection keeps, then asks the same
summary question (totals, by day, service, district, centre, channel and status for a random
period) of both, in this same run. The projection must stay under 50 ms p99.
"""
import argparse
import io
import os
import random
import sqlite3
import statistics
import tempfile
import time
import uuid
from datetime import date, datetime, timedelta, timezone

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from oss_common.config import PROJECT_ROOT
from oss_common.database import dispose_engines, session_factory, upgrade
from services.reporting import views
from services.intake.domain import AWAITING_DECISION

POSTGRES_ADMIN_URL = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
MIGRATIONS = PROJECT_ROOT / "services" / "reporting" / "migrations"
YEAR_START = date(2025, 1, 1)
TARGET_P99_MS = 50.0
STATUSES = ["submitted", "accepted", "in_review", "approved", "rejected", "issued", "returned_for_correction",
            "resubmitted", "withdrawn"]
STATUS_WEIGHTS = [4, 4, 6, 6, 3, 60, 2, 2, 3]
SERVICES = [f"service-{index:02d}" for index in range(29)]
DISTRICTS = [f"17084{index:02d}" for index in range(15)]
CHANNELS = ["sms", "email", "none"]
DIMENSION_COLUMNS = {"all": "''", "service": "service_code", "district": "district", "centre": "centre",
                     "channel": "channel", "status": "status"}
RAW_BREAKDOWNS = ("service_code", "district", "centre", "channel", "status")


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def generated_rows(count, seed=1):
    rng = random.Random(seed)
    for number in range(count):
        day = YEAR_START + timedelta(days=rng.randrange(365))
        submitted = datetime(day.year, day.month, day.day, rng.randrange(4, 13), rng.randrange(60), tzinfo=timezone.utc)
        district = rng.choice(DISTRICTS)
        status = rng.choices(STATUSES, STATUS_WEIGHTS)[0]
        due = day + timedelta(days=rng.choice((3, 7, 15, 30)))
        decided = status in ("approved", "rejected", "issued")
        decided_at = submitted + timedelta(hours=rng.randrange(1, 24 * 20)) if decided else None
        yield (
            f"JI-{day.year}-{number:07d}", rng.choice(SERVICES), "khokimiyat", district, f"centre-{district}",
            rng.choice(CHANNELS), status, status in AWAITING_DECISION, submitted, day, due, decided_at or submitted,
            ("rejected" if status == "rejected" else "approved") if decided else None, decided_at,
            decided_at.date() if decided else None, (decided_at.date() <= due) if decided else None,
            (decided_at - submitted).total_seconds() if decided else None,
        )


COLUMNS = ("tracking_number, service_code, agency, district, centre, channel, status, is_open, submitted_at, "
           "submitted_day, due_date, changed_at, decision, decided_at, decided_day, decided_on_time, processing_seconds")


def fill_sqlite(url, rows):
    path = make_url(url).database
    connection = sqlite3.connect(path)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=OFF")

    def sqlite_row(row):
        return tuple(value.strftime("%Y-%m-%d %H:%M:%S.%f") if isinstance(value, datetime)
                     else value.isoformat() if isinstance(value, date) else value for value in row)

    batch = []
    for row in rows:
        batch.append(sqlite_row(row))
        if len(batch) == 50_000:
            connection.executemany(f"INSERT INTO application_states ({COLUMNS}) VALUES ({', '.join('?' * 17)})", batch)
            batch.clear()
    if batch:
        connection.executemany(f"INSERT INTO application_states ({COLUMNS}) VALUES ({', '.join('?' * 17)})", batch)
    connection.commit()
    connection.close()


def fill_postgresql(url, rows):
    engine = create_engine(url)
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        buffer = io.StringIO()
        for index, row in enumerate(rows, 1):
            buffer.write("\t".join(r"\N" if value is None else value.isoformat() if isinstance(value, (date, datetime))
                                   else str(value) for value in row) + "\n")
            if index % 100_000 == 0:
                buffer.seek(0)
                cursor.copy_expert(f"COPY application_states ({COLUMNS}) FROM STDIN", buffer)
                buffer = io.StringIO()
        buffer.seek(0)
        cursor.copy_expert(f"COPY application_states ({COLUMNS}) FROM STDIN", buffer)
        raw.commit()
    finally:
        raw.close()
        engine.dispose()


def derive_buckets(url):
    """The daily buckets the live projection maintains event by event, derived here in one pass."""
    engine = create_engine(url)
    with engine.begin() as connection:
        for dimension, column in DIMENSION_COLUMNS.items():
            connection.execute(text(
                f"INSERT INTO daily_counts (day, dimension, value, applications) "
                f"SELECT submitted_day, '{dimension}', {column}, count(*) FROM application_states "
                f"GROUP BY submitted_day{'' if dimension == 'all' else ', ' + column}"
            ))
        buckets = connection.execute(text("SELECT count(*) FROM daily_counts")).scalar_one()
    with engine.connect() as connection:
        connection.execution_options(isolation_level="AUTOCOMMIT").execute(
            text("VACUUM ANALYZE" if engine.dialect.name == "postgresql" else "ANALYZE"))
    engine.dispose()
    return buckets


def raw_summary(session, start, end):
    """The same question, answered by GROUP BYs over the per-application rows."""
    period = {"start": start, "end": end}
    where = "WHERE submitted_day >= :start AND submitted_day <= :end"
    report = {"total": session.execute(text(f"SELECT count(*) FROM application_states {where}"), period).scalar_one(),
              "by_day": session.execute(text(f"SELECT submitted_day, count(*) FROM application_states {where} GROUP BY submitted_day"), period).all()}
    for column in RAW_BREAKDOWNS:
        report[column] = session.execute(
            text(f"SELECT {column}, count(*) FROM application_states {where} GROUP BY {column}"), period).all()
    return report


def periods(count, seed=2):
    rng = random.Random(seed)
    chosen = [(YEAR_START, YEAR_START + timedelta(days=364))]
    while len(chosen) < count:
        start = YEAR_START + timedelta(days=rng.randrange(365))
        chosen.append((start, min(YEAR_START + timedelta(days=364), start + timedelta(days=rng.randrange(1, 365)))))
    return chosen


def timed(function, session, ranges):
    latencies = []
    for start, end in ranges:
        began = time.perf_counter()
        function(session, start, end)
        session.rollback()
        latencies.append(time.perf_counter() - began)
    return latencies


def run_backend(backend, url, rows, queries):
    upgrade(MIGRATIONS, url)
    began = time.perf_counter()
    (fill_sqlite if backend == "sqlite" else fill_postgresql)(url, generated_rows(rows))
    filled = time.perf_counter() - began
    buckets = derive_buckets(url)
    print(f"  {backend}: {rows:,} applications written in {filled:.1f}s; {buckets:,} daily buckets", flush=True)
    Session = session_factory(url, read_only=True)
    with Session() as session:
        full_year = periods(1)[0]
        projected = views.summary(session, *full_year)
        raw = raw_summary(session, *full_year)
        assert projected["totals"]["applications"] == raw["total"] == rows
        assert {row["service_code"]: row["applications"] for row in projected["by_service"]} == dict(raw["service_code"])
        timed(views.summary, session, periods(10, seed=3))  # warm caches alike for both
        projection = timed(views.summary, session, periods(queries))
        group_by = timed(raw_summary, session, periods(max(5, queries // 30)))
    dispose_engines()
    return [(backend, "projection (daily buckets)", projection), (backend, "GROUP BY over raw applications", group_by)]


def sqlite_url(workdir):
    return f"sqlite:///{workdir}/reporting-bench.db"


def postgres_database():
    """A fresh database on the server, or None when PostgreSQL is not reachable."""
    try:
        admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
        name = f"oss_bench_reporting_{uuid.uuid4().hex[:8]}"
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
    except Exception as exc:  # noqa: BLE001 - any failure means "not here"
        print(f"  PostgreSQL not reachable at {POSTGRES_ADMIN_URL} ({type(exc).__name__}); skipped")
        return None
    return name, str(make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(hide_password=False))


def drop_postgres_database(name):
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--db", choices=("sqlite", "postgresql", "both"), default="both")
    args = parser.parse_args(argv)
    results = []
    if args.db in ("sqlite", "both"):
        with tempfile.TemporaryDirectory() as workdir:
            results += run_backend("sqlite", sqlite_url(workdir), args.rows, args.queries)
    if args.db in ("postgresql", "both"):
        database = postgres_database()
        if database is not None:
            try:
                results += run_backend("postgresql", database[1], args.rows, args.queries)
            finally:
                drop_postgres_database(database[0])
    print(f"\nReporting summary over {args.rows:,} applications in one year (random periods, full year included)")
    print(f"{'backend':<11} {'answered by':<34} {'queries':>8} {'p50':>10} {'p99':>10}  verdict")
    failed = False
    for backend, method, latencies in results:
        p50, p99 = statistics.median(latencies) * 1000, percentile(latencies, 0.99) * 1000
        verdict = ""
        if method.startswith("projection"):
            verdict = "ok (< 50 ms p99)" if p99 < TARGET_P99_MS else "TOO SLOW"
            failed |= p99 >= TARGET_P99_MS
        print(f"{backend:<11} {method:<34} {len(latencies):>8} {p50:>8.1f}ms {p99:>8.1f}ms  {verdict}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
