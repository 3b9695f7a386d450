"""Periods and fiscal years, against hand-worked examples."""

from datetime import date, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from costloop.engine.model.currency import MINOR_UNITS, is_known, minor_unit
from costloop.engine.model.periods import (
    add_months,
    fiscal_periods,
    fiscal_periods_remaining,
    fiscal_periods_to_date,
    fiscal_year,
    months_between,
    parse_period,
    period_from_index,
    period_index,
)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-03", "2026-03"),
        ("  2026-03 ", "2026-03"),
        ("2026-3", "2026-03"),
        ("2026-12", "2026-12"),
        (date(2026, 3, 17), "2026-03"),
        (datetime(2025, 11, 30, 13, 5), "2025-11"),
        ("2026-13", None),
        ("2026-00", None),
        ("26-03", None),
        ("2026/03", None),
        ("March 2026", None),
        ("", None),
        (None, None),
        (202603, None),
        (45000.0, None),
        (True, None),
    ],
)
def test_parse_period(value, expected):
    assert parse_period(value) == expected


def test_period_index_is_consecutive_across_a_year_end():
    assert period_index("2026-01") - period_index("2025-12") == 1
    assert period_index("0001-01") == 12
    assert period_index("2026-03") == 2026 * 12 + 2


def test_add_months():
    assert add_months("2026-11", 3) == "2027-02"
    assert add_months("2026-01", -1) == "2025-12"
    assert add_months("2026-05", 0) == "2026-05"
    assert add_months("2026-05", -17) == "2024-12"
    assert months_between("2025-07", "2026-03") == 8


def test_fiscal_year_starting_in_july_holds_march_of_the_next_calendar_year():
    assert fiscal_year("2026-03", 7) == ("2025-07", "2026-06")
    assert fiscal_year("2026-07", 7) == ("2026-07", "2027-06")
    assert fiscal_year("2026-06", 7) == ("2025-07", "2026-06")


def test_fiscal_year_starting_in_january_is_the_calendar_year():
    assert fiscal_year("2026-03", 1) == ("2026-01", "2026-12")
    assert fiscal_year("2026-12", 1) == ("2026-01", "2026-12")


def test_fiscal_year_starting_in_october():
    assert fiscal_year("2025-10", 10) == ("2025-10", "2026-09")
    assert fiscal_year("2025-09", 10) == ("2024-10", "2025-09")


def test_fiscal_periods_lists_all_twelve():
    assert fiscal_periods("2026-03", 7) == [
        "2025-07", "2025-08", "2025-09", "2025-10", "2025-11", "2025-12",
        "2026-01", "2026-02", "2026-03", "2026-04", "2026-05", "2026-06",
    ]  # fmt: skip


def test_fiscal_periods_to_date_and_remaining():
    assert fiscal_periods_to_date("2025-09", 7) == ["2025-07", "2025-08", "2025-09"]
    assert fiscal_periods_to_date("2025-07", 7) == ["2025-07"]
    assert fiscal_periods_remaining("2026-04", 7) == ["2026-05", "2026-06"]
    assert fiscal_periods_remaining("2026-06", 7) == []


def test_bad_start_month_is_refused():
    with pytest.raises(ValueError, match="1-12"):
        fiscal_year("2026-03", 13)


@given(st.integers(12 * 2, 12 * 9998), st.integers(1, 12))
def test_every_period_is_in_its_own_fiscal_year_of_twelve(index, start):
    period = period_from_index(index)
    months = fiscal_periods(period, start)
    assert period in months
    assert len(months) == 12 and months[0][5:] == f"{start:02d}"
    assert fiscal_periods_to_date(period, start)[-1] == period
    assert fiscal_periods_to_date(period, start) + fiscal_periods_remaining(period, start) == months


def test_currency_minor_units():
    assert minor_unit("USD") == 2
    assert minor_unit(" eur ") == 2
    assert minor_unit("JPY") == 0
    assert minor_unit("KRW") == 0
    assert minor_unit("BHD") == 3
    assert minor_unit("KWD") == 3
    assert minor_unit("CLF") == 4
    assert minor_unit("XAU") is None  # gold has no minor unit: not a billing currency
    assert minor_unit("USX") is None
    assert is_known("gbp") and not is_known("")
    assert len(MINOR_UNITS) > 150
