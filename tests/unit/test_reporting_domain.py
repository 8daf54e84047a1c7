"""Reporting's plain rules: percentiles, SLA compliance, small-cell suppression, the national sum."""
import random
import statistics
from datetime import date, datetime, timezone

import pytest
from marshmallow import ValidationError

from services.reporting.domain import compliance, merge_regions, percentile, processing_figures, suppress


def test_median_is_the_statistics_median_for_odd_and_even_counts():
    for size in (1, 2, 3, 10, 101):
        values = sorted(random.Random(size).uniform(0, 1e6) for _ in range(size))
        assert percentile(values, 0.5) == pytest.approx(statistics.median(values))


def test_p90_interpolates_between_closest_ranks():
    values = list(range(1, 11))  # 1..10: position 0.9 * 9 = 8.1 -> 9 + 0.1 * (10 - 9)
    assert percentile(values, 0.9) == pytest.approx(9.1)
    assert percentile([7.0], 0.9) == 7.0
    assert percentile([], 0.5) is None


def test_processing_figures_sort_their_input():
    figures = processing_figures([30.0, 10.0, 20.0])
    assert figures == {"decided": 3, "median_seconds": 20.0, "p90_seconds": 28.0}
    assert processing_figures([]) == {"decided": 0, "median_seconds": None, "p90_seconds": None}


def test_compliance_is_the_share_on_time():
    assert compliance(3, 1) == 0.75
    assert compliance(0, 0) is None


def test_cells_under_five_are_hidden_and_zeros_kept():
    cells = suppress({"a": 12, "b": 4, "c": 3, "d": 0, "e": 5})
    assert cells == {"a": 12, "b": None, "c": None, "d": 0, "e": 5}


def test_a_lone_small_cell_takes_the_smallest_other_with_it():
    # Published total 20 and a=11, b=6 would reveal c=3: so b goes too.
    assert suppress({"a": 11, "b": 6, "c": 3}) == {"a": 11, "b": None, "c": None}
    assert suppress({"only": 2}) == {"only": None}
    assert suppress({"a": 5, "b": 9}) == {"a": 5, "b": 9}


def test_no_published_cell_under_the_threshold_for_random_tables():
    rng = random.Random(7)
    for _ in range(200):
        cells = {f"k{i}": rng.choice([0, 1, 2, 3, 4, 5, 6, 20]) for i in range(rng.randint(1, 8))}
        published = suppress(cells)
        assert all(value is None or value == 0 or value >= 5 for value in published.values())
        hidden = [key for key, value in published.items() if value is None]
        assert len(hidden) != 1 or len([v for v in cells.values() if v]) == 1


def _answer(applications, on_time, late, months):
    return {
        "totals": {"applications": applications, "open": 1, "decided": on_time + late, "approved": on_time,
                   "rejected": late, "on_time": on_time, "late": late},
        "by_service": {"photocopying": applications},
        "by_status": {"submitted": 1, "approved": applications - 1},
        "by_service_month": [{"service_code": "photocopying", "month": month, "applications": n} for month, n in months],
        "sla": {"sla_compliance": compliance(on_time, late), "median_processing_seconds": 60.0, "p90_processing_seconds": 90.0},
    }


def test_national_totals_are_the_sum_of_the_regions_and_missing_ones_are_named():
    answers = {"jizzakh": _answer(10, 6, 2, [("2026-01", 10)]), "fergana": _answer(7, 3, 1, [("2026-02", 7)])}
    merged = merge_regions(answers, ["namangan"], ["jizzakh", "namangan", "fergana"])
    assert merged["partial"] is True and merged["missing"] == ["namangan"]
    assert merged["totals"]["applications"] == 17
    assert merged["totals"]["on_time"] == 9 and merged["totals"]["late"] == 3
    assert merged["totals"]["sla_compliance"] == 0.75
    assert [row["region"] for row in merged["regions"]] == ["jizzakh", "fergana"]
    assert merged["by_service"] == [{"service_code": "photocopying", "applications": 17}]
    assert {(row["region"], row["month"]) for row in merged["by_region_service_month"]} == {("jizzakh", "2026-01"), ("fergana", "2026-02")}


def test_complete_answer_is_not_partial():
    merged = merge_regions({"jizzakh": _answer(3, 1, 0, [])}, [], ["jizzakh"])
    assert merged["partial"] is False and merged["missing"] == []


def test_open_data_answers_whole_months_that_have_ended(monkeypatch):
    from services.reporting import schemas

    # 20:00 UTC on 31 December is already 1 January in Tashkent: December has ended.
    monkeypatch.setattr(schemas, "utc_now", lambda: datetime(2026, 12, 31, 20, 0, tzinfo=timezone.utc))
    query = schemas.OpenDataQuerySchema()
    assert query.load({}) == {"month": "2026-12", "start": date(2026, 12, 1), "end": date(2026, 12, 31)}
    assert query.load({"month": "2024-02"}) == {"month": "2024-02", "start": date(2024, 2, 1), "end": date(2024, 2, 29)}
    for month, message in (("2027-01", "has ended"), ("2027-05", "has ended"), ("2026-13", "YYYY-MM"),
                           ("2026-1", "YYYY-MM"), ("1969-12", "1970")):
        with pytest.raises(ValidationError) as refused:
            query.load({"month": month})
        assert message in refused.value.messages["month"][0]
    for period in ({"from": "2026-01-01"}, {"to": "2026-01-31"}):  # no free periods to difference
        with pytest.raises(ValidationError) as refused:
            query.load(period)
        assert set(refused.value.messages) == set(period)
