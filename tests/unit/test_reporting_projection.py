"""The read model against a real SQLite file: duplicates, out-of-order events, decisions, rebuild."""
import random
import uuid
from datetime import date, datetime, timedelta, timezone

import pytest

from oss_common.database import session_factory, upgrade
from oss_common.config import PROJECT_ROOT
from services.reporting import commands, use_cases, views
from services.reporting.unit_of_work import ReportingUnitOfWork

MIGRATIONS = PROJECT_ROOT / "services" / "reporting" / "migrations"
START = datetime(2026, 3, 2, 5, 0, tzinfo=timezone.utc)  # 10:00 in Tashkent, a Monday


@pytest.fixture
def Session(tmp_path):
    url = f"sqlite:///{tmp_path / 'reporting.db'}"
    upgrade(MIGRATIONS, url)
    return session_factory(url)


def event(tracking, status, changed_at, previous=None, service="photocopying", district="1708401",
          due=date(2026, 3, 6), on_time=None, submitted_at=START, version=1, **clock):
    data = {
        "tracking_number": tracking, "service_code": service, "service_version": 1, "agency": "khokimiyat",
        "district": district, "centre": "jizzakh-city", "status": status, "version": version, "previous_status": previous,
        "reason": None, "actor": "officer:test", "submitted_at": _z(submitted_at), "changed_at": _z(changed_at),
        "due_date": due.isoformat(), "language": "uz", "channel": "sms",
        "contact": {"phone": "+998901234567", "email": None},
    }
    if on_time is not None:
        data["decided_on_time"] = on_time
    data.update(clock)
    kind = clock.pop("type", None) or ("application.submitted" if status == "submitted" else "application.status_changed")
    data.pop("type", None)
    return {"event_id": str(uuid.uuid4()), "type": kind, "region": "jizzakh", "occurred_at": _z(changed_at),
            "schema_version": 1, "producer": "intake_jizzakh", "data": data}


def _z(moment):
    return moment.isoformat().replace("+00:00", "Z")


def history(tracking, *statuses, step=timedelta(hours=1), **kwargs):
    events, previous = [], None
    for index, status in enumerate(statuses):
        on_time = True if status in ("approved", "rejected") else None
        events.append(event(tracking, status, START + step * index, previous, on_time=on_time, version=index + 1, **kwargs))
        previous = status
    return events


def apply_all(Session, events):
    with Session() as session, ReportingUnitOfWork(session) as uow:
        applied = [use_cases.apply_event(uow, commands.record_event(envelope)) for envelope in events]
        uow.commit()
    return applied


def rebuild(Session, export_page, **kwargs):
    with Session() as session:
        return use_cases.rebuild(ReportingUnitOfWork(session), export_page, **kwargs)


def figures(Session):
    with Session() as session:
        summary = views.summary(session)
        sla = views.sla(session)
    summary.pop("from"), summary.pop("to"), sla.pop("from"), sla.pop("to")
    return summary, sla


def test_a_duplicate_event_counts_once(Session):
    submitted = history("JI-2026-000001", "submitted")[0]
    assert apply_all(Session, [submitted, submitted]) == [True, False]
    summary, _ = figures(Session)
    assert summary["totals"] == {"applications": 1, "open": 1}
    assert summary["by_status"] == [{"status": "submitted", "applications": 1}]


def test_events_in_any_order_end_with_the_newest_status_and_one_decision(Session):
    events = history("JI-2026-000002", "submitted", "accepted", "in_review", "approved", "issued")
    apply_all(Session, list(reversed(events)))
    summary, sla = figures(Session)
    assert summary["totals"] == {"applications": 1, "open": 0}
    assert summary["by_status"] == [{"status": "issued", "applications": 1}]
    assert summary["by_day"] == [{"day": "2026-03-02", "applications": 1}]
    assert sla["totals"]["decided"] == 1 and sla["totals"]["on_time"] == 1 and sla["totals"]["approved"] == 1
    assert sla["totals"]["processing"]["median_seconds"] == 3 * 3600


def test_the_higher_version_wins_whatever_the_clocks_say(Session):
    """Two intake processes whose clocks differ: the later transition carries the earlier timestamp."""
    submitted = event("JI-2026-000009", "submitted", START, version=1)
    accepted = event("JI-2026-000009", "accepted", START + timedelta(seconds=5), "submitted", version=2)
    in_review = event("JI-2026-000009", "in_review", START + timedelta(seconds=2), "accepted", version=3)
    for order in ([submitted, accepted, in_review], [in_review, accepted, submitted]):
        with Session() as session, ReportingUnitOfWork(session) as uow:
            uow.read_model.reset()
            uow.commit()
        apply_all(Session, order)
        summary, _ = figures(Session)
        assert summary["by_status"] == [{"status": "in_review", "applications": 1}], order


def test_a_late_decision_counts_against_the_sla_of_its_service_and_district(Session):
    late = event("JI-2026-000003", "rejected", START + timedelta(days=10), "in_review", due=date(2026, 3, 4), on_time=False,
                 version=4)
    apply_all(Session, [late])
    _, sla = figures(Session)
    assert sla["by_service"][0]["late"] == 1 and sla["by_service"][0]["compliance"] == 0.0
    assert sla["by_district"] == [{"district": "1708401", "decided": 1, "approved": 0, "rejected": 1, "on_time": 0,
                                   "late": 1, "compliance": 0.0}]


def test_overdue_lists_open_applications_past_due_without_personal_data(Session):
    apply_all(Session, history("JI-2026-000004", "submitted", "accepted") + history("JI-2026-000005", "submitted", "withdrawn"))
    with Session() as session:
        report = views.overdue(session, today=date(2026, 3, 10))
    assert report["overdue"] == 1 and report["open_backlog"] == 1
    assert report["items"] == [{"tracking_number": "JI-2026-000004", "service_code": "photocopying", "district": "1708401",
                                "centre": "jizzakh-city", "status": "accepted", "due_date": "2026-03-06", "days_overdue": 4}]
    assert "+998" not in str(report)


def test_shuffled_duplicated_stream_and_rebuild_give_the_in_order_figures(Session, tmp_path):
    rng = random.Random(42)
    paths = [("submitted",), ("submitted", "accepted"), ("submitted", "accepted", "in_review", "approved", "issued"),
             ("submitted", "returned_for_correction", "resubmitted", "accepted", "in_review", "rejected"),
             ("submitted", "withdrawn")]
    stream = []
    for number in range(200):
        stream += history(f"JI-2026-{number:06d}", *rng.choice(paths), service=rng.choice(["a-svc", "b-svc"]),
                          district=rng.choice(["1708401", "1708201"]), step=timedelta(minutes=rng.randint(1, 3000)))
    in_order = tmp_path / "in-order.db"
    upgrade(MIGRATIONS, f"sqlite:///{in_order}")
    ordered_session = session_factory(f"sqlite:///{in_order}")
    apply_all(ordered_session, stream)
    shuffled = stream + rng.sample(stream, 100)
    rng.shuffle(shuffled)
    apply_all(Session, shuffled)
    assert figures(Session) == figures(ordered_session)

    pages = [shuffled[i:i + 64] for i in range(0, len(shuffled), 64)]

    def export_page(after_id, limit):
        return {"items": pages[after_id], "next_after_id": after_id + 1, "more": after_id + 1 < len(pages)}

    result = rebuild(Session, export_page, page_size=64)
    assert result == {"events_read": len(shuffled), "events_applied": len(stream)}
    assert figures(Session) == figures(ordered_session)


def test_a_rebuild_page_that_meets_a_deadlock_is_tried_again_and_counts_each_event_once(Session, monkeypatch):
    """On PostgreSQL a rebuild page and the live consumer can deadlock; the page is rolled back and tried again."""
    from sqlalchemy.exc import OperationalError

    stream = history("JI-2026-000001", "submitted", "accepted") + history("JI-2026-000002", "submitted")
    real_apply, failures = use_cases.apply_event, []

    def apply_event(uow, command):
        applied = real_apply(uow, command)
        if command.event_id == stream[-1]["event_id"] and not failures:
            failures.append(command)
            raise OperationalError("INSERT INTO processed_events", {}, Exception("deadlock detected"))
        return applied

    monkeypatch.setattr(use_cases, "apply_event", apply_event)
    monkeypatch.setattr(use_cases, "retry_delay", lambda *args, **kwargs: 0)
    result = rebuild(Session, lambda after_id, limit: {"items": stream, "next_after_id": 1, "more": False})
    assert failures and result == {"events_read": 3, "events_applied": 3}
    summary, _sla = figures(Session)
    assert summary["totals"]["applications"] == 2, summary


def test_a_rebuild_page_with_a_poison_event_fails_at_once(Session, monkeypatch):
    calls = []

    def apply_event(uow, command):
        calls.append(command)
        raise KeyError("service_code")

    monkeypatch.setattr(use_cases, "apply_event", apply_event)
    with pytest.raises(KeyError):
        rebuild(Session, lambda after_id, limit: {"items": history("JI-2026-000001", "submitted"),
                                                              "next_after_id": 1, "more": False})
    assert len(calls) == 1


def test_open_data_hides_small_cells(Session):
    events = []
    for number in range(12):
        events += history(f"JI-2026-1{number:05d}", "submitted", service="big" if number < 9 else "small")
    april = datetime(2026, 4, 1, 5, 0, tzinfo=timezone.utc)
    for number in range(7):  # another month: not in March's figures
        events += history(f"JI-2026-2{number:05d}", "submitted", service="small", submitted_at=april)
    apply_all(Session, events)
    with Session() as session:
        report = views.open_data(session, "2026-03", date(2026, 3, 1), date(2026, 3, 31))
        april_report = views.open_data(session, "2026-04", date(2026, 4, 1), date(2026, 4, 30))
    assert (report["month"], report["from"], report["to"]) == ("2026-03", "2026-03-01", "2026-03-31")
    assert report["totals"] == {"applications": 12}
    assert april_report["totals"] == {"applications": 7}
    assert april_report["by_service"] == [{"service_code": "small", "applications": 7, "suppressed": False}]
    by_service = {row["service_code"]: row for row in report["by_service"]}
    assert by_service["small"]["applications"] is None and by_service["small"]["suppressed"]
    assert by_service["big"]["applications"] is None  # else 12 - 9 would give `small` away


def _fee_event(kind, version, status, state, payment=None, tracking="JI-2026-000777"):
    envelope = event(tracking, status, START + timedelta(minutes=version), service="apostille", version=version)
    envelope["type"], envelope["schema_version"] = f"application.{kind}", 4
    envelope["data"].update(open=status == "submitted", decided=False, final=False, invoice={
        "invoice_number": "042026000777", "amount_tiyin": 8_240_000, "currency": "UZS", "due_date": "2026-03-09",
        "state": state, "issued_at": _z(START), "pay_url": None})
    if payment:
        envelope["data"]["payment"] = {"amount_tiyin": 8_240_000, "method": payment, "receipt_number": "x", "reason": None,
                                       "at": _z(START)}
    return envelope


def test_fees_are_counted_in_tiyin_once_per_event_in_any_order(Session):
    events = [_fee_event("submitted", 1, "awaiting_payment", "issued"),
              _fee_event("paid", 2, "submitted", "paid", "payme"),
              _fee_event("refunded", 3, "awaiting_payment", "issued", "payme"),  # Payme took the payment back
              _fee_event("paid", 4, "submitted", "paid", "cash")]
    shuffled = events[::-1] + events  # newest first, then every event again
    apply_all(Session, shuffled)
    with Session() as session:
        report = views.fees(session, date(2026, 3, 1), date(2026, 3, 31))
    (line,) = report["rows"]
    assert (line["month"], line["centre"], line["service_code"]) == ("2026-03", "jizzakh-city", "apostille")
    assert (line["invoiced_tiyin"], line["paid_tiyin"], line["refunded_tiyin"], line["outstanding_tiyin"]) == \
        (8_240_000, 16_480_000, 8_240_000, 0)
    assert report["totals"]["invoices"] == 1 and all(isinstance(value, int) for value in report["totals"].values())
    with Session() as session:
        assert views.fees(session, date(2026, 4, 1), date(2026, 4, 30))["rows"] == []
        assert views.open_data(session, "2026-03", date(2026, 3, 1), date(2026, 3, 31))["fees"]["paid_tiyin"] is None


def test_overdue_lists_use_the_net_time_of_paused_resumed_and_extended_clocks(Session):
    hour = timedelta(hours=1)
    apply_all(Session, [
        event("JI-2026-000001", "submitted", START, version=1),
        # returned on the 3rd with its clock stopped: open, past its old due date, not overdue
        event("JI-2026-000001", "returned_for_correction", START + hour, "submitted", version=2, clock_paused=True,
              working_days_left=2, clock_change="paused"),
        event("JI-2026-000002", "submitted", START, version=1),
        event("JI-2026-000002", "accepted", START + hour, "submitted", version=2,
              type="application.deadline_extended", due=date(2026, 3, 13), extensions=1, clock_change="extended",
              extended_by=5),
        event("JI-2026-000003", "submitted", START, version=1),
    ])
    with Session() as session:
        report = views.overdue(session, date(2026, 3, 10))
    assert [item["tracking_number"] for item in report["items"]] == ["JI-2026-000003"]
    assert report["open_backlog"] == 3
    apply_all(Session, [event("JI-2026-000001", "resubmitted", START + 2 * hour, "returned_for_correction", version=3,
                              due=date(2026, 3, 9), clock_change="resumed")])
    with Session() as session:
        report = views.overdue(session, date(2026, 3, 10))
    assert [(item["tracking_number"], item["due_date"]) for item in report["items"]] == [
        ("JI-2026-000003", "2026-03-06"), ("JI-2026-000001", "2026-03-09")]
