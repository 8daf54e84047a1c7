"""Reporting's read side: its questions to the read model (the summary, SLA compliance, overdue
applications, open data, the months) and the compact answer a region gives the national aggregator."""
from collections import defaultdict
from datetime import date, timedelta

from sqlalchemy import case, func, select

from oss_common.calendar import local_date
from services.reporting.domain import (
    COUNT_DIMENSIONS, compliance, month_of, months_between, processing_figures, ranked, suppress,
)
from services.reporting.models import ApplicationState, DailyCount, DailyDecision, FeeState
from services.reporting.schemas import (
    FeeReportSchema, OpenDataReportSchema, OverdueReportSchema, SlaReportSchema, SummaryReportSchema,
)

BREAKDOWN_KEYS = {"service": "service_code", "district": "district", "centre": "centre",
                  "channel": "channel", "status": "status"}
DECISION_COUNTS = ("approved", "rejected", "on_time", "late")
# The reports as the API answers them (the OpenAPI document is built from these schemas).
SUMMARY, SLA, OVERDUE, OPEN_DATA = SummaryReportSchema(), SlaReportSchema(), OverdueReportSchema(), OpenDataReportSchema()
FEES = FeeReportSchema()


def _period(column, start, end):
    conditions = []
    if start is not None:
        conditions.append(column >= start)
    if end is not None:
        conditions.append(column <= end)
    return conditions


def submission_counts(session, start=None, end=None):
    """{dimension: {value: applications}} for applications submitted in the period."""
    rows = session.execute(
        select(DailyCount.dimension, DailyCount.value, func.sum(DailyCount.applications))
        .where(*_period(DailyCount.day, start, end))
        .group_by(DailyCount.dimension, DailyCount.value)
    ).all()
    counts = {dimension: {} for dimension in COUNT_DIMENSIONS}
    for dimension, value, total in rows:
        if total:
            counts[dimension][value] = int(total)
    return counts


def open_count(session, start=None, end=None):
    """Applications submitted in the period that still await a decision (as their events said)."""
    return session.scalar(select(func.count()).select_from(ApplicationState).where(
        ApplicationState.is_open.is_(True), *_period(ApplicationState.submitted_day, start, end)))


def summary(session, start=None, end=None):
    """Applications submitted in the period: totals, by day, and by service, district, centre,
    channel and current status."""
    counts = submission_counts(session, start, end)
    by_day = session.execute(
        select(DailyCount.day, DailyCount.applications)
        .where(DailyCount.dimension == "all", *_period(DailyCount.day, start, end))
        .order_by(DailyCount.day)
    ).all()
    report = {
        "start": start,
        "end": end,
        "totals": {
            "applications": counts["all"].get("", 0),
            "open": open_count(session, start, end),
        },
        "by_day": [{"day": day, "applications": count} for day, count in by_day if count],
    }
    for dimension, key in BREAKDOWN_KEYS.items():
        report[f"by_{dimension}"] = ranked(counts[dimension], key)
    return SUMMARY.dump(report)


def decision_counts(session, start=None, end=None):
    """{dimension: {value: {approved, rejected, on_time, late}}} for decisions taken in the period."""
    columns = [func.sum(getattr(DailyDecision, name)) for name in DECISION_COUNTS]
    rows = session.execute(
        select(DailyDecision.dimension, DailyDecision.value, *columns)
        .where(*_period(DailyDecision.day, start, end))
        .group_by(DailyDecision.dimension, DailyDecision.value)
    ).all()
    counts = defaultdict(dict)
    for dimension, value, *sums in rows:
        counts[dimension][value] = {name: int(total or 0) for name, total in zip(DECISION_COUNTS, sums)}
    return counts


def processing_times(session, start=None, end=None):
    """Processing seconds of the decisions taken in the period: {service_code: [seconds]}."""
    rows = session.execute(
        select(ApplicationState.service_code, ApplicationState.processing_seconds)
        .where(ApplicationState.decided_day.is_not(None), *_period(ApplicationState.decided_day, start, end))
    ).all()
    by_service = defaultdict(list)
    for code, seconds in rows:
        by_service[code].append(seconds)
    return by_service


def sla(session, start=None, end=None):
    """Decisions taken in the period within the legal deadline and late, in total, per service
    (with processing time from submission to decision, median and 90th percentile) and per district."""
    counts = decision_counts(session, start, end)
    times = processing_times(session, start, end)
    every_time = [seconds for values in times.values() for seconds in values]

    def row(figures):
        return {"decided": figures["on_time"] + figures["late"], **figures,
                "compliance": compliance(figures["on_time"], figures["late"])}

    empty = dict.fromkeys(DECISION_COUNTS, 0)
    return SLA.dump({
        "start": start,
        "end": end,
        "totals": {**row(counts["all"].get("", empty)), "processing": processing_figures(every_time)},
        "by_service": [
            {"service_code": code, **row(figures), "processing": processing_figures(times.get(code, []))}
            for code, figures in sorted(counts["service"].items())
        ],
        "by_district": [{"district": code, **row(figures)} for code, figures in sorted(counts["district"].items())],
    })


def overdue(session, today, limit=1000, offset=0):
    """Open applications past their net due date (paused clocks, resumptions, extensions and closure days
    counted; an application whose clock is stopped is not overdue), oldest due first: tracking numbers
    and due dates only."""
    late = (ApplicationState.is_open.is_(True), ApplicationState.clock_paused.is_(False), ApplicationState.due_date < today)
    total = session.scalar(select(func.count()).select_from(ApplicationState).where(*late))
    backlog = session.scalar(select(func.count()).select_from(ApplicationState).where(ApplicationState.is_open.is_(True)))
    rows = session.execute(
        select(ApplicationState.tracking_number, ApplicationState.service_code, ApplicationState.district,
               ApplicationState.centre, ApplicationState.status, ApplicationState.due_date)
        .where(*late).order_by(ApplicationState.due_date, ApplicationState.tracking_number)
        .offset(offset).limit(limit)
    ).all()
    return OVERDUE.dump({
        "as_of": today,
        "open_backlog": backlog,
        "overdue": total,
        "items": [
            {"tracking_number": number, "service_code": code, "district": district, "centre": centre,
             "status": status, "due_date": due, "days_overdue": (today - due).days}
            for number, code, district, centre, status, due in rows
        ],
    })


FEE_FIGURES = ("invoiced_tiyin", "paid_tiyin", "refunded_tiyin", "outstanding_tiyin")


def fees(session, start=None, end=None):
    """Invoiced, paid, refunded and outstanding amounts in tiyin of the invoices issued in the months of
    the period, by month, centre and service, and their totals. Paid counts every payment and refunded
    every refund (an invoice paid, refunded by the provider and paid again is paid twice, refunded
    once); outstanding is what invoices still unpaid ask for."""
    conditions = []
    if start is not None:
        conditions.append(FeeState.month >= month_of(start))
    if end is not None:
        conditions.append(FeeState.month <= month_of(end))
    rows = session.execute(
        select(FeeState.month, FeeState.centre, FeeState.service_code, func.count(),
               func.sum(FeeState.invoiced_tiyin), func.sum(FeeState.paid_tiyin), func.sum(FeeState.refunded_tiyin),
               func.sum(case((FeeState.state == "issued", FeeState.invoiced_tiyin), else_=0)))
        .where(*conditions).group_by(FeeState.month, FeeState.centre, FeeState.service_code)
        .order_by(FeeState.month, FeeState.centre, FeeState.service_code)
    ).all()
    lines = [{"month": month, "centre": centre, "service_code": code, "invoices": count,
              **dict(zip(FEE_FIGURES, (int(value or 0) for value in sums)))}
             for month, centre, code, count, *sums in rows]
    totals = {figure: sum(line[figure] for line in lines) for figure in FEE_FIGURES}
    totals["invoices"] = sum(line["invoices"] for line in lines)
    return FEES.dump({"start": start, "end": end, "currency": "UZS", "totals": totals, "rows": lines})


def open_data(session, month, start, end):
    """Aggregates anyone may read, of one whole month: every cell under the suppression threshold is withheld."""
    counts = submission_counts(session, start, end)
    total = counts["all"].get("", 0)
    published_total = suppress({"": total})[""]
    fee_totals = fees(session, start, end)["totals"]
    # Money only as the month's totals: one invoice's amount would tell what one person paid for.
    report = {"month": month, "start": start, "end": end, "suppressed_below": 5,
              "totals": {"applications": published_total},
              "fees": {figure: fee_totals[figure] if fee_totals["invoices"] >= 5 else None for figure in FEE_FIGURES}}
    for dimension in ("service", "district", "channel", "status"):
        cells = suppress(counts[dimension]) if published_total is not None else dict.fromkeys(counts[dimension])
        report[f"by_{dimension}"] = [
            {BREAKDOWN_KEYS[dimension]: value, "applications": cells[value], "suppressed": cells[value] is None}
            for value in sorted(cells)
        ]
    return OPEN_DATA.dump(report)


def regional_summary(session, start=None, end=None):
    """What a region tells the national aggregator: its totals, breakdowns and SLA headline."""
    counts = submission_counts(session, start, end)
    decisions = decision_counts(session, start, end).get("all", {}).get("", dict.fromkeys(DECISION_COUNTS, 0))
    times = processing_times(session, start, end)
    processing = processing_figures([seconds for values in times.values() for seconds in values])
    months = defaultdict(int)
    for day, code, count in session.execute(
        select(DailyCount.day, DailyCount.value, DailyCount.applications)
        .where(DailyCount.dimension == "service", *_period(DailyCount.day, start, end))
    ):
        months[(code, day.strftime("%Y-%m"))] += count
    return {
        "totals": {
            "applications": counts["all"].get("", 0),
            "open": open_count(session, start, end),
            "decided": decisions["on_time"] + decisions["late"],
            **decisions,
        },
        "by_service": counts["service"],
        "by_status": counts["status"],
        "by_service_month": [{"service_code": code, "month": month, "applications": count}
                             for (code, month), count in sorted(months.items()) if count],
        "fees": fees(session, start, end),
        "sla": {
            "sla_compliance": compliance(decisions["on_time"], decisions["late"]),
            "median_processing_seconds": processing["median_seconds"],
            "p90_processing_seconds": processing["p90_seconds"],
        },
    }


def iso_date(day: date | None):
    return day.isoformat() if day else None


def monthly(session, start, end, today):
    """Month by month over the period (to today at the latest): applications submitted, decisions
    taken (on time and late, compliance, median processing time) and the open backlog at the
    month's end (today for the current month). Without `from`, the series starts at the first
    submission seen."""
    end = min(end or today, today)
    if start is None:
        start = session.scalar(select(func.min(DailyCount.day)).where(DailyCount.dimension == "all")) or end
    if start > end:
        return []
    months = months_between(start, end)
    rows = {month: {"month": month, **dict.fromkeys(("submitted", "decided", *DECISION_COUNTS), 0)} for month in months}
    submitted_by_day = session.execute(
        select(DailyCount.day, DailyCount.applications).where(DailyCount.dimension == "all", DailyCount.day <= end)
    ).all()
    for day, count in submitted_by_day:
        if day >= start:
            rows[month_of(day)]["submitted"] += count
    for day, *sums in session.execute(
        select(DailyDecision.day, *(getattr(DailyDecision, name) for name in DECISION_COUNTS))
        .where(DailyDecision.dimension == "all", *_period(DailyDecision.day, start, end))
    ):
        row = rows[month_of(day)]
        for name, count in zip(DECISION_COUNTS, sums):
            row[name] += count
    seconds = defaultdict(list)
    for day, value in session.execute(
        select(ApplicationState.decided_day, ApplicationState.processing_seconds)
        .where(ApplicationState.decided_day.is_not(None), *_period(ApplicationState.decided_day, start, end))
    ):
        seconds[month_of(day)].append(value)
    closed_by_day = defaultdict(int)
    for day, count in session.execute(
        select(ApplicationState.decided_day, func.count()).where(ApplicationState.decided_day.is_not(None),
                                                                  ApplicationState.decided_day <= end)
        .group_by(ApplicationState.decided_day)
    ):
        closed_by_day[day] += count
    # Closed without a decision (withdrawn): the newest change is the closing one.
    for (changed_at,) in session.execute(
        select(ApplicationState.changed_at).where(ApplicationState.is_open.is_(False), ApplicationState.decided_day.is_(None))
    ):
        closed_by_day[local_date(changed_at)] += 1
    for month in months:
        row = rows[month]
        last_day = min(month_end(month), end)
        row["decided"] = row["on_time"] + row["late"]
        row["sla_compliance"] = compliance(row["on_time"], row["late"])
        row["median_processing_seconds"] = processing_figures(seconds.get(month, []))["median_seconds"]
        row["backlog"] = (sum(count for day, count in submitted_by_day if day <= last_day)
                          - sum(count for day, count in closed_by_day.items() if day <= last_day))
    return [rows[month] for month in months]


def month_end(month):
    year, number = (int(part) for part in month.split("-"))
    following = date(year + 1, 1, 1) if number == 12 else date(year, number + 1, 1)
    return following - timedelta(days=1)
