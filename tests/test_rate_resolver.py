"""One rate resolver (`costloop.engine.chargeback.rates`): charge, Forecast and Compliance agree.

Two cases where they used to disagree (issue 15), each run end to end through
`run_workbook` on a `MemoryWorkbook`; the chargeback's answer wins:

- a pool's own Rates row beside a blank-Pool row in force: the charge bills the
  pool's 0.10, and the Forecast's RATE row now shows 0.10 as the current rate
  (it showed none);
- a card tiered last fiscal year and flat now: the Compliance same-rate test now
  holds the pool to it (it called the card tiered whatever its EffectiveFrom).
"""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pandas as pd

from costloop.engine.chargeback.rates import Band, RateCards
from costloop.engine.pipeline.run import run_workbook
from costloop.engine.workbook.memory import MemoryWorkbook
from costloop.problems import Reason

PERIOD = "2025-09"
MONTHS = ("2025-07", "2025-08", "2025-09")
FISCAL_YEAR = [f"2025-{m:02d}" for m in range(7, 13)] + [f"2026-{m:02d}" for m in range(1, 7)]
RATES_HEADER = ["Metric", "Rate", "Pool", "TierFrom", "TierTo", "EffectiveFrom"]


def workbook(rates: list[list[object]], rules: list[list[object]]) -> MemoryWorkbook:
    """Storage (budget 100.00 a month) charged on GB: ADM uses 100, FIN 50 a month to date."""
    return MemoryWorkbook(
        {
            "Settings": [
                ["Key", "Value"],
                ["Organization", "State University"],
                ["Currency", "USD"],
                ["FiscalYearStart", 7],
                ["CostBasis", "BUDGET"],
                ["Period", PERIOD],
            ],
            "Departments": [
                ["Department", "Fund", "Name"],
                ["ADM", "General", "Administration"],
                ["FIN", "General", "Finance"],
            ],
            "Budget": [["Period", "Pool", "Amount"]] + [[m, "Storage", 100] for m in FISCAL_YEAR],
            "Actuals": [["Period", "Pool", "Amount"]],
            "Usage": [["Period", "Department", "Metric", "Quantity"]]
            + [[m, d, "GB", q] for m in MONTHS for d, q in (("ADM", 100), ("FIN", 50))],
            "Rates": [RATES_HEADER, *rates],
            "Rules": [["ID", "Rule", "Enabled"], *rules],
        }
    )


CARD_RULE = ["R1", 'CHARGE "Storage" FOR "GB" AT RATE CARD', "Y"]


def sheet(wb: MemoryWorkbook, name: str) -> list[dict[str, object]]:
    header, *rows = wb.read_sheet(name)
    return [dict(zip(header, row, strict=True)) for row in rows]


def test_a_pools_own_row_beside_a_blank_pool_row_is_the_current_rate_of_the_forecast():
    wb = workbook(
        [
            ["GB", 0.10, "Storage", None, None, "2025-07"],
            ["GB", 0.25, None, None, None, "2025-07"],  # the card of pools without their own
        ],
        [CARD_RULE],
    )
    outcome = run_workbook(wb, label="rates.xlsx")
    assert outcome.ok, [p.render() for p in outcome.errors]
    # The charge bills the pool's own row: 100 x 0.10 and 50 x 0.10.
    bills = sheet(wb, "Bills")
    assert [(b["Department"], b["Rate"], b["Amount"]) for b in bills] == [
        ("ADM", 0.1, 10),
        ("FIN", 0.1, 5),
    ]
    [rate_row] = [r for r in sheet(wb, "Forecast") if r["Kind"] == "RATE"]
    assert rate_row["Name"] == "Storage"
    assert rate_row["Plan"] == 0.1  # the rate in force now, as billed (it was blank)
    assert rate_row["Actual"] == 0.1  # what was billed on average
    # Break-even (900.00 to come − (−255.00 to date)) ÷ 1,350 GB = 0.855556; its Adjustment
    # is against the current rate: 0.855556 − 0.10.
    assert rate_row["Forecast"] == 0.855556 and rate_row["Adjustment"] == 0.755556


def _tiered_last_year_flat_now(*rules: list[object]) -> MemoryWorkbook:
    return workbook(
        [
            # Fiscal 2025 (from July 2024): graduated.
            ["GB", 0.10, "Storage", 0, 1000, "2024-07"],
            ["GB", 0.05, "Storage", 1000, None, "2024-07"],
            # Fiscal 2026 (from July 2025): one flat rate for everyone.
            ["GB", 0.10, "Storage", None, None, "2025-07"],
        ],
        list(rules),
    )


def test_a_card_tiered_last_year_and_flat_now_is_held_to_the_same_rate_test():
    wb = _tiered_last_year_flat_now(CARD_RULE)
    outcome = run_workbook(wb, label="rates.xlsx")
    assert outcome.ok, [p.render() for p in outcome.errors]
    [storage] = [r for r in sheet(wb, "Compliance") if r["Pool"] == "Storage"]
    assert storage["Check"] == "RECOVERY"
    assert storage["Same Rate"] == "YES"  # checked, and everyone paid 0.10 (it said N/A)
    [fund] = [r for r in sheet(wb, "Compliance") if r["Check"] == "FUND TOTAL"]
    assert fund["Same Rate"] == "YES"


def test_a_user_billed_off_the_flat_card_now_is_a_rate_exception():
    # FIN is billed a second, dearer charge on the same pool and metric: with the card
    # flat now, that is a department paying more than the others (2 CFR 200.468(b)(1)).
    wb = _tiered_last_year_flat_now(
        CARD_RULE, ["R2", 'CHARGE "Storage" FOR "GB" AT 0.20 WHERE Department = "FIN"', "Y"]
    )
    outcome = run_workbook(wb, label="rates.xlsx")
    assert outcome.ok, [p.render() for p in outcome.errors]
    compliance = sheet(wb, "Compliance")
    [storage] = [r for r in compliance if r["Check"] == "RECOVERY"]
    assert storage["Same Rate"] == "NO"
    exceptions = [r for r in compliance if r["Check"] == "SAME RATE"]
    assert [
        (r["Period"], r["Department"], r["Rate Billed"], r["Standard Rate"]) for r in exceptions
    ] == [(m, "FIN", 0.2, 0.1) for m in MONTHS]
    [warning] = [p for p in outcome.problems if p.code is Reason.RATE_NOT_UNIFORM]
    assert warning.where == "Rules!B3"
    assert warning.message.startswith(
        'pool "Storage": FIN billed 0.20 per "GB" in 2025-07, 2025-08, 2025-09 while other '
        "departments paid 0.1;"
    )


def test_a_card_tiered_now_stays_exempt():
    # The same card with this year's schedule graduated: ADM's 100 GB and FIN's 50 both sit
    # in the first band, and the graduated card is one schedule for everyone.
    wb = workbook(
        [
            ["GB", 0.10, "Storage", 0, 60, "2025-07"],
            ["GB", 0.05, "Storage", 60, None, "2025-07"],
        ],
        [CARD_RULE],
    )
    outcome = run_workbook(wb, label="rates.xlsx")
    assert outcome.ok, [p.render() for p in outcome.errors]
    assert not [p for p in outcome.problems if p.code is Reason.RATE_NOT_UNIFORM]
    [storage] = [r for r in sheet(wb, "Compliance") if r["Pool"] == "Storage"]
    assert storage["Same Rate"] == "N/A"
    [rate_row] = [r for r in sheet(wb, "Forecast") if r["Kind"] == "RATE"]
    assert rate_row["Plan"] is None  # graduated: no single current rate


# --- the resolver itself ------------------------------------------------------------


def cards(*rows: tuple) -> RateCards:
    frame = pd.DataFrame(
        [(*row, n) for n, row in enumerate(rows, start=2)], columns=[*RATES_HEADER, "_row"]
    )
    return RateCards(frame)


def test_the_pools_own_rows_never_fall_back_to_the_blank_pool_card():
    rates = cards(
        ("GB", Decimal("0.25"), None, None, None, "2025-01"),
        ("GB", Decimal("0.10"), "Storage", None, None, "2025-07"),
    )
    assert rates.in_force("storage", "gb", "2025-06") is None  # its own card starts in July
    assert rates.in_force("storage", "gb", "2025-07").flat_rate == Decimal("0.10")
    other = rates.in_force("backup", "gb", "2025-06")
    assert (other.pool, other.effective, other.flat_rate) == ("", "2025-01", Decimal("0.25"))
    assert [r.row for r in other.rows] == [2]


def test_a_tiered_schedule_is_its_bands_by_tier_from_with_the_rows_it_came_from():
    rates = cards(
        ("GB", Decimal("0.05"), "Storage", 1000.0, float("nan"), "2025-07"),
        ("GB", Decimal("0.10"), "Storage", float("nan"), 1000.0, "2025-07"),
        ("GB", Decimal("0.20"), "Storage", None, None, None),  # in force from the start
    )
    schedule = rates.in_force("storage", "gb", "2025-08")
    assert schedule.tiered and schedule.flat_rate is None
    assert schedule.bands == [
        Band(Fraction(0), Fraction(1000), Decimal("0.10")),
        Band(Fraction(1000), None, Decimal("0.05")),
    ]
    assert [r.row for r in schedule.rows] == [2, 3]
    assert rates.in_force("storage", "gb", "2025-06").flat_rate == Decimal("0.20")
    assert rates.tiered_periods("storage", "gb", ["2025-06", "2025-07", "2025-08"]) == {
        "2025-07",
        "2025-08",
    }
    assert [(s.effective, len(s.rows)) for s in rates.schedules()] == [("2025-07", 2), ("", 1)]
