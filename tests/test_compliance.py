"""Compliance (recovery, reserve days, same rate) and Variance (plan vs actual) — hand-computed."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from fractions import Fraction

import pandas as pd

from costloop.engine.itfm.compliance import (
    COMPLIANCE_COLUMNS,
    compliance,
    reserve_days,
)
from costloop.engine.itfm.variance import VARIANCE_COLUMNS, variance
from costloop.engine.model.book import Book, Settings
from costloop.problems import Reason, Severity
from costloop.rules.ast import Charge, FixedRate, Name, RateCard, Span, Tier, Tiered

RECOVERY_COLUMNS = [
    "Period",
    "Pool",
    "Cost",
    "Recovered",
    "OverUnder",
    "RecoveryPct",
    "Unallocated",
]
BILL_COLUMNS = [
    "Period",
    "Department",
    "Name",
    "Pool",
    "Metric",
    "Quantity",
    "Rate",
    "Amount",
    "Rule",
]
FY_TO_OCT = ["2025-07", "2025-08", "2025-09", "2025-10"]  # FY starts July: 4 months to date


def make_book(budget=(), actuals=(), usage=(), reserve_days=60) -> Book:
    return Book(
        settings=Settings(fiscal_year_start=7, reserve_days=reserve_days),
        departments=pd.DataFrame({"Department": ["ADM", "FIN", "HR"], "Fund": ["G", "G", "G"]}),
        budget=pd.DataFrame(list(budget), columns=["Period", "Pool", "Cents", "Metric", "Volume"]),
        actuals=pd.DataFrame(list(actuals), columns=["Period", "Pool", "Cents"]),
        usage=pd.DataFrame(list(usage), columns=["Period", "Department", "Metric", "Quantity"]),
        rates=pd.DataFrame(columns=["Metric", "Rate"]),
        rules=[],
    )


def recovery(per_pool: dict[str, tuple[str, str]], periods=FY_TO_OCT) -> pd.DataFrame:
    """{pool: (cost YTD, recovered YTD)} spread evenly over the periods."""
    rows = []
    for pool, (cost, recovered) in per_pool.items():
        c, r = Decimal(cost) / len(periods), Decimal(recovered) / len(periods)
        for p in periods:
            rows.append((p, pool, c, r, r - c, None, Decimal(0)))
    return pd.DataFrame(rows, columns=RECOVERY_COLUMNS)


def bill(period, dept, pool, metric, qty, rate, rule="C1"):
    rate = Decimal(rate)
    return (period, dept, dept, pool, metric, qty, rate, (rate * Decimal(str(qty))), rule)


def bills(*lines) -> pd.DataFrame:
    return pd.DataFrame(list(lines), columns=BILL_COLUMNS)


def row(frame, check, pool):
    found = frame[(frame["Check"] == check) & (frame["Pool"] == pool)]
    assert len(found) == 1, found
    return found.iloc[0]


# --- reserve days ------------------------------------------------------------------------


def test_reserve_days_worked_example():
    # 4 months to date, Cost YTD 120,000.00, over-recovered 12,000.00.
    # Annualised cash expenses = 120,000 × 12 ÷ 4 = 360,000.00; a day = 360,000 ÷ 365 = 986.30.
    # Reserve days = 12,000 ÷ 986.30 = 12,000 × 365 × 4 ÷ (120,000 × 12) = 12.1666.. -> 12.2.
    assert reserve_days(Fraction(12000), Fraction(120000), 4) == Fraction(73, 6)
    assert reserve_days(Fraction(1), Fraction(0), 4) is None


def test_compliance_per_pool_and_fund_total():
    rec = recovery(
        {
            "Storage": ("120000.00", "132000.00"),  # +12,000: 12.2 days, within 60
            "Cloud": ("40000.00", "60000.00"),  # +20,000: 60.8 days, over 60
            "Network": ("8000.00", "6000.00"),  # −2,000: under-recovered
            "Facilities": ("5000.00", "0.00"),  # recovers nothing, not billed: left out
        }
    )
    frame, problems = compliance(make_book(), rec, None, "2025-10")
    assert list(frame.columns) == COMPLIANCE_COLUMNS
    assert list(frame["Pool"]) == ["Cloud", "Network", "Storage", "All billed pools"]

    storage = row(frame, "RECOVERY", "Storage")
    assert storage["Months"] == 4
    assert storage["Cost YTD"] == Decimal("120000.00")
    assert storage["Revenue YTD"] == Decimal("132000.00")
    assert storage["Over/Under YTD"] == Decimal("12000.00")
    assert storage["Recovery %"] == Decimal("1.1000")
    assert storage["Annualised Cash Expenses"] == Decimal("360000.00")
    assert storage["Reserve Days"] == Decimal("12.2")
    assert storage["Limit Days"] == 60
    assert storage["Excess Over Limit"] is None
    assert storage["Status"] == "WITHIN LIMIT"

    # Cloud: annualised 40,000 × 3 = 120,000.00; days = 20,000 × 1,460 ÷ 480,000 = 60.83 -> 60.8.
    # The 60-day reserve is 60 × 120,000 ÷ 365 = 19,726.03; excess 20,000 − 19,726.03 = 273.97.
    cloud = row(frame, "RECOVERY", "Cloud")
    assert cloud["Reserve Days"] == Decimal("60.8")
    assert cloud["Status"] == "EXCEEDS RESERVE LIMIT"
    assert cloud["Excess Over Limit"] == Decimal("273.97")
    assert "273.97" in cloud["Finding"] and "G.2" in cloud["Finding"]

    network = row(frame, "RECOVERY", "Network")
    assert network["Over/Under YTD"] == Decimal("-2000.00")
    assert network["Reserve Days"] == Decimal("-30.4")  # 2,000 × 1,460 ÷ 96,000 = 30.42 short
    assert network["Status"] == "UNDER-RECOVERED"

    # Fund: cost 168,000, revenue 198,000, reserve 30,000;
    # days = 30,000 × 1,460 ÷ (168,000 × 12) = 21.726.. -> 21.7: within the limit, no warning.
    fund = row(frame, "FUND TOTAL", "All billed pools")
    assert fund["Cost YTD"] == Decimal("168000.00")
    assert fund["Revenue YTD"] == Decimal("198000.00")
    assert fund["Over/Under YTD"] == Decimal("30000.00")
    assert fund["Reserve Days"] == Decimal("21.7")
    assert fund["Status"] == "WITHIN LIMIT"
    assert problems == []


def test_fund_over_its_reserve_limit_warns():
    # One pool, 4 months, cost 36,500, revenue 46,500: days = 10,000 × 1,460 ÷ 438,000 = 33.3.
    # With ReserveDays 30 that is over the limit.
    rec = recovery({"Cloud": ("36500.00", "46500.00")})
    frame, problems = compliance(make_book(reserve_days=30), rec, None, "2025-10")
    fund = row(frame, "FUND TOTAL", "All billed pools")
    assert fund["Reserve Days"] == Decimal("33.3") and fund["Limit Days"] == 30
    # Excess: 10,000 − 30 × 109,500 ÷ 365 = 10,000 − 9,000 = 1,000.00.
    assert fund["Excess Over Limit"] == Decimal("1000.00")
    [problem] = problems
    assert problem.code is Reason.RESERVE_EXCEEDED and problem.severity is Severity.WARNING
    assert "33.3 days" in problem.message and "1,000.00" in problem.message


def test_only_this_fiscal_years_recovery_counts():
    # June 2025 is last fiscal year: its 50,000 over-recovery is not in the reserve.
    rec = pd.concat(
        [
            recovery({"Cloud": ("4000.00", "4000.00")}),
            recovery({"Cloud": ("0", "50000.00")}, periods=["2025-06"]),
        ]
    )
    frame, _ = compliance(make_book(), rec, None, "2025-10")
    assert row(frame, "RECOVERY", "Cloud")["Over/Under YTD"] == Decimal("0.00")


# --- same rate ---------------------------------------------------------------------------


def test_same_rate_check_catches_a_department_billed_differently():
    rec = recovery({"Storage": ("100.00", "100.00")})
    lines = bills(
        bill("2025-10", "ADM", "Storage", "GB", 100.0, "0.12"),
        bill("2025-10", "FIN", "Storage", "GB", 50.0, "0.12"),
        bill("2025-10", "HR", "Storage", "GB", 10.0, "0.10", rule="C2"),
        # A rate change between periods is not discrimination: September at 0.11 for all.
        bill("2025-09", "ADM", "Storage", "GB", 100.0, "0.11"),
        bill("2025-09", "HR", "Storage", "GB", 100.0, "0.11"),
    )
    charge = Charge(
        rule_id="C2",
        where="Rules!B4",
        text='CHARGE "Storage" FOR "GB" AT 0.10 WHERE Fund = "Grants"',
        span=Span(0, 52),
        pool=Name("Storage", Span(7, 16)),
        metric=Name("GB", Span(21, 25)),
        pricing=FixedRate(Decimal("0.10"), Span(29, 33)),
    )
    frame, problems = compliance(make_book(), rec, lines, "2025-10", charges=[charge])
    exceptions = frame[frame["Check"] == "SAME RATE"]
    assert len(exceptions) == 1
    exc = exceptions.iloc[0]
    assert (exc["Pool"], exc["Metric"], exc["Period"], exc["Department"]) == (
        "Storage",
        "GB",
        "2025-10",
        "HR",
    )
    assert exc["Rate Billed"] == Decimal("0.10") and exc["Standard Rate"] == Decimal("0.12")
    assert exc["Status"] == "RATE DIFFERS"
    assert row(frame, "RECOVERY", "Storage")["Same Rate"] == "NO"
    assert row(frame, "FUND TOTAL", "All billed pools")["Same Rate"] == "NO"
    [problem] = problems
    assert problem.code is Reason.RATE_NOT_UNIFORM
    assert problem.where == "Rules!B4"  # the rule that priced HR differently
    assert "HR billed 0.10" in problem.message and "200.468" in problem.message


def test_uniform_rates_pass_and_tiered_lines_are_exempt():
    rec = recovery({"Storage": ("100.00", "100.00"), "Cloud": ("10.00", "10.00")})
    tiered = Charge(
        rule_id="T1",
        where="Rules!B5",
        text="",
        span=Span(0, 0),
        pool=Name("Cloud", Span(0, 0)),
        metric=Name("vCPU", Span(0, 0)),
        pricing=Tiered((Tier(Decimal(10), Decimal("0.05"), Span(0, 0)),), Span(0, 0)),
    )
    lines = bills(
        bill("2025-10", "ADM", "Storage", "GB", 100.0, "0.12"),
        bill("2025-10", "FIN", "Storage", "GB", 50.0, "0.12"),
        # Graduated tiers: ADM's usage reached the second tier, FIN's did not.
        bill("2025-10", "ADM", "Cloud", "vCPU", 10.0, "0.05", rule="T1"),
        bill("2025-10", "ADM", "Cloud", "vCPU", 5.0, "0.04", rule="T1"),
        bill("2025-10", "FIN", "Cloud", "vCPU", 3.0, "0.05", rule="T1"),
        # An ALLOCATE line has no rate: not part of the check.
        ("2025-10", "HR", "HR", "Storage", None, None, None, Decimal("5.00"), "A1"),
    )
    frame, problems = compliance(make_book(), rec, lines, "2025-10", charges=[tiered])
    assert problems == []
    assert "SAME RATE" not in set(frame["Check"])
    assert row(frame, "RECOVERY", "Storage")["Same Rate"] == "YES"
    assert row(frame, "RECOVERY", "Cloud")["Same Rate"] == "N/A"


# --- plan vs actual ----------------------------------------------------------------------


def test_variance_year_to_date_by_pool_and_metric():
    # FY from July, billed September: Jul..Sep count, October does not.
    book = make_book(
        budget=[
            ("2025-07", "Cloud", 1_000_00, "GB", 100.0),
            ("2025-08", "Cloud", 1_000_00, "GB", 100.0),
            ("2025-09", "Cloud", 1_000_00, "GB", 100.0),
            ("2025-10", "Cloud", 9_999_00, "GB", 999.0),
        ],
        actuals=[
            ("2025-07", "Cloud", 1_100_00),
            ("2025-08", "cloud", 900_00),
            ("2025-09", "Cloud", 1_050_00),
            ("2025-09", "Network", 200_00),
            ("2025-06", "Network", 777_00),  # last fiscal year
        ],
        usage=[
            ("2025-07", "ADM", "GB", 90.0),
            ("2025-08", "ADM", "GB", 95.5),
            ("2025-09", "FIN", "GB", 94.5),
        ],
    )
    frame, problems = variance(book, "2025-09")
    assert list(frame.columns) == VARIANCE_COLUMNS and problems == []
    cloud = frame[(frame["Kind"] == "COST") & (frame["Name"] == "Cloud")].iloc[0]
    # Plan 3,000.00, Actual 3,050.00: 50.00 over, 50 ÷ 3,000 = 1.67%.
    assert cloud["Periods"] == "2025-07 to 2025-09"
    assert cloud["Plan YTD"] == Decimal("3000.00")
    assert cloud["Actual YTD"] == Decimal("3050.00")
    assert cloud["Variance"] == Decimal("50.00")
    assert cloud["Variance %"] == Decimal("0.0167")
    assert cloud["Status"] == "OVER BUDGET"
    network = frame[frame["Name"] == "Network"].iloc[0]
    assert network["Plan YTD"] is None and network["Status"] == "NO BUDGET"
    assert network["Actual YTD"] == Decimal("200.00")
    total = frame[frame["Kind"] == "TOTAL"].iloc[0]
    # All pools: plan 3,000.00, actual 3,250.00.
    assert (total["Plan YTD"], total["Actual YTD"], total["Variance"]) == (
        Decimal("3000.00"),
        Decimal("3250.00"),
        Decimal("250.00"),
    )
    gb = frame[frame["Kind"] == "USAGE"].iloc[0]
    # Planned 300 GB, used 280 GB: 20 below plan, −20 ÷ 300 = −6.67%.
    assert gb["Plan YTD"] == Decimal("300.0000")
    assert gb["Actual YTD"] == Decimal("280.0000")
    assert gb["Variance"] == Decimal("-20.0000")
    assert gb["Variance %"] == Decimal("-0.0667")
    assert gb["Status"] == "BELOW PLAN"


def test_a_rate_card_with_tier_rows_is_exempt_like_tiered():
    # Rates: GB-Month 0.08 up to 10,000, 0.04 above — ADM's big usage reaches the 0.04 tier.
    rates = pd.DataFrame(
        [
            ("GB-Month", Decimal("0.08"), "Storage", 0.0, 10000.0, "2025-07"),
            ("GB-Month", Decimal("0.04"), "Storage", 10000.0, float("nan"), "2025-07"),
        ],
        columns=["Metric", "Rate", "Pool", "TierFrom", "TierTo", "EffectiveFrom"],
    )
    book = replace(make_book(), rates=rates)  # the Book is frozen: a variant is a new one
    card = Charge(
        rule_id="R11",
        where="Rules!B12",
        text='CHARGE "Storage" FOR "GB-Month" AT RATE CARD',
        span=Span(0, 43),
        pool=Name("Storage", Span(7, 16)),
        metric=Name("GB-Month", Span(21, 31)),
        pricing=RateCard(Span(35, 44)),
    )
    lines = bills(
        bill("2025-10", "ADM", "Storage", "GB-Month", 10000.0, "0.08", rule="R11"),
        bill("2025-10", "ADM", "Storage", "GB-Month", 500.0, "0.04", rule="R11"),
        bill("2025-10", "FIN", "Storage", "GB-Month", 300.0, "0.08", rule="R11"),
    )
    rec = recovery({"Storage": ("100.00", "100.00")})
    frame, problems = compliance(book, rec, lines, "2025-10", charges=[card])
    assert problems == [] and "SAME RATE" not in set(frame["Check"])
    # Without the rule list the engine cannot tell tiers from discrimination: it reports.
    _, problems = compliance(book, rec, lines, "2025-10")
    assert [p.code for p in problems] == [Reason.RATE_NOT_UNIFORM]
    assert problems[0].where == "Bills"
