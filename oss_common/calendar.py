"""Working days in Uzbekistan: weekends and public holidays (from `holidays`) do not count, nor the days a
centre declared itself closed (`closed`: a set of dates, given by the caller for that centre)."""
from collections.abc import Collection
from datetime import date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

# Imported with this module, at start-up: `holidays.country_holidays("UZ")` imported the country
# modules (~250 of them, ~80 ms) on its first call, which fell on a fresh process's first submission.
from holidays.countries.uzbekistan import Uzbekistan

TASHKENT = ZoneInfo("Asia/Tashkent")
NO_CLOSURES: frozenset = frozenset()


@lru_cache(maxsize=64)
def _holidays_of(year):
    return Uzbekistan(years=year)


def is_working_day(day: date, closed: Collection[date] = NO_CLOSURES) -> bool:
    """Not a weekend day nor a holiday nor a closure day, and a Saturday the government moved a day off
    from is one."""
    return day not in closed and _holidays_of(day.year).is_working_day(day)


def add_working_days(start: date, working_days: int, closed: Collection[date] = NO_CLOSURES) -> date:
    """The date `working_days` working days after `start` (start itself does not count); a negative
    count goes back as many working days before it."""
    day = start
    step = timedelta(days=1 if working_days >= 0 else -1)
    remaining = abs(working_days)
    while remaining > 0:
        day += step
        if is_working_day(day, closed):
            remaining -= 1
    return day


def working_days_between(start: date, end: date, closed: Collection[date] = NO_CLOSURES) -> int:
    """Working days after `start` up to and including `end`; negative when `end` is earlier."""
    if end < start:
        return -working_days_between(end, start, closed)
    return sum(1 for offset in range(1, (end - start).days + 1)
               if is_working_day(start + timedelta(days=offset), closed))


def local_date(moment: datetime) -> date:
    """The calendar date in Uzbekistan (UTC+5) of an aware timestamp."""
    return moment.astimezone(TASHKENT).date()
