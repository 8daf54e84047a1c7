"""Reporting's rules in plain Python: percentiles, small-cell
suppression for open data and the national sum of regional answers."""
import math

COUNT_DIMENSIONS = ("all", "service", "district", "centre", "channel", "status")
DECISION_DIMENSIONS = ("all", "service", "district")
SUPPRESSION_THRESHOLD = 5


def percentile(ordered, fraction):
    """Linear interpolation between the closest ranks of sorted `ordered` (as PostgreSQL's
    percentile_cont); None for no values. percentile(values, 0.5) is the median."""
    if not ordered:
        return None
    position = fraction * (len(ordered) - 1)
    lower, upper = math.floor(position), math.ceil(position)
    return ordered[lower] + (ordered[upper] - ordered[lower]) * (position - lower)


def processing_figures(seconds):
    """Median and 90th percentile of processing times (seconds), and how many there were."""
    ordered = sorted(seconds)
    return {
        "decided": len(ordered),
        "median_seconds": _round(percentile(ordered, 0.5)),
        "p90_seconds": _round(percentile(ordered, 0.9)),
    }


def compliance(on_time, late):
    """Share of decisions taken within the legal deadline; None when nothing was decided."""
    decided = on_time + late
    return round(on_time / decided, 4) if decided else None


def suppress(cells, threshold=SUPPRESSION_THRESHOLD):
    """Counts with every cell of 1 to threshold-1 hidden (None), so no citizen can be singled out.

    When exactly one cell would be hidden, the published total minus the other cells would give
    it away, so the smallest other non-zero cell is hidden as well.
    """
    hidden = {key for key, count in cells.items() if 0 < count < threshold}
    if len(hidden) == 1:
        others = sorted((count, str(key)) for key, count in cells.items() if key not in hidden and count > 0)
        if others:
            hidden.add(next(key for key in cells if str(key) == others[0][1]))
    return {key: (None if key in hidden else count) for key, count in cells.items()}


def merge_regions(answers, missing, asked):
    """The national view from the regions' own summaries: totals are the sums of the regions'."""
    totals = {}
    by_service, by_status = {}, {}
    regions = []
    by_region_service_month = []
    fees = {"totals": {}, "by_region": [], "rows": []}
    for slug in asked:
        answer = answers.get(slug)
        if answer is None:
            continue
        for key, value in answer["totals"].items():
            totals[key] = totals.get(key, 0) + value
        for code, count in answer["by_service"].items():
            by_service[code] = by_service.get(code, 0) + count
        for status, count in answer["by_status"].items():
            by_status[status] = by_status.get(status, 0) + count
        regions.append({"region": slug, **answer["totals"], **answer["sla"]})
        by_region_service_month.extend({"region": slug, **row} for row in answer["by_service_month"])
        if answer.get("fees"):  # a region not yet upgraded answers without them
            for key, value in answer["fees"]["totals"].items():
                fees["totals"][key] = fees["totals"].get(key, 0) + value
            fees["by_region"].append({"region": slug, **answer["fees"]["totals"]})
            fees["rows"].extend({"region": slug, **row} for row in answer["fees"]["rows"])
    totals.setdefault("applications", 0)
    totals["sla_compliance"] = compliance(totals.get("on_time", 0), totals.get("late", 0))
    return {
        "partial": bool(missing),
        "missing": sorted(missing),
        "regions_asked": list(asked),
        "totals": totals,
        "by_service": ranked(by_service, "service_code"),
        "by_status": ranked(by_status, "status"),
        "regions": regions,
        "by_region_service_month": by_region_service_month,
        "fees": fees,
    }


def ranked(counts, key_name, value_name="applications"):
    return [{key_name: key, value_name: count}
            for key, count in sorted(counts.items(), key=lambda item: (-item[1], item[0])) if count]


def _round(value):
    return None if value is None else round(value, 3)


def month_of(day):
    """`2026-03` for any day of March 2026."""
    return day.strftime("%Y-%m")


def months_between(first, last):
    """Every month from the one holding `first` to the one holding `last`, both included, as `YYYY-MM`."""
    months = []
    year, month = first.year, first.month
    while (year, month) <= (last.year, last.month):
        months.append(f"{year:04d}-{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return months


MONTHLY_SUMS = ("submitted", "decided", "approved", "rejected", "on_time", "late", "backlog")


def merge_monthly(answers, missing, asked):
    """The national series from the regions' own: each region's months as it sent them, and per
    month the sums over the regions (compliance recomputed from the sums; a national median cannot
    be had from regional medians, so only the regions carry one)."""
    regions, by_month = [], {}
    for slug in asked:
        answer = answers.get(slug)
        if answer is None:
            continue
        regions.append({"region": slug, "months": answer})
        for row in answer:
            total = by_month.setdefault(row["month"], dict.fromkeys(MONTHLY_SUMS, 0))
            for key in MONTHLY_SUMS:
                total[key] += row[key] or 0
    totals = [{"month": month, **figures, "sla_compliance": compliance(figures["on_time"], figures["late"])}
              for month, figures in sorted(by_month.items())]
    return {"partial": bool(missing), "missing": sorted(missing), "regions_asked": list(asked),
            "regions": regions, "totals": totals}
