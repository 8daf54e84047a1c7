"""Working days in Uzbekistan: weekends and public holidays (from `holidays`) do not count."""
from datetime import date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

# Imported with this module, at start-up: `holidays.country_holidays("UZ")` imported the country
# modules (~250 of them, ~80 ms) on its first call, which fell on a fresh process's first submission.
from holidays.countries.uzbekistan import Uzbekistan

TASHKENT = ZoneInfo("Asia/Tashkent")


@lru_cache(maxsize=64)
def _holidays_of(year):
    return Uzbekistan(years=year)


def is_working_day(day: date) -> bool:
    """Not a weekend day nor a holiday, and a Saturday the government moved a day off from is one."""
    return _holidays_of(day.year).is_working_day(day)


def add_working_days(start: date, working_days: int) -> date:
    """The date `working_days` working days after `start` (start itself does not count)."""
    day = start
    remaining = working_days
    while remaining > 0:
        day += timedelta(days=1)
        if is_working_day(day):
            remaining -= 1
    return day


def working_days_between(start: date, end: date) -> int:
    """Working days after `start` up to and including `end`; negative when `end` is earlier."""
    if end < start:
        return -working_days_between(end, start)
    return sum(1 for offset in range(1, (end - start).days + 1) if is_working_day(start + timedelta(days=offset)))


def local_date(moment: datetime) -> date:
    """The calendar date in Uzbekistan (UTC+5) of an aware timestamp."""
    return moment.astimezone(TASHKENT).date()
