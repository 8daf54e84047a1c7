"""The monthly series the ministry's dashboard draws: submissions, decisions, compliance, median
processing time and the backlog at each month's end, per region and summed nationally."""
from datetime import date, datetime, timedelta, timezone

from services.reporting import views
from services.reporting.domain import merge_monthly, months_between
from tests.unit.test_reporting_projection import Session, apply_all, event  # noqa: F401 - fixture

JAN = datetime(2026, 1, 12, 5, 0, tzinfo=timezone.utc)
FEB = datetime(2026, 2, 9, 5, 0, tzinfo=timezone.utc)
MAR = datetime(2026, 3, 2, 5, 0, tzinfo=timezone.utc)


def test_months_between_crosses_the_year():
    assert months_between(date(2025, 11, 30), date(2026, 2, 1)) == ["2025-11", "2025-12", "2026-01", "2026-02"]
    assert months_between(date(2026, 3, 1), date(2026, 3, 31)) == ["2026-03"]


def test_each_month_counts_its_submissions_decisions_and_backlog(Session):  # noqa: F811
    apply_all(Session, [
        # January: two submitted; one approved on time in January after one day, one still open.
        event("JI-2026-000001", "submitted", JAN, submitted_at=JAN),
        event("JI-2026-000001", "approved", JAN + timedelta(days=1), "submitted", on_time=True, submitted_at=JAN, version=2),
        event("JI-2026-000002", "submitted", JAN, submitted_at=JAN),
        # February: one submitted and rejected late in February after three days; one withdrawn in March.
        event("JI-2026-000003", "submitted", FEB, submitted_at=FEB),
        event("JI-2026-000003", "rejected", FEB + timedelta(days=3), "submitted", on_time=False, submitted_at=FEB, version=2),
        event("JI-2026-000004", "submitted", FEB, submitted_at=FEB),
        event("JI-2026-000004", "withdrawn", MAR, "submitted", submitted_at=FEB, version=2),
    ])
    with Session() as session:
        series = views.monthly(session, None, None, today=date(2026, 3, 20))
    assert [row["month"] for row in series] == ["2026-01", "2026-02", "2026-03"]
    january, february, march = series
    assert (january["submitted"], january["decided"], january["on_time"], january["late"]) == (2, 1, 1, 0)
    assert january["sla_compliance"] == 1.0
    assert january["median_processing_seconds"] == 86400
    assert january["backlog"] == 1
    assert (february["submitted"], february["decided"], february["rejected"], february["late"]) == (1 + 1, 1, 1, 1)
    assert february["sla_compliance"] == 0.0
    assert february["median_processing_seconds"] == 3 * 86400
    assert february["backlog"] == 2  # JI-2 still open, JI-4 not yet withdrawn
    assert (march["submitted"], march["decided"], march["backlog"]) == (0, 0, 1)
    assert march["sla_compliance"] is None and march["median_processing_seconds"] is None


def test_a_period_limits_the_months_but_the_backlog_counts_everything_before(Session):  # noqa: F811
    apply_all(Session, [event("JI-2026-000001", "submitted", JAN, submitted_at=JAN),
                        event("JI-2026-000002", "submitted", FEB, submitted_at=FEB)])
    with Session() as session:
        series = views.monthly(session, date(2026, 2, 1), date(2026, 6, 30), today=date(2026, 3, 5))
        empty = views.monthly(session, date(2026, 4, 1), None, today=date(2026, 3, 5))
    assert [(row["month"], row["submitted"], row["backlog"]) for row in series] == [("2026-02", 1, 2), ("2026-03", 0, 2)]
    assert empty == []


def test_the_national_series_sums_the_regions_and_recomputes_compliance():
    jizzakh = [{"month": "2026-01", "submitted": 3, "decided": 2, "approved": 2, "rejected": 0, "on_time": 2, "late": 0,
                "sla_compliance": 1.0, "median_processing_seconds": 100.0, "backlog": 1}]
    fergana = [{"month": "2026-01", "submitted": 1, "decided": 2, "approved": 1, "rejected": 1, "on_time": 0, "late": 2,
                "sla_compliance": 0.0, "median_processing_seconds": 50.0, "backlog": 4}]
    merged = merge_monthly({"jizzakh": jizzakh, "fergana": fergana}, ["namangan"], ["jizzakh", "namangan", "fergana"])
    assert merged["partial"] is True and merged["missing"] == ["namangan"]
    assert [region["region"] for region in merged["regions"]] == ["jizzakh", "fergana"]
    (january,) = merged["totals"]
    assert (january["submitted"], january["decided"], january["backlog"], january["sla_compliance"]) == (4, 4, 5, 0.5)
    assert "median_processing_seconds" not in january
