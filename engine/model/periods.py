"""Periods (``YYYY-MM``) and fiscal-year arithmetic.

A period is a calendar month written ``YYYY-MM``. Workbooks may hold it as
text (``2026-03``; ``2026-3`` is tolerated, since Excel users drop the zero)
or as a date cell, whose month is the period. The fiscal year starts in the
month given by ``FiscalYearStart`` (docs/contract.md#settings): with 7, fiscal year 2025-07 ..
2026-06 holds 2026-03; with 1 it is the calendar year.
"""

from __future__ import annotations

import re
from datetime import date, datetime

_PERIOD_TEXT = re.compile(r"(\d{4})-(\d{1,2})")


def parse_period(value: object) -> str | None:
    """``'2026-03'`` from text ``2026-03`` / ``2026-3`` or a date cell; None if not a period."""
    if isinstance(value, datetime | date):
        # datetime is a subclass of date; pandas Timestamp is a datetime.
        return f"{value.year:04d}-{value.month:02d}"
    if isinstance(value, str):
        found = _PERIOD_TEXT.fullmatch(value.strip())
        if found:
            year, month = int(found.group(1)), int(found.group(2))
            if 1 <= month <= 12 and year >= 1:
                return f"{year:04d}-{month:02d}"
    return None


def _split(period: str) -> tuple[int, int]:
    parsed = parse_period(period)
    if parsed is None:
        raise ValueError(f"not a period (YYYY-MM): {period!r}")
    return int(parsed[:4]), int(parsed[5:])


def period_index(period: str) -> int:
    """Months since January of year 0: consecutive periods differ by 1."""
    year, month = _split(period)
    return year * 12 + (month - 1)


def period_from_index(index: int) -> str:
    """The inverse of `period_index`."""
    year, month0 = divmod(index, 12)
    return f"{year:04d}-{month0 + 1:02d}"


def add_months(period: str, months: int) -> str:
    """``add_months('2026-11', 3) == '2027-02'``; negative months go back."""
    return period_from_index(period_index(period) + months)


def months_between(first: str, last: str) -> int:
    """How many months ``last`` is after ``first`` (negative if before)."""
    return period_index(last) - period_index(first)


def _check_start(start_month: int) -> None:
    if not 1 <= start_month <= 12:
        raise ValueError(f"fiscal year start must be a month number 1-12, got {start_month}")


def fiscal_year(period: str, start_month: int) -> tuple[str, str]:
    """First and last period of the fiscal year holding ``period``."""
    _check_start(start_month)
    year, month = _split(period)
    first_year = year if month >= start_month else year - 1
    first = f"{first_year:04d}-{start_month:02d}"
    return first, add_months(first, 11)


def fiscal_periods(period: str, start_month: int) -> list[str]:
    """All 12 periods of the fiscal year holding ``period``, in order."""
    first, _ = fiscal_year(period, start_month)
    start = period_index(first)
    return [period_from_index(start + i) for i in range(12)]


def fiscal_periods_to_date(period: str, start_month: int) -> list[str]:
    """The fiscal year's periods from its first up to and including ``period``."""
    first, _ = fiscal_year(period, start_month)
    start = period_index(first)
    return [period_from_index(i) for i in range(start, period_index(period) + 1)]


def fiscal_periods_remaining(period: str, start_month: int) -> list[str]:
    """The fiscal year's periods after ``period`` (empty in the year's last month)."""
    _, last = fiscal_year(period, start_month)
    return [period_from_index(i) for i in range(period_index(period) + 1, period_index(last) + 1)]
