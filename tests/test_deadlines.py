from datetime import UTC, date, datetime

import pytest

from app.services.deadlines import deadline, local_date


@pytest.mark.parametrize(
    ("received", "days", "due", "unshifted"),
    [
        # An ordinary Tuesday: 7 days later is a Tuesday.
        (date(2026, 11, 3), 7, date(2026, 11, 10), date(2026, 11, 10)),
        # Ends on a Saturday: moves to Monday.
        (date(2026, 11, 7), 7, date(2026, 11, 16), date(2026, 11, 14)),
        # Ends on 17 November 2026 (a Tuesday holiday): moves to Wednesday.
        (date(2026, 11, 10), 7, date(2026, 11, 18), date(2026, 11, 17)),
        # Year end: 24, 25, 26 December are holidays, 26-27 Dec 2026 a weekend.
        (date(2026, 12, 17), 7, date(2026, 12, 28), date(2026, 12, 24)),
        # Across New Year: 1 January 2027 is a Friday holiday, then a weekend.
        (date(2026, 12, 2), 30, date(2027, 1, 4), date(2027, 1, 1)),
        # Easter 2027: Good Friday 26 March, Easter Monday 29 March.
        (date(2027, 3, 19), 7, date(2027, 3, 30), date(2027, 3, 26)),
        # Easter 2026: Monday 6 April.
        (date(2026, 3, 7), 30, date(2026, 4, 7), date(2026, 4, 6)),
    ],
)
def test_deadline_counts_from_the_next_day_and_skips_weekends_and_holidays(
    received: date, days: int, due: date, unshifted: date
) -> None:
    result = deadline(received, days)
    assert result.due_on == due
    assert result.unshifted_on == unshifted
    assert result.shifted == (due != unshifted)


def test_receipt_date_is_the_day_in_prague() -> None:
    # 23:30 UTC on 31 December is already 1 January in Prague.
    assert local_date(datetime(2026, 12, 31, 23, 30, tzinfo=UTC)) == date(2027, 1, 1)


@pytest.mark.parametrize(
    ("received", "due", "first", "second"),
    [
        # 17 Jan 2026 is a Saturday: each extension runs from the Monday it moved to.
        (date(2025, 12, 18), date(2026, 1, 19), date(2026, 2, 18), date(2026, 3, 20)),
        # 3 Apr 2026 is Good Friday, then the weekend and Easter Monday.
        (date(2026, 3, 4), date(2026, 4, 7), date(2026, 5, 7), date(2026, 6, 8)),
    ],
)
def test_extensions_run_from_the_shifted_end_of_the_running_period(
    received: date, due: date, first: date, second: date
) -> None:
    assessment = deadline(received, 30)
    assert assessment.due_on == due
    extended = deadline(assessment.due_on, 30)
    assert extended.due_on == first
    assert deadline(extended.due_on, 30).due_on == second
