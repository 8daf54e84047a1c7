"""Working-day deadlines: weekends and Uzbekistan's public holidays do not count."""
from datetime import date, datetime, timezone

from oss_common.calendar import add_working_days, is_working_day, local_date, working_days_between


def test_navruz_and_the_weekend_are_skipped():
    # 2026: Eid al-Fitr Fri 20 March, Navruz Sat 21 March; Sat/Sun off.
    assert not is_working_day(date(2026, 3, 21))
    assert not is_working_day(date(2026, 3, 20))
    assert not is_working_day(date(2026, 3, 22))
    assert is_working_day(date(2026, 3, 19))
    # Thu 19 March + 1 working day skips Fri (Eid), Sat (Navruz), Sun and Navruz's observed Monday.
    assert not is_working_day(date(2026, 3, 23))
    assert add_working_days(date(2026, 3, 19), 1) == date(2026, 3, 24)


def test_a_saturday_made_a_working_day_counts():
    # 2026: the day off of Sat 12 December moved to Thu 31 December, so that Saturday is worked.
    assert is_working_day(date(2026, 12, 12)) and not is_working_day(date(2026, 12, 31))
    assert not is_working_day(date(2026, 12, 5))
    # Fri 11 Dec + 1 = Sat 12 Dec; Fri 4 Dec + 2 skips the weekend and Constitution Day (Tue 8 Dec).
    assert add_working_days(date(2026, 12, 11), 1) == date(2026, 12, 12)
    assert add_working_days(date(2026, 12, 4), 2) == date(2026, 12, 9)
    # Wed 30 Dec + 1: the 31st is off and 1-2 January are holidays, 3 January a Sunday.
    assert add_working_days(date(2026, 12, 30), 1) == date(2027, 1, 4)


def test_plain_week_without_holidays():
    # Mon 2 Nov 2026 + 5 working days = Mon 9 Nov
    assert add_working_days(date(2026, 11, 2), 5) == date(2026, 11, 9)
    # Fri + 1 = next Mon
    assert add_working_days(date(2026, 11, 6), 1) == date(2026, 11, 9)


def test_independence_day_is_not_a_working_day():
    assert not is_working_day(date(2026, 9, 1))
    assert add_working_days(date(2026, 8, 31), 1) == date(2026, 9, 2)


def test_working_days_between_is_the_inverse_of_adding():
    start = date(2026, 3, 16)
    for count in (0, 1, 3, 10, 30):
        assert working_days_between(start, add_working_days(start, count)) == count
    assert working_days_between(date(2026, 11, 9), date(2026, 11, 2)) == -5


def test_local_date_is_tashkent_time():
    # 20:30 UTC on 31 Dec is already 1 Jan in Tashkent (UTC+5)
    assert local_date(datetime(2026, 12, 31, 20, 30, tzinfo=timezone.utc)) == date(2027, 1, 1)


def test_the_first_deadline_imports_nothing():
    """holidays.country_holidays("UZ") imported ~280 country modules on its first call: ~80 ms
    on a fresh process's first submission (the steady-load benchmark's p99 came from it).
    The calendar is imported with the module, at start-up."""
    import subprocess
    import sys

    script = (
        "import sys; from datetime import date; from oss_common.calendar import add_working_days;"
        "before = set(sys.modules);"
        "assert add_working_days(date(2026, 3, 19), 1) == date(2026, 3, 24);"
        "print(len(set(sys.modules) - before))"
    )
    imported = int(subprocess.run([sys.executable, "-c", script], check=True, capture_output=True, text=True).stdout)
    assert imported == 0
