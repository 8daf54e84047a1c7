"""The legal clock (services.intake.domain.LegalClock) over Uzbekistan's real calendar of 2026 (holidays,
moved days off) and a centre's closure days: pause, resumption, extension limits, closures."""
from datetime import date

import pytest

from oss_common.calendar import add_working_days, is_working_day, working_days_between
from services.intake.domain import ClockRules, ExtensionRefused, LegalClock

# March 2026: Fri 20 Eid al-Fitr, Sat 21 Navruz, Mon 23 Navruz observed.
MON_16_MARCH = date(2026, 3, 16)


def test_a_clock_paused_over_navruz_resumes_with_the_days_that_were_left():
    clock = LegalClock.start(MON_16_MARCH, 10)
    # 17, 18, 19 | 20 Eid, 21-22 weekend, 23 Navruz observed | 24, 25, 26, 27, 30, 31 March, 1 April
    assert clock.due_date == date(2026, 4, 1)
    paused = clock.pause(date(2026, 3, 19))  # the agency had 17, 18 and 19: 7 left
    assert paused.paused and paused.working_days_left == 7
    assert paused.pause(date(2026, 3, 20)) is paused  # already stopped
    resumed = paused.resume(date(2026, 3, 24))  # the holidays fell in the pause: nothing is lost or gained for them
    # 7 working days after Tue 24 March: 25, 26, 27, 30, 31 March, 1, 2 April
    assert resumed.due_date == date(2026, 4, 2) and not resumed.paused and resumed.started_on == date(2026, 3, 24)
    assert resumed.working_days_left is None and resumed.resume(date(2026, 3, 25)) is resumed


def test_a_clock_paused_before_a_moved_day_off_counts_the_worked_saturday():
    # December 2026: Tue 8 Constitution Day; Sat 12 is worked, its day off moved to Thu 31.
    clock = LegalClock.start(date(2026, 12, 4), 5)  # 7, 9, 10, 11, 12 (the worked Saturday)
    assert clock.due_date == date(2026, 12, 12)
    resumed = clock.pause(date(2026, 12, 9)).resume(date(2026, 12, 28))  # 3 left: 29, 30, (31 off, 1-2 Jan, 3 Sun) 4 Jan
    assert resumed.due_date == date(2027, 1, 4)


def test_a_clock_paused_when_overdue_stays_as_overdue_after_resumption():
    clock = LegalClock(due_date=date(2026, 12, 1), started_on=date(2026, 11, 24))
    paused = clock.pause(date(2026, 12, 3))  # 2 and 3 December past the due date
    assert paused.working_days_left == -2
    resumed = paused.resume(date(2026, 12, 7))
    assert resumed.due_date == date(2026, 12, 3)
    assert working_days_between(resumed.due_date, date(2026, 12, 7)) == 2  # Fri 4, Mon 7: still two days late


RULES = ClockRules(stops_on_return=True, extension_working_days=5, max_extensions=1)


def test_an_extension_moves_the_due_date_over_the_new_year_holidays():
    clock = LegalClock(due_date=date(2026, 12, 30), started_on=date(2026, 12, 16))
    extended = clock.extend(2, RULES)
    # 31 December off (moved from the 12th), 1-2 January holidays, 3 a Sunday: Mon 4, Tue 5
    assert extended.due_date == date(2027, 1, 5) and extended.extensions == 1


@pytest.mark.parametrize("days", [0, 6, -1])
def test_an_extension_beyond_the_services_limit_names_working_days(days):
    with pytest.raises(ExtensionRefused) as refused:
        LegalClock(due_date=date(2026, 12, 30), started_on=date(2026, 12, 16)).extend(days, RULES)
    assert refused.value.field == "working_days" and "between 1 and 5" in str(refused.value)


def test_extensions_are_counted_against_the_service_allowance():
    once = LegalClock(due_date=date(2026, 11, 9), started_on=date(2026, 11, 2)).extend(5, RULES)
    with pytest.raises(ExtensionRefused) as refused:
        once.extend(1, RULES)
    assert refused.value.field == "extensions" and "at most 1" in str(refused.value)
    twice = once.extend(1, ClockRules(extension_working_days=5, max_extensions=2))
    assert (twice.due_date, twice.extensions) == (date(2026, 11, 17), 2)  # 9 + 5 = 16, + 1 = 17
    with pytest.raises(ExtensionRefused) as refused:
        LegalClock(due_date=date(2026, 11, 9), started_on=date(2026, 11, 2)).extend(1, ClockRules())
    assert refused.value.field == "working_days" and "cannot be extended" in str(refused.value)


def test_a_paused_clock_keeps_an_extension_for_its_resumption():
    paused = LegalClock.start(date(2026, 11, 2), 5).pause(date(2026, 11, 4))  # 5, 6, 9 left
    extended = paused.extend(2, RULES)
    assert extended.working_days_left == 5 and extended.due_date == date(2026, 11, 11)
    assert extended.resume(date(2026, 11, 16)).due_date == date(2026, 11, 23)  # 17, 18, 19, 20, 23


def test_a_closure_day_gives_the_clock_that_day_back():
    clock = LegalClock.start(date(2026, 11, 2), 5)  # 3, 4, 5, 6, 9
    assert clock.due_date == date(2026, 11, 9)
    closed = clock.close(date(2026, 11, 4))  # a power cut on Wednesday
    assert closed.due_date == date(2026, 11, 10) and not is_working_day(date(2026, 11, 4), closed.closed)
    assert closed.close(date(2026, 11, 8)).due_date == date(2026, 11, 10)  # a Sunday changes nothing
    assert closed.close(date(2026, 11, 11)).due_date == date(2026, 11, 10)  # after the due date: nothing
    assert clock.close(date(2026, 11, 2)).due_date == date(2026, 11, 9)  # the filing day did not count anyway
    # Filed after the closure was declared: the clock skips it from the start.
    assert LegalClock.start(date(2026, 11, 2), 5, frozenset({date(2026, 11, 4)})).due_date == date(2026, 11, 10)
    assert add_working_days(date(2026, 11, 2), 5, {date(2026, 11, 4), date(2026, 11, 5)}) == date(2026, 11, 11)


def test_a_closure_before_a_pause_adds_a_day_to_what_is_left():
    paused = LegalClock.start(date(2026, 11, 2), 5).pause(date(2026, 11, 5))  # used 3, 4, 5: 6, 9 left
    assert paused.working_days_left == 2
    closed = paused.close(date(2026, 11, 4))
    assert closed.working_days_left == 3 and closed.due_date == date(2026, 11, 10)
    assert closed.resume(date(2026, 11, 16)).due_date == date(2026, 11, 19)
    assert paused.close(date(2026, 11, 12)).working_days_left == 2  # the clock was stopped that day


def test_a_service_without_clock_rules_gets_the_defaults():
    assert ClockRules.of({"deadline_working_days": 3}) == ClockRules(True, 0, 1)
    assert ClockRules.of({"clock": {"stops_on_return": False, "extension_working_days": 4, "max_extensions": 2}}) \
        == ClockRules(False, 4, 2)
