"""Reporting against the real stack: regional read models built from live (and duplicated) events
agree with a direct count over the intake databases; the national view sums the regions, answers
partially within its timeout when one is down; a rebuild gives the live figures."""
import io
import json
import os
import random
import subprocess
import sys
import time
from datetime import date, datetime, timedelta, timezone

import eventlet
import openpyxl
import pytest
import requests
import yaml
from eventlet.greenpool import GreenPool
from kombu import Connection, Producer
from sqlalchemy import create_engine, text

from oss_common.calendar import local_date
from oss_common.config import PROJECT_ROOT
from oss_common.database import session_factory
from oss_common.events import EVENTS_EXCHANGE, routing_key, utc_now
from oss_common.regions import get_region
from services.reporting import views
from services.intake.domain import AWAITING_DECISION
from services.reporting.domain import percentile
from tests.conftest import as_caller, token
from tests.integration.conftest import REGIONS, SEED, auth, pay_at_the_desk, post, valid_submission
from tests.integration.personal_data import assert_no_personal_data, personal_values, unique_applicant

AUTH = auth("analyst")
SUBMISSIONS_PER_REGION = 600
NATIONAL_TIMEOUT = 3.0
PATHS = (
    (),
    ("accepted",),
    ("accepted", "in_review"),
    ("accepted", "in_review", "approved"),
    ("accepted", "in_review", "approved", "issued"),
    ("accepted", "in_review", "rejected"),
    ("accepted", "in_review", "rejected", "issued"),
    ("returned_for_correction", "resubmitted", "accepted"),
    ("withdrawn",),
)
pytestmark = pytest.mark.integration


def offered_services(limit=6):
    document = yaml.safe_load(SEED.read_text(encoding="utf-8"))
    return [service["code"] for service in document["services"]
            if service.get("state", "published") == "published" and service["regions"] == "all"
            and service.get("fee", {}).get("free", True)][:limit]  # a paid service waits for its payment first


def oss(*args, env):
    env = dict(os.environ, **{key: str(value) for key, value in env.items()})
    return subprocess.run([sys.executable, "-m", "oss_common.cli", *args], env=env, cwd=PROJECT_ROOT,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def reporting(stack):
    """Regional reporting for the three regions (caught up on earlier history by a rebuild),
    a national instance, and a few thousand submissions and transitions with some events sent twice."""
    databases = {region: stack.databases.new(f"reporting-{region}") for region in REGIONS}
    processes = {region: stack.start("reporting", region=region, database_url=databases[region], wait=False)
                 for region in REGIONS}
    for process in processes.values():
        process.wait_healthy()
    for region in REGIONS:
        # Applications filed by earlier tests came before these consumers' queues existed.
        done = oss("reporting", "rebuild", "--region", region,
                   env=stack.env(databases[region], OSS_TOKEN=token("region-admin", region)))
        assert done.returncode == 0, done.stderr[-2000:]
    national = stack.start_national("reporting", REGIONS=",".join(REGIONS), NATIONAL_TIMEOUT_SECONDS=NATIONAL_TIMEOUT)
    started = time.monotonic()
    applicants, republished = generate_load(stack)
    load_seconds = time.monotonic() - started
    for region in REGIONS:
        wait_caught_up(stack, region, processes[region])
    yield {"processes": processes, "databases": databases, "national": national,
           "load_seconds": load_seconds, "republished": republished,
           "personal_values": [value for applicant in applicants for value in personal_values(applicant)]}
    for process in [national, *processes.values()]:
        process.stop()


def generate_load(stack):
    rng = random.Random(20260301)
    templates = {region: [valid_submission(region, code) for code in offered_services()] for region in REGIONS}
    pool = GreenPool(60)
    applicants = []

    def file_one(region):
        area = get_region(region)
        centre = rng.choice(area.centres)
        channel = rng.choice(["sms", "email", "none"])
        applicant = unique_applicant(rng, channel=channel)
        if channel == "email":
            applicant["email"] = f"applicant-{applicant['pinfl']}@example.uz"
        applicants.append(applicant)
        body = dict(rng.choice(templates[region]), district=centre.district, centre=centre.code, applicant=applicant)
        response = post(f"{stack.urls[region]}/api/v1/applications", body, **auth("operator", region))
        assert response.status_code == 201, response.text
        pay_at_the_desk(stack.urls[region], response.json(), auth("operator", region))
        return region, response.json()["tracking_number"]

    def walk(item):
        region, number = item
        for status in rng.choice(PATHS):
            response = post(f"{stack.urls[region]}/api/v1/applications/{number}/transitions",
                            {"to": status, "reason": "load test"}, **auth("officer", region, subject="load"))
            assert response.status_code == 200, response.text

    started = time.monotonic()
    filed = list(pool.imap(file_one, [region for region in REGIONS for _ in range(SUBMISSIONS_PER_REGION)]))
    filed_at = time.monotonic()
    # Stored events go out a second time while the transitions are made: duplicates arrive mixed
    # with new events, and a status change may come before a copy of an older one.
    republishing = eventlet.spawn(republish_some, stack)
    list(pool.imap(walk, filed))
    republished = republishing.wait()
    print(f"filing {len(filed)}: {filed_at - started:.1f}s, transitions: {time.monotonic() - filed_at:.1f}s")
    return applicants, republished


def republish_some(stack, per_region=400):
    """Send a sample of each region's stored events to the bus a second time."""
    sent = 0
    with Connection(stack.amqp_uri, transport_options={"confirm_publish": True}) as connection:
        producer = Producer(connection.channel(), exchange=EVENTS_EXCHANGE, serializer="json")
        for region in REGIONS:
            with stack.rpc(caller=as_caller("region-admin", region)) as cluster:
                exported = getattr(cluster, f"intake_{region}").export_events(0, 5000)["items"]
            for envelope in random.Random(region).sample(exported, min(per_region, len(exported))):
                producer.publish(envelope, routing_key=routing_key(envelope), delivery_mode=2)
                sent += 1
    return sent


def direct_figures(database_url):
    """The same figures, counted straight from an intake database."""
    engine = create_engine(database_url)
    with engine.connect() as connection:
        rows = connection.execute(text(
            "SELECT service_code, district, centre, channel, status, submitted_at, decided_at, due_date FROM applications"
        )).all()
    engine.dispose()
    counts = {name: {} for name in ("service", "district", "centre", "channel", "status")}
    decisions = {"service": {}, "district": {}}
    times = {}
    for code, district, centre, channel, status, submitted_at, decided_at, due_date in rows:
        for name, value in (("service", code), ("district", district), ("centre", centre), ("channel", channel), ("status", status)):
            counts[name][value] = counts[name].get(value, 0) + 1
        if decided_at is not None:
            decided_at, submitted_at = _aware(decided_at), _aware(submitted_at)
            on_time = local_date(decided_at) <= _date(due_date)
            for name, value in (("service", code), ("district", district)):
                figures = decisions[name].setdefault(value, {"on_time": 0, "late": 0})
                figures["on_time" if on_time else "late"] += 1
            times.setdefault(code, []).append((decided_at - submitted_at).total_seconds())
    return {"total": len(rows), "open": sum(count for status, count in counts["status"].items() if status in AWAITING_DECISION),
            "counts": counts, "decisions": decisions,
            "median": {code: percentile(sorted(values), 0.5) for code, values in times.items()},
            "p90": {code: percentile(sorted(values), 0.9) for code, values in times.items()}}


def _aware(moment):
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _date(value):
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


def reported(stack, process, path, **params):
    response = requests.get(f"{process.url}/api/v1/reports/{path}", params=params, headers=AUTH, timeout=30)
    assert response.status_code == 200, response.text
    return response


def as_counts(rows, key):
    return {row[key]: row["applications"] for row in rows}


def wait_caught_up(stack, region, process, timeout=90.0):
    deadline = time.monotonic() + timeout
    expected = direct_figures(stack.intake_db[region])
    while time.monotonic() < deadline:
        summary = reported(stack, process, "summary").json()
        if summary["totals"]["applications"] == expected["total"] and \
                as_counts(summary["by_status"], "status") == expected["counts"]["status"]:
            return
        eventlet.sleep(0.5)
    raise AssertionError(f"reporting_{region} did not catch up within {timeout:.0f}s")


def test_regional_figures_equal_a_direct_count_over_intake(stack, reporting):
    assert reporting["republished"] > 0
    for region in REGIONS:
        expected = direct_figures(stack.intake_db[region])
        process = reporting["processes"][region]
        summary = reported(stack, process, "summary").json()
        assert summary["totals"] == {"applications": expected["total"], "open": expected["open"]}
        for name, key in (("service", "service_code"), ("district", "district"), ("centre", "centre"),
                          ("channel", "channel"), ("status", "status")):
            assert as_counts(summary[f"by_{name}"], key) == expected["counts"][name], (region, name)
        assert sum(row["applications"] for row in summary["by_day"]) == expected["total"]
        sla = reported(stack, process, "sla").json()
        for row in sla["by_service"]:
            assert {"on_time": row["on_time"], "late": row["late"]} == expected["decisions"]["service"][row["service_code"]]
            assert row["processing"]["median_seconds"] == pytest.approx(expected["median"][row["service_code"]], abs=0.01)
            assert row["processing"]["p90_seconds"] == pytest.approx(expected["p90"][row["service_code"]], abs=0.01)
        assert {row["service_code"] for row in sla["by_service"]} == set(expected["decisions"]["service"])
        assert {row["district"]: {"on_time": row["on_time"], "late": row["late"]} for row in sla["by_district"]} == \
            expected["decisions"]["district"]
    print(f"load: {3 * SUBMISSIONS_PER_REGION} submissions with transitions in {reporting['load_seconds']:.1f}s, "
          f"{reporting['republished']} events sent twice")


def test_reports_need_a_token_of_the_ministry_or_the_region_and_never_show_personal_data(stack, reporting):
    process = reporting["processes"]["jizzakh"]
    summary = f"{process.url}/api/v1/reports/summary"
    denied = requests.get(summary, timeout=10)
    assert denied.status_code == 401 and denied.json()["error"] == "unauthorized"
    assert denied.headers["WWW-Authenticate"].startswith("Bearer")
    assert requests.get(summary, headers=auth("operator", "namangan"), timeout=10).status_code == 403
    assert requests.get(summary, headers=auth("catalogue-admin"), timeout=10).status_code == 403
    assert requests.get(summary, headers=auth("officer", "jizzakh"), timeout=10).status_code == 200
    national = f"{reporting['national'].url}/api/v1/reports/summary"
    assert requests.get(national, headers=auth("operator", "jizzakh"), timeout=10).status_code == 403
    assert requests.get(national, timeout=10).status_code == 401
    overdue = reported(stack, process, "overdue")
    body = overdue.json()
    assert body["open_backlog"] == direct_figures(stack.intake_db["jizzakh"])["open"]
    assert body["overdue"] == len(body["items"])  # all listed when fewer than the limit
    for text_body in (overdue.text, reported(stack, process, "summary").text, reported(stack, process, "sla").text):
        assert "Test Applicant" not in text_body and "+99890" not in text_body
        assert not any(value in text_body for value in reporting["personal_values"])
    bad = requests.get(f"{process.url}/api/v1/reports/summary", params={"from": "2026-02-01", "to": "2026-01-01"},
                       headers=AUTH, timeout=10)
    assert bad.status_code == 400 and "from" in bad.json()["fields"]


def test_reports_as_csv_and_xlsx(stack, reporting):
    process = reporting["processes"]["namangan"]
    summary = reported(stack, process, "summary").json()
    csv_response = reported(stack, process, "summary", format="csv")
    assert csv_response.headers["Content-Type"].startswith("text/csv")
    lines = csv_response.text.splitlines()
    assert lines[0] == "table,measure,applications"
    assert f"totals,applications,{summary['totals']['applications']}" in lines
    xlsx = reported(stack, process, "sla", format="xlsx")
    workbook = openpyxl.load_workbook(io.BytesIO(xlsx.content))
    assert workbook.sheetnames == ["totals", "by_service", "by_district"]
    assert [cell.value for cell in workbook["by_service"][1]][:4] == ["service_code", "decided", "on_time", "late"]
    overdue_csv = reported(stack, process, "overdue", format="csv").text.splitlines()
    assert overdue_csv[0] == "tracking_number,service_code,district,centre,status,due_date,days_overdue"


def test_open_data_needs_no_credentials_and_answers_only_months_that_have_ended(stack, reporting):
    process = reporting["processes"]["fergana"]
    url = f"{process.url}/api/v1/open-data/summary"
    this_month = local_date(utc_now()).strftime("%Y-%m")
    for params, field in (({"month": this_month}, "month"), ({"from": "2026-01-01"}, "from"), ({"month": "2026-1"}, "month")):
        refused = requests.get(url, params=params, timeout=10)
        assert refused.status_code == 400 and field in refused.json()["fields"], refused.text
    response = requests.get(url, timeout=10)
    assert response.status_code == 200
    body = response.json()
    last_month = (local_date(utc_now()).replace(day=1) - timedelta(days=1)).replace(day=1)
    assert (body["month"], body["from"]) == (last_month.strftime("%Y-%m"), last_month.isoformat())
    # What the HTTP face publishes is the read model's own figures with the small cells withheld.
    with session_factory(reporting["databases"]["fergana"], read_only=True)() as session:
        expected = views.open_data(session, body["month"], date.fromisoformat(body["from"]),
                                        date.fromisoformat(body["to"]))
    assert body == json.loads(json.dumps(expected))
    for name in ("by_service", "by_district", "by_channel", "by_status"):
        for row in body[name]:
            assert row["applications"] is None or row["applications"] >= 5
            assert row["suppressed"] == (row["applications"] is None)
    assert "tracking_number" not in response.text


def test_national_totals_are_the_sum_of_the_regions(stack, reporting):
    regional = {region: reported(stack, reporting["processes"][region], "summary").json() for region in REGIONS}
    with stack.rpc(caller=as_caller("analyst")) as cluster:
        national = cluster.reporting.national_summary()
    assert national["partial"] is False and national["missing"] == []
    assert national["totals"]["applications"] == sum(summary["totals"]["applications"] for summary in regional.values())
    assert national["totals"]["open"] == sum(summary["totals"]["open"] for summary in regional.values())
    rows = {row["region"]: row for row in national["regions"]}
    assert set(rows) == set(REGIONS)
    for region, summary in regional.items():
        assert rows[region]["applications"] == summary["totals"]["applications"]
        sla = reported(stack, reporting["processes"][region], "sla").json()
        assert rows[region]["sla_compliance"] == sla["totals"]["compliance"]
        assert rows[region]["median_processing_seconds"] == sla["totals"]["processing"]["median_seconds"]
    months = sum(row["applications"] for row in national["by_region_service_month"])
    assert months == national["totals"]["applications"]
    over_http = requests.get(f"{reporting['national'].url}/api/v1/reports/summary", headers=AUTH, timeout=30)
    assert over_http.status_code == 200 and over_http.json()["totals"] == national["totals"]


def test_rebuild_gives_the_live_figures(stack, reporting):
    region = "jizzakh"
    rebuilt = stack.databases.new(f"reporting-{region}-rebuilt")
    done = oss("reporting", "rebuild", "--region", region, env=stack.env(rebuilt, OSS_TOKEN=token("region-admin", region)))
    assert done.returncode == 0, done.stderr[-2000:]
    assert "events read" in done.stdout

    def figures(url):
        with session_factory(url, read_only=True)() as session:
            return (views.summary(session), views.sla(session), views.regional_summary(session),
                    views.overdue(session, local_date(utc_now())))

    assert figures(rebuilt) == figures(reporting["databases"][region])


def test_national_answer_is_partial_within_the_timeout_when_a_region_is_down(stack, reporting):
    reporting["processes"]["fergana"].stop()
    try:
        started = time.monotonic()
        with stack.rpc(caller=as_caller("analyst")) as cluster:
            national = cluster.reporting.national_summary("2020-01-01", None)
        elapsed = time.monotonic() - started
        assert elapsed < NATIONAL_TIMEOUT + 2.0
        assert national["partial"] is True and national["missing"] == ["fergana"]
        assert {row["region"] for row in national["regions"]} == {"jizzakh", "namangan"}
        assert national["totals"]["applications"] == sum(row["applications"] for row in national["regions"])
    finally:
        reporting["processes"]["fergana"] = stack.start("reporting", region="fergana",
                                                        database_url=reporting["databases"]["fergana"], migrate=False)
    with stack.rpc(caller=as_caller("analyst")) as cluster:
        whole = cluster.reporting.national_summary("2020-01-01", None)
    assert whole["partial"] is False and whole["missing"] == []


def test_no_applicant_data_in_any_log_or_metric(stack, reporting):
    """Every process of the stack (intakes, reporting, national) carried the load: none of the
    applicants' PINFLs, phones, names or e-mail addresses is in its log or its /metrics."""
    assert assert_no_personal_data(stack.processes, reporting["personal_values"]) >= len(REGIONS) * 2
