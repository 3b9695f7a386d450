"""Forecast sheet: re-forecast methods, break-even rates, and bad input — hand-computed."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from fractions import Fraction

import pandas as pd
import pytest

from costloop.engine.itfm.forecast import (
    FORECAST_COLUMNS,
    forecast,
    least_squares,
)
from costloop.engine.model.book import Book, Settings
from costloop.engine.model.money import round_to_places as round_half_up
from costloop.engine.model.periods import fiscal_periods, fiscal_periods_remaining
from costloop.problems import Reason, Severity
from costloop.rules.ast import (
    ByPlan,
    Charge,
    FixedRate,
    Forecast,
    Growth,
    Name,
    RunRate,
    Span,
    Trend,
)

# --- builders ------------------------------------------------------------------


def make_book(usage=(), budget=(), actuals=(), fiscal_year_start=7) -> Book:
    """usage rows (period, dept, metric, qty); budget (period, pool, cents, metric, volume);
    actuals (period, pool, cents)."""
    return Book(
        settings=Settings(fiscal_year_start=fiscal_year_start),
        departments=pd.DataFrame({"Department": ["ADM", "FIN"], "Fund": ["General", "General"]}),
        budget=pd.DataFrame(list(budget), columns=["Period", "Pool", "Cents", "Metric", "Volume"]),
        actuals=pd.DataFrame(list(actuals), columns=["Period", "Pool", "Cents"]),
        usage=pd.DataFrame(list(usage), columns=["Period", "Department", "Metric", "Quantity"]),
        rates=pd.DataFrame(columns=["Metric", "Rate"]),
        rules=[],
    )


def name_in(text: str, name: str) -> Name:
    start = text.index(f'"{name}"')
    return Name(name, Span(start, start + len(name) + 2))


def forecast_rule(text: str, where: str = "Rules!B12") -> Forecast:
    """A FORECAST statement as the parser would build it (spans into ``text``)."""
    words = text.split()
    kind, name = words[1], text.split('"')[1]
    by = text.index(" BY ") + 4
    method_span = Span(by, len(text))
    rest = text[by:].split()
    if rest[0] == "TREND":
        method = Trend(int(rest[2]), method_span)
    elif rest[0] == "GROWTH":
        method = Growth(Decimal(rest[1].rstrip("%")), method_span)
    elif rest[0] == "PLAN":
        method = ByPlan(method_span)
    else:
        method = RunRate(int(rest[3]), method_span)
    return Forecast(
        rule_id="F1",
        where=where,
        text=text,
        span=Span(0, len(text)),
        kind=kind,
        name=name_in(text, name),
        method=method,
    )


def charge_rule(pool: str, metric: str, rate: str, where: str = "Rules!B3") -> Charge:
    text = f'CHARGE "{pool}" FOR "{metric}" AT {rate}'
    at = text.index(" AT ") + 4
    return Charge(
        rule_id="C1",
        where=where,
        text=text,
        span=Span(0, len(text)),
        pool=name_in(text, pool),
        metric=name_in(text, metric),
        pricing=FixedRate(Decimal(rate), Span(at, len(text))),
    )


def recovery(pool: str, over_under: dict[str, str]) -> pd.DataFrame:
    rows = [
        (p, pool, Decimal(0), Decimal(ou), Decimal(ou), None, Decimal(0))
        for p, ou in over_under.items()
    ]
    cols = ["Period", "Pool", "Cost", "Recovered", "OverUnder", "RecoveryPct", "Unallocated"]
    return pd.DataFrame(rows, columns=cols)


def usage_series(metric: str, values: dict[str, float]):
    # Two departments share each period's usage, so the engine has to add them up.
    rows = []
    for period, qty in values.items():
        rows.append((period, "ADM", metric, qty / 2))
        rows.append((period, "FIN", metric, qty / 2))
    return rows


def rows_of(frame: pd.DataFrame, kind: str, name: str) -> pd.DataFrame:
    return frame[(frame["Kind"] == kind) & (frame["Name"] == name)]


JAN_APR = {"2026-01": 100.0, "2026-02": 110.0, "2026-03": 120.0, "2026-04": 130.0}


# --- periods and exact arithmetic -------------------------------------------------


def test_fiscal_year_and_remaining_periods():
    # FY starting July: 2026-04 is in FY 2025-07 .. 2026-06; two periods remain.
    assert fiscal_periods("2026-04", 7)[0] == "2025-07"
    assert fiscal_periods("2026-04", 7)[-1] == "2026-06"
    assert fiscal_periods_remaining("2026-04", 7) == ["2026-05", "2026-06"]
    assert fiscal_periods_remaining("2026-06", 7) == []  # the last month: nothing left to forecast
    assert fiscal_periods_remaining("2025-11", 1) == ["2025-12"]
    assert fiscal_periods_remaining("2025-07", 7)[-1] == "2026-06"
    assert len(fiscal_periods_remaining("2025-07", 7)) == 11


def test_round_half_up_is_away_from_zero_at_halves():
    assert round_half_up(Fraction(1, 8), 2) == Decimal("0.13")  # 0.125 -> 0.13
    assert round_half_up(Fraction(-1, 8), 2) == Decimal("-0.13")
    assert round_half_up(Fraction(1, 3), 4) == Decimal("0.3333")
    assert round_half_up(Fraction(2, 3), 0) == Decimal("1")


def test_least_squares_is_exact():
    # Points (0,100), (1,101), (2,103): x̄ = 1, ȳ = 304/3,
    # slope = ((-1)(100-304/3) + (1)(103-304/3)) / 2 = (4/3 + 5/3)/2 = 3/2, intercept = 304/3 - 3/2.
    intercept, slope = least_squares([(0, Fraction(100)), (1, Fraction(101)), (2, Fraction(103))])
    assert slope == Fraction(3, 2)
    assert intercept == Fraction(304, 3) - Fraction(3, 2)


# --- usage methods -----------------------------------------------------------------


def test_trend_extends_the_line():
    # 100, 110, 120, 130 in Jan..Apr: slope 10 a month, so May 140 and June 150.
    book = make_book(usage=usage_series("vCPU-Hours", JAN_APR))
    rule = forecast_rule('FORECAST USAGE "vCPU-Hours" BY TREND OVER 4 PERIODS')
    frame, problems = forecast(book, [rule], [], None, "2026-04")
    assert list(frame.columns) == FORECAST_COLUMNS
    assert problems == []
    rows = rows_of(frame, "USAGE", "vCPU-Hours")
    assert list(rows["Period"]) == ["2026-05", "2026-06"]
    assert list(rows["Forecast"]) == [Decimal("140.0000"), Decimal("150.0000")]
    assert set(rows["Method"]) == {"TREND OVER 4 PERIODS"}


def test_trend_uses_only_the_last_n_periods_and_rounds_to_four_places():
    # Last 3 periods: Feb 100, Mar 101, Apr 103 (Jan 500 is outside the window).
    # Line: slope 3/2, value at Apr = 304/3 + 3/2 = 102.8333..; May = 104.3333.., June = 105.8333..
    book = make_book(
        usage=usage_series(
            "GB", {"2026-01": 500.0, "2026-02": 100.0, "2026-03": 101.0, "2026-04": 103.0}
        )
    )
    rule = forecast_rule('FORECAST USAGE "GB" BY TREND OVER 3 PERIODS')
    frame, _ = forecast(book, [rule], [], None, "2026-04")
    assert list(rows_of(frame, "USAGE", "GB")["Forecast"]) == [
        Decimal("104.3333"),
        Decimal("105.8333"),
    ]


def test_falling_trend_is_clipped_at_zero():
    # 30, 20, 10: the line reaches 0 in May and -10 in June; usage cannot be negative.
    book = make_book(
        usage=usage_series("Tickets", {"2026-02": 30.0, "2026-03": 20.0, "2026-04": 10.0})
    )
    rule = forecast_rule('FORECAST USAGE "Tickets" BY TREND OVER 3 PERIODS')
    frame, _ = forecast(book, [rule], [], None, "2026-04")
    assert list(rows_of(frame, "USAGE", "Tickets")["Forecast"]) == [Decimal("0"), Decimal("0")]


def test_growth_compounds_from_the_last_actual_period():
    # Last actual 1000 (Apr). 2% a month: May 1000 × 1.02 = 1020, June 1000 × 1.02² = 1040.4.
    book = make_book(usage=usage_series("GB-Month", {"2026-03": 900.0, "2026-04": 1000.0}))
    rule = forecast_rule('FORECAST USAGE "GB-Month" BY GROWTH 2% PER PERIOD')
    frame, problems = forecast(book, [rule], [], None, "2026-04")
    assert problems == []
    rows = rows_of(frame, "USAGE", "GB-Month")
    assert list(rows["Forecast"]) == [Decimal("1020.0000"), Decimal("1040.4000")]
    assert set(rows["Method"]) == {"GROWTH 2% PER PERIOD"}


def test_growth_from_an_earlier_last_period_compounds_the_gap():
    # Last usage is February (1000) though April is billed: May is 3 months on, 1000 × 1.1³ = 1331.
    book = make_book(usage=usage_series("GB", {"2026-02": 1000.0, "2026-04": 0.0})[:2])
    rule = forecast_rule('FORECAST USAGE "GB" BY GROWTH 10% PER PERIOD')
    frame, _ = forecast(book, [rule], [], None, "2026-04")
    assert rows_of(frame, "USAGE", "GB")["Forecast"].iloc[0] == Decimal("1331.0000")


def test_run_rate_is_the_default_for_usage():
    # No rule: average of the last 3 actual periods: (110 + 120 + 130) / 3 = 120, flat.
    book = make_book(
        usage=usage_series("vCPU-Hours", JAN_APR),
        budget=[("2026-05", "Cloud", 100000, "vCPU-Hours", 125.0)],
    )
    frame, _ = forecast(book, [], [], None, "2026-04")
    rows = rows_of(frame, "USAGE", "vCPU-Hours")
    assert list(rows["Forecast"]) == [Decimal("120.0000"), Decimal("120.0000")]
    assert set(rows["Method"]) == {"RUN RATE OVER 3 PERIODS"}
    # Plan is the Budget Volume where there is one; Adjustment = Forecast − Plan.
    may = rows.iloc[0]
    assert may["Plan"] == Decimal("125.0000")
    assert may["Adjustment"] == Decimal("-5.0000")
    assert rows.iloc[1]["Plan"] is None and rows.iloc[1]["Adjustment"] is None


def test_actual_shows_where_a_remaining_period_already_has_usage():
    # May usage (50) is already in; billed period April. Forecast still from Feb..Apr.
    usage = usage_series("GB", {"2026-02": 10.0, "2026-03": 20.0, "2026-04": 30.0, "2026-05": 50.0})
    frame, _ = forecast(make_book(usage=usage), [], [], None, "2026-04")
    may = rows_of(frame, "USAGE", "GB").iloc[0]
    assert may["Actual"] == Decimal("50.0000")
    assert may["Forecast"] == Decimal("20.0000")  # (10 + 20 + 30) / 3


# --- cost methods ------------------------------------------------------------------


def test_plan_is_the_default_for_cost():
    book = make_book(
        budget=[
            ("2026-05", "Cloud", 1_000_00, None, None),
            ("2026-06", "Cloud", 1_200_50, None, None),
        ],
        actuals=[("2026-04", "Cloud", 950_00)],
    )
    frame, problems = forecast(book, [], [], None, "2026-04")
    assert problems == []
    rows = rows_of(frame, "COST", "Cloud")
    assert list(rows["Forecast"]) == [Decimal("1000.00"), Decimal("1200.50")]
    assert list(rows["Plan"]) == [Decimal("1000.00"), Decimal("1200.50")]
    assert list(rows["Adjustment"]) == [Decimal("0.00"), Decimal("0.00")]
    assert set(rows["Method"]) == {"PLAN"}


def test_cost_trend_rounds_to_the_cent():
    # Actual cost 100.00, 100.00, 100.01 (cents 10000, 10000, 10001): slope 1/2 cent a month,
    # line at x=0..2 intercept 9999.8333.., May (x=3) = 10001.333.. -> 100.01,
    # June (x=4) = 10001.8333.. -> 100.02.
    book = make_book(
        actuals=[
            ("2026-02", "Cloud", 10000),
            ("2026-03", "Cloud", 10000),
            ("2026-04", "Cloud", 10001),
        ],
        budget=[("2026-05", "Cloud", 9000, None, None), ("2026-06", "Cloud", 9000, None, None)],
    )
    rule = forecast_rule('FORECAST COST "Cloud" BY TREND OVER 3 PERIODS')
    frame, _ = forecast(book, [rule], [], None, "2026-04")
    rows = rows_of(frame, "COST", "Cloud")
    assert list(rows["Forecast"]) == [Decimal("100.01"), Decimal("100.02")]
    assert list(rows["Adjustment"]) == [Decimal("10.01"), Decimal("10.02")]


# --- break-even rates ----------------------------------------------------------------


def _break_even_book():
    # Remaining cost: May 1,000.00 + June 1,000.00 = 2,000.00 (Budget, default PLAN).
    # Remaining volume: run rate of 200 a month -> 400.
    return make_book(
        usage=usage_series("GB", {"2026-02": 200.0, "2026-03": 200.0, "2026-04": 200.0}),
        budget=[
            ("2026-05", "Storage", 1_000_00, "GB", 200.0),
            ("2026-06", "Storage", 1_000_00, "GB", 200.0),
        ],
    )


def test_break_even_rate_carries_forward_over_recovery():
    # Over-recovered 300.00 to date (100 + 200): (2,000.00 − 300.00) ÷ 400 = 4.25.
    # Current rate 5.00 -> Adjustment −0.75.
    rec = recovery("Storage", {"2026-03": "100.00", "2026-04": "200.00"})
    frame, problems = forecast(
        _break_even_book(), [], [charge_rule("Storage", "GB", "5.00")], rec, "2026-04"
    )
    assert problems == []
    rate = rows_of(frame, "RATE", "Storage").iloc[0]
    assert rate["Period"] == "2026-05"
    assert rate["Plan"] == Decimal("5.00")
    assert rate["Forecast"] == Decimal("4.250000")
    assert rate["Adjustment"] == Decimal("-0.750000")
    assert '"GB"' in rate["Method"] and "2026-05 TO 2026-06" in rate["Method"]


def test_break_even_rate_carries_forward_under_recovery():
    # Under-recovered 200.00 to date: (2,000.00 + 200.00) ÷ 400 = 5.50.
    rec = recovery("storage", {"2026-04": "-200.00"})  # pool names match case-insensitively
    frame, _ = forecast(
        _break_even_book(), [], [charge_rule("Storage", "GB", "5.00")], rec, "2026-04"
    )
    rate = rows_of(frame, "RATE", "Storage").iloc[0]
    assert rate["Forecast"] == Decimal("5.500000")
    assert rate["Adjustment"] == Decimal("0.500000")


def test_recovery_of_last_fiscal_year_is_not_carried():
    # 2025-06 belongs to the previous fiscal year (FY starts July): only 2025-07 counts.
    # (2,000.00 − 100.00) ÷ 400 = 4.75.
    rec = recovery("Storage", {"2025-06": "999.00", "2025-07": "100.00"})
    frame, _ = forecast(
        _break_even_book(), [], [charge_rule("Storage", "GB", "5.00")], rec, "2026-04"
    )
    assert rows_of(frame, "RATE", "Storage").iloc[0]["Forecast"] == Decimal("4.750000")


def test_break_even_rate_rounds_to_six_places():
    # (2,000.00 − 0) ÷ 300 = 6.6666.. -> 6.666667; usage run rate 150 a month.
    usage = pd.DataFrame(
        usage_series("GB", {"2026-04": 150.0}),
        columns=["Period", "Department", "Metric", "Quantity"],
    )
    book = replace(_break_even_book(), usage=usage)  # the Book is frozen: a new one
    frame, _ = forecast(book, [], [charge_rule("Storage", "GB", "5")], None, "2026-04")
    assert rows_of(frame, "RATE", "Storage").iloc[0]["Forecast"] == Decimal("6.666667")


def test_over_recovery_larger_than_remaining_cost_proposes_zero_and_warns():
    rec = recovery("Storage", {"2026-04": "2500.00"})
    frame, problems = forecast(
        _break_even_book(), [], [charge_rule("Storage", "GB", "5.00")], rec, "2026-04"
    )
    assert rows_of(frame, "RATE", "Storage").iloc[0]["Forecast"] == Decimal("0")
    assert [p.code for p in problems] == [Reason.OVER_RECOVERY]
    assert "500.00 should be refunded" in problems[0].message


def test_zero_remaining_volume_warns_and_proposes_nothing():
    book = make_book(
        usage=usage_series("GB", {"2026-04": 0.0}),
        budget=[
            ("2026-05", "Storage", 1_000_00, None, None),
            ("2026-06", "Storage", 1_000_00, None, None),
        ],
    )
    frame, problems = forecast(book, [], [charge_rule("Storage", "GB", "5.00")], None, "2026-04")
    rate = rows_of(frame, "RATE", "Storage").iloc[0]
    assert rate["Forecast"] is None and rate["Adjustment"] is None
    assert rate["Method"].startswith("NOT PROPOSED")
    [problem] = problems
    assert problem.code is Reason.NO_VOLUME and problem.severity is Severity.WARNING
    assert problem.where == "Rules!B3"
    assert problem.text[problem.start : problem.end] == '"GB"'
    assert "is zero" in problem.message


def test_rate_actual_is_the_average_rate_billed():
    bills = pd.DataFrame(
        [
            (
                "2026-04",
                "ADM",
                "Admin",
                "Storage",
                "GB",
                100.0,
                Decimal("5"),
                Decimal("500.00"),
                "C1",
            ),
            (
                "2026-04",
                "FIN",
                "Finance",
                "Storage",
                "GB",
                100.0,
                Decimal("5"),
                Decimal("500.00"),
                "C1",
            ),
        ],
        columns=[
            "Period",
            "Department",
            "Name",
            "Pool",
            "Metric",
            "Quantity",
            "Rate",
            "Amount",
            "Rule",
        ],
    )
    frame, _ = forecast(
        _break_even_book(), [], [charge_rule("Storage", "GB", "5.00")], None, "2026-04", bills=bills
    )
    assert rows_of(frame, "RATE", "Storage").iloc[0]["Actual"] == Decimal("5.000000")


# --- bad input ----------------------------------------------------------------------


def test_trend_over_more_periods_than_exist_is_a_located_warning():
    book = make_book(usage=usage_series("vCPU-Hours", JAN_APR))
    rule = forecast_rule('FORECAST USAGE "vCPU-Hours" BY TREND OVER 6 PERIODS')
    frame, problems = forecast(book, [rule], [], None, "2026-04")
    [problem] = problems
    # A warning: a forecast that cannot be computed never holds back the bills.
    assert problem.code is Reason.BAD_FORECAST and problem.severity is Severity.WARNING
    assert problem.headline() == (
        "Rules!B12, character 43: TREND OVER 6 PERIODS needs 6 periods of actual usage of "
        '"vCPU-Hours"; only 4 exist (2026-01 to 2026-04) — use OVER 4 PERIODS or fewer; until '
        "then the Forecast sheet shows RUN RATE OVER 3 PERIODS in its place (its Method says so)"
    )
    assert problem.text[problem.start : problem.end] == "6"  # the caret sits under the n
    # The rows are still filled (with the default) so the sheet is complete, and say so.
    assert set(rows_of(frame, "USAGE", "vCPU-Hours")["Method"]) == {
        "RUN RATE OVER 3 PERIODS — TREND OVER 6 PERIODS NOT COMPUTED: ONLY 4 OF 6 PERIODS OF "
        "ACTUALS"
    }


def test_run_rate_over_more_periods_than_exist_is_a_warning():
    book = make_book(usage=usage_series("GB", {"2026-04": 10.0}))
    rule = forecast_rule('FORECAST USAGE "GB" BY RUN RATE OVER 3 PERIODS')
    frame, problems = forecast(book, [rule], [], None, "2026-04")
    assert problems[0].severity is Severity.WARNING
    assert "only 1 exists (2026-04) — use OVER 1 PERIODS or fewer" in problems[0].message
    assert set(rows_of(frame, "USAGE", "GB")["Method"]) == {
        "RUN RATE OVER 1 PERIODS — RUN RATE OVER 3 PERIODS NOT COMPUTED: ONLY 1 OF 3 PERIODS "
        "OF ACTUALS"
    }


def test_growth_with_no_actuals_marks_its_rows_and_warns():
    # A metric planned in the Budget but never used yet: nothing to compound from.
    plan = [("2026-05", "Cloud", 0, "GB", 100), ("2026-06", "Cloud", 0, "GB", 120)]
    book = make_book(budget=plan)
    rule = forecast_rule('FORECAST USAGE "GB" BY GROWTH 2% PER PERIOD')
    frame, problems = forecast(book, [rule], [], None, "2026-04")
    [problem] = problems
    assert problem.severity is Severity.WARNING
    assert problem.message == (
        'GROWTH 2% PER PERIOD compounds from the last period of actual usage of "GB", but none '
        "exists up to 2026-04 — use BY PLAN; until then the Forecast sheet shows PLAN (NO USAGE "
        "TO DATE) in its place (its Method says so)"
    )
    rows = rows_of(frame, "USAGE", "GB")
    assert list(rows["Forecast"]) == [Decimal("100.0000"), Decimal("120.0000")]
    assert set(rows["Method"]) == {
        "PLAN (NO USAGE TO DATE) — GROWTH 2% PER PERIOD NOT COMPUTED: NO ACTUALS TO DATE"
    }


def test_plan_without_budget_for_remaining_periods_is_a_located_warning():
    book = make_book(
        budget=[("2026-05", "Cloud", 1_000_00, None, None)],
        actuals=[("2026-03", "Cloud", 900_00), ("2026-04", "Cloud", 1_100_00)],
    )
    rule = forecast_rule('FORECAST COST "Cloud" BY PLAN', where="Rules!B9")
    frame, problems = forecast(book, [rule], [], None, "2026-04")
    [problem] = problems
    assert problem.code is Reason.NO_BUDGET and problem.severity is Severity.WARNING
    assert problem.where == "Rules!B9"
    assert "so those months are forecast by RUN RATE of its actuals over 2 periods" in (
        problem.message
    )
    assert "Budget sheet" in problem.message and "2026-06" in problem.message
    assert "2026-05" not in problem.message  # May has a budget
    rows = rows_of(frame, "COST", "Cloud")
    # June falls back to the run rate of actuals: (900 + 1,100) / 2 = 1,000.00.
    assert rows.iloc[1]["Forecast"] == Decimal("1000.00")
    assert rows.iloc[1]["Method"] == "RUN RATE OVER 2 PERIODS (NO BUDGET)"


def test_default_plan_without_budget_is_a_warning_naming_the_budget_sheet():
    book = make_book(actuals=[("2026-04", "Network", 500_00)])
    frame, problems = forecast(book, [], [], None, "2026-04")
    [problem] = problems
    assert problem.code is Reason.NO_BUDGET and problem.severity is Severity.WARNING
    assert problem.where.startswith("Budget!")  # the pool's first Budget cell
    assert '"Network"' in problem.message and "2026-05, 2026-06" in problem.message
    assert list(rows_of(frame, "COST", "Network")["Forecast"]) == [
        Decimal("500.00"),
        Decimal("500.00"),
    ]


def test_a_second_forecast_of_the_same_name_is_ignored_with_a_warning():
    book = make_book(usage=usage_series("GB", JAN_APR))
    first = forecast_rule('FORECAST USAGE "GB" BY TREND OVER 4 PERIODS', where="Rules!B4")
    second = forecast_rule('FORECAST USAGE "gb" BY GROWTH 2% PER PERIOD', where="Rules!B5")
    frame, problems = forecast(book, [first, second], [], None, "2026-04")
    assert [p.where for p in problems] == ["Rules!B5"]
    assert "Rules!B4" in problems[0].message
    assert set(rows_of(frame, "USAGE", "GB")["Method"]) == {"TREND OVER 4 PERIODS"}


def test_last_month_of_the_year_has_nothing_to_forecast():
    frame, problems = forecast(
        make_book(usage=usage_series("GB", JAN_APR)), [], [], None, "2026-06"
    )
    assert frame.empty and list(frame.columns) == FORECAST_COLUMNS and problems == []


@pytest.mark.parametrize("method", ["TREND OVER 2 PERIODS", "GROWTH 5% PER PERIOD", "PLAN"])
def test_forecast_values_are_decimal_never_float(method):
    book = make_book(
        usage=usage_series("GB", JAN_APR),
        budget=[("2026-05", "Cloud", 1, "GB", 1.1), ("2026-06", "Cloud", 2, "GB", 2.2)],
    )
    rule = forecast_rule(f'FORECAST USAGE "GB" BY {method}')
    frame, _ = forecast(book, [rule], [], None, "2026-04")
    for column in ("Plan", "Forecast", "Adjustment"):
        assert all(isinstance(v, Decimal) for v in frame[column] if v is not None)


def test_break_even_adds_what_the_pool_nets_from_other_pools():
    # Storage receives 50.00 a month from "IT Management" (last 3 periods 40, 50, 60 -> 50 avg)
    # and passes 0 on: remaining cost 2,000.00 + 2 × 50.00 = 2,100.00; ÷ 400 = 5.25.
    flows = pd.DataFrame(
        [
            ("2026-02", "Storage", Decimal("40.00"), Decimal("0")),
            ("2026-03", "Storage", Decimal("50.00"), Decimal("0")),
            ("2026-04", "Storage", Decimal("60.00"), Decimal("0")),
            ("2026-04", "Cloud", Decimal("999.00"), Decimal("0")),
        ],
        columns=["Period", "Pool", "Received", "AllocatedOnward"],
    )
    frame, _ = forecast(
        _break_even_book(), [], [charge_rule("Storage", "GB", "5.00")], None, "2026-04", flows=flows
    )
    rate = rows_of(frame, "RATE", "Storage").iloc[0]
    assert rate["Forecast"] == Decimal("5.250000")
    assert "NET RECEIVED 100.00" in rate["Method"]


def test_the_worked_example_in_docs_itfm():
    # docs/itfm.md §5: trend 140, 150; cost 1,000.00 × 2; over-recovered 300.00;
    # (2,000.00 − 300.00) ÷ 290 = 5.862069; under-recovered 200.00: 2,200.00 ÷ 290 = 7.586207.
    book = make_book(
        usage=usage_series("GB", JAN_APR),
        budget=[
            ("2026-05", "Storage", 1_000_00, None, None),
            ("2026-06", "Storage", 1_000_00, None, None),
        ],
    )
    rule = forecast_rule('FORECAST USAGE "GB" BY TREND OVER 4 PERIODS')
    charge = charge_rule("Storage", "GB", "5.00")
    over = recovery("Storage", {"2026-03": "100.00", "2026-04": "200.00"})
    frame, problems = forecast(book, [rule], [charge], over, "2026-04")
    assert problems == []
    rate = rows_of(frame, "RATE", "Storage").iloc[0]
    assert (rate["Forecast"], rate["Adjustment"]) == (Decimal("5.862069"), Decimal("0.862069"))
    assert rate["Method"] == (
        'BREAK-EVEN PER "GB" 2026-05 TO 2026-06: (COST 2,000.00 − OVER/UNDER TO DATE 300.00) '
        "÷ VOLUME 290.0000"
    )
    under = recovery("Storage", {"2026-04": "-200.00"})
    frame, _ = forecast(book, [rule], [charge], under, "2026-04")
    assert rows_of(frame, "RATE", "Storage").iloc[0]["Forecast"] == Decimal("7.586207")


# --- properties ----------------------------------------------------------------------

from decimal import ROUND_HALF_UP  # noqa: E402

from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@given(st.decimals(min_value=-(10**9), max_value=10**9, places=8), st.integers(0, 6))
def test_round_half_up_agrees_with_decimal_quantize(value, places):
    expected = value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
    assert round_half_up(Fraction(value), places) == expected


@given(
    st.integers(0, 10_000),
    st.integers(-500, 500),
    st.integers(2, 9),
)
def test_trend_continues_any_straight_line_exactly(start, step, n):
    # Usage on a straight line from 2025-07: the trend's next value is the line's next value
    # (clipped at zero), whatever n.
    periods = [f"2025-{m:02d}" for m in range(7, 13)] + [f"2026-{m:02d}" for m in range(1, 5)]
    values = {p: float(start + step * i) for i, p in enumerate(periods)}
    if min(values.values()) < 0:
        return  # usage is never negative
    book = make_book(usage=[(p, "ADM", "GB", q) for p, q in values.items()])
    rule = forecast_rule(f'FORECAST USAGE "GB" BY TREND OVER {n} PERIODS')
    frame, problems = forecast(book, [rule], [], None, "2026-04")
    assert problems == []
    expected = [max(0, start + step * 10), max(0, start + step * 11)]
    assert list(rows_of(frame, "USAGE", "GB")["Forecast"]) == [Decimal(v) for v in expected]


def test_break_even_volume_is_the_billed_share_of_usage():
    # Usage of "AWS Cost" to date: 600 + 400 = 1,000; the pass-through CHARGE (WHERE Service
    # IN ("EC2", "S3")) billed 900 of it, so 90% of any forecast volume is billable.
    from costloop.engine.itfm.forecast import Series, billed_share

    series = Series("USAGE", "AWS Cost", {"2026-01": Fraction(600), "2026-02": Fraction(400)})
    lines = pd.DataFrame(
        {
            "Period": ["2026-01", "2026-02", "2026-02", "2026-02"],
            "Pool": ["Cloud Pass-through", "cloud pass-through", "Cloud Pass-through", "Other"],
            "Metric": ["AWS Cost", "AWS Cost", "aws cost", "AWS Cost"],
            "Quantity": [Decimal("540"), Decimal("200.5"), Decimal("159.5"), Decimal("999")],
        }
    )
    ytd = ["2026-01", "2026-02"]
    assert billed_share(lines, series, "cloud pass-through", ytd) == Fraction(9, 10)
    full = lines.assign(Quantity=[Decimal(600), Decimal(200), Decimal(200), Decimal(0)])
    assert billed_share(full, series, "cloud pass-through", ytd) is None
    assert billed_share(None, series, "cloud pass-through", ytd) is None
