"""Statutory deadlines: one jurisdiction profile (Czech by default) and one deadline function.

Civil Code § 605: a period in days starts on the day after the event; § 607: a period ending on
a Saturday, Sunday or public holiday ends on the next working day.
"""

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import cache, lru_cache
from zoneinfo import ZoneInfo

import holidays


@dataclass(frozen=True)
class Jurisdiction:
    country: str
    timezone: str
    acknowledgement_days: int
    assessment_days: int
    extension_days: int
    max_extensions: int
    meeting_days: int
    retention_years: int


CZECH = Jurisdiction(
    country="CZ",
    timezone="Europe/Prague",
    acknowledgement_days=7,
    assessment_days=30,
    extension_days=30,
    max_extensions=2,
    meeting_days=14,
    retention_years=5,
)


@dataclass(frozen=True)
class Deadline:
    """The legal last day, and the unshifted day where a weekend or holiday moved it."""

    due_on: date
    unshifted_on: date

    @property
    def shifted(self) -> bool:
        return self.due_on != self.unshifted_on


@cache
def _holidays(country: str, year: int) -> holidays.HolidayBase:
    return holidays.country_holidays(country, years=[year, year + 1])


def is_working_day(day: date, jurisdiction: Jurisdiction = CZECH) -> bool:
    return day.weekday() < 5 and day not in _holidays(jurisdiction.country, day.year)


@lru_cache(maxsize=4096)
def deadline(start: date, days: int, jurisdiction: Jurisdiction = CZECH) -> Deadline:
    """The last day of a period of `days` days that starts the day after `start`."""
    unshifted = start + timedelta(days=days)
    due = unshifted
    while not is_working_day(due, jurisdiction):
        due += timedelta(days=1)
    return Deadline(due_on=due, unshifted_on=unshifted)


def local_date(moment: datetime, jurisdiction: Jurisdiction = CZECH) -> date:
    """The calendar day of a moment where the organisation is (receipt is a local date)."""
    return moment.astimezone(ZoneInfo(jurisdiction.timezone)).date()
