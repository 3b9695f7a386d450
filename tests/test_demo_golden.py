"""Golden output sheets of the demo workbook, anchored by lines worked out by hand.

Workbook in, sheets out: the packaged demo workbook (what ``costloop demo``
runs) is copied, run in place through the file implementation, and its output
sheets are read back from the saved file with calamine, so write-back is
covered too. Each sheet becomes a tab-separated text file in
``tests/golden/demo/`` that a reviewer reads as a diff. Only the columns the
contract names are kept (an extra input column, such as an Email column in
Departments, cannot change them); the Run Log (run id, time) and Rule Check
are left out as volatile or covered elsewhere.

Numbers are written exactly as stored, never rounded for display: money with
at least its 2 places (``1,234.50``), quantities and rates with every digit
they have, ratios as exact percentages (``0.9869`` -> ``98.69%``). Float
noise or a fraction of a cent would therefore show in the file.

To regenerate after an intended change::

    COSTLOOP_UPDATE_GOLDENS=1 pytest tests/test_demo_golden.py

and read the diff before committing. The hand checks below recompute chosen
lines from the demo's source data (``costloop.workbooks.demo_data``) with the
arithmetic written out, so the golden files are pinned by numbers the engine
did not produce.
"""

from __future__ import annotations

import difflib
import math
import os
import shutil
from collections import defaultdict
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from pathlib import Path

import pytest
import python_calamine

from costloop.engine.commands import run_book
from costloop.workbooks import demo_path
from costloop.workbooks.demo_data import DEPARTMENTS, demo_data

GOLDEN_DIR = Path(__file__).parent / "golden" / "demo"
UPDATE = os.environ.get("COSTLOOP_UPDATE_GOLDENS") == "1"

# The output columns of each sheet, in the contract's order (docs/contract.md, output sheets).
SHEETS: dict[str, list[str]] = {
    "Bills": [
        "Period", "Department", "Name", "Pool", "Metric", "Quantity", "Rate", "Amount", "Rule",
    ],
    "Journal": [
        "Entry", "Period", "Fund", "Account", "Department", "Pool", "Debit", "Credit", "Memo",
        "Rule",
    ],
    "Recovery": [
        "Period", "Pool", "Cost", "Recovered", "OverUnder", "RecoveryPct", "Unallocated",
    ],
    "Forecast": [
        "Period", "Kind", "Name", "Plan", "Actual", "Forecast", "Adjustment", "Method",
    ],
    "Variance": [
        "Kind", "Name", "Periods", "Plan YTD", "Actual YTD", "Variance", "Variance %", "Status",
    ],
    "Compliance": [
        "Check", "Pool", "Metric", "Period", "Department", "Months", "Cost YTD", "Revenue YTD",
        "Over/Under YTD", "Recovery %", "Annualised Cash Expenses", "Reserve Days", "Limit Days",
        "Excess Over Limit", "Rate Billed", "Standard Rate", "Same Rate", "Status", "Finding",
    ],
}  # fmt: skip

# Columns shown with at least 2 decimals (money, and the mixed money/rate/quantity columns
# whose Excel format is #,##0.00##...); every other digit the value has is shown as well.
TWO_PLACES = {
    "Amount", "Rate", "Debit", "Credit", "Cost", "Recovered", "OverUnder", "Unallocated",
    "Plan", "Actual", "Forecast", "Adjustment", "Plan YTD", "Actual YTD", "Variance",
    "Cost YTD", "Revenue YTD", "Over/Under YTD", "Annualised Cash Expenses",
    "Excess Over Limit", "Rate Billed", "Standard Rate",
}  # fmt: skip
ONE_PLACE = {"Reserve Days"}
PERCENT = {"RecoveryPct", "Variance %", "Recovery %"}

PERIOD = "2026-03"  # the demo's billed period (Settings Period)
D = Decimal
CENT = Decimal("0.01")


# --- workbook in, sheets out ------------------------------------------------------


def _number_text(value: float | int, column: str) -> str:
    exact = Decimal(value) if isinstance(value, int) else Decimal(repr(value))
    if column in PERCENT:
        return f"{(exact * 100).normalize():f}%"
    digits = max(0, -exact.as_tuple().exponent)
    if exact == exact.to_integral_value():
        digits = 0  # 1483.0 from the file is the whole number 1483
    places = max(digits, 2 if column in TWO_PLACES else 1 if column in ONE_PLACE else 0)
    return f"{exact:,.{places}f}"


def cell_text(value: object, column: str) -> str:
    """One cell as the golden file shows it."""
    if value is None or value == "":
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, (int, float)):
        return _number_text(value, column)
    if isinstance(value, str):
        return value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")
    return str(value)


def render_sheet(sheet: str, grid: list[list[object]]) -> str:
    """The contract's columns of a sheet as tab-separated lines, header first."""
    header = [str(h) for h in grid[0]]
    columns = SHEETS[sheet]
    missing = [c for c in columns if c not in header]
    assert not missing, f"{sheet} has no column(s) {missing}; header is {header}"
    at = [header.index(c) for c in columns]
    lines = ["\t".join(columns)]
    for row in grid[1:]:
        cells = [row[i] if i < len(row) else None for i in at]
        lines.append("\t".join(cell_text(v, c) for v, c in zip(cells, columns, strict=True)))
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> dict[str, str]:
    """Run the demo in a copy of the packaged workbook; each output sheet read back as text."""
    book = tmp_path_factory.mktemp("demo") / "costloop-demo.xlsx"
    shutil.copyfile(demo_path(), book)
    outcome = run_book(book)
    assert outcome.ok, [p.render() for p in outcome.errors]
    assert outcome.warnings == [], [p.render() for p in outcome.warnings]
    saved = python_calamine.CalamineWorkbook.from_path(str(book))
    return {s: render_sheet(s, saved.get_sheet_by_name(s).to_python()) for s in SHEETS}


def _short_diff(expected: str, actual: str) -> str:
    diff = difflib.unified_diff(
        expected.splitlines(), actual.splitlines(), "golden", "this run", lineterm="", n=1
    )
    lines = list(diff)
    more = f"\n... {len(lines) - 80} more diff lines" if len(lines) > 80 else ""
    return "\n".join(lines[:80]) + more


@pytest.mark.parametrize("sheet", list(SHEETS))
def test_demo_sheet_matches_golden(rendered, sheet):
    path = GOLDEN_DIR / f"{sheet.lower()}.tsv"
    actual = rendered[sheet]
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(actual, "utf-8", newline="\n")
        return
    assert path.exists(), f"no golden {path.name}: run with COSTLOOP_UPDATE_GOLDENS=1"
    expected = path.read_text("utf-8")
    assert actual == expected, (
        f"{sheet} differs from tests/golden/demo/{path.name} (if intended, regenerate with "
        f"COSTLOOP_UPDATE_GOLDENS=1 and review the diff):\n" + _short_diff(expected, actual)
    )


def test_goldens_have_no_stale_files():
    wanted = {f"{s.lower()}.tsv" for s in SHEETS}
    assert {p.name for p in GOLDEN_DIR.glob("*.tsv")} == wanted


def test_goldens_show_exact_money():
    """Every money cell in the files has exactly 2 decimals: no float noise, no part cents."""
    for sheet, columns in (("bills", ["Amount"]), ("journal", ["Debit", "Credit"])):
        for row in golden_rows(sheet.capitalize()):
            for c in columns:
                if row[c]:
                    assert len(row[c].rsplit(".", 1)[1]) == 2, (sheet, row)


# --- the golden files, parsed for the hand checks ------------------------------------


def golden_rows(sheet: str) -> list[dict[str, str]]:
    lines = (GOLDEN_DIR / f"{sheet.lower()}.tsv").read_text("utf-8").splitlines()
    header = lines[0].split("\t")
    return [dict(zip(header, line.split("\t"), strict=True)) for line in lines[1:]]


def num(text: str) -> Decimal:
    """``1,234.50`` -> Decimal('1234.50'); ``98.69%`` -> Decimal('0.9869')."""
    if text.endswith("%"):
        return Decimal(text[:-1].replace(",", "")) / 100
    return Decimal(text.replace(",", ""))


def half_up(x: Decimal | Fraction, places: int = 2) -> Decimal:
    """Round half away from zero (every value here is positive) to ``places`` decimals."""
    if isinstance(x, Fraction):
        scaled = x * 10**places
        units = math.floor(scaled + Fraction(1, 2))
        return Decimal(units).scaleb(-places)
    return x.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)


def bill_lines(department: str, pool: str) -> list[dict[str, str]]:
    return [
        r for r in golden_rows("Bills") if r["Department"] == department and r["Pool"] == pool
    ]


# --- the demo's source data -------------------------------------------------------

DATA = demo_data()
BILLABLE = {d.code for d in DEPARTMENTS if d.billable}  # every department but PRES
FUND = {d.code: d.fund for d in DEPARTMENTS}
HEADCOUNT = {d.code: d.headcount for d in DEPARTMENTS}
FY_TO_DATE = [f"2025-{m:02d}" for m in range(7, 13)] + ["2026-01", "2026-02", "2026-03"]


def used(period: str, department: str, metric: str, services=None) -> Decimal:
    """A department's usage of a metric in a period (Usage rows summed)."""
    return sum(
        (
            Decimal(str(q))
            for p, d, m, q, service, _ref in DATA.usage
            if p == period and d == department and m == metric
            and (services is None or service in services)
        ),
        Decimal(0),
    )  # fmt: skip


def actual_cost(period: str, pool: str) -> Decimal:
    """A pool's direct cost in a period: its Actuals rows summed."""
    return sum((a for p, name, a, *_ in DATA.actuals if p == period and name == pool), D(0))


def budget(period: str, pool: str) -> Decimal:
    return sum((a for p, name, a, *_ in DATA.budget if p == period and name == pool), D(0))


# --- hand checks: CHARGE ------------------------------------------------------------


def test_charge_rate_card_line_is_quantity_times_the_rate_in_force():
    # R10 CHARGE "Virtual Servers" FOR "VM-Month" AT RATE CARD. The Rates sheet has 95.00
    # from 2025-07 and 88.00 from 2026-01; the latest EffectiveFrom not after 2026-03 is
    # 2026-01, so March bills at 88.00. ENG used 46 VMs: 46 x 88.00 = 4,048.00.
    qty = used(PERIOD, "ENG", "VM-Month")
    assert qty == 46
    [line] = bill_lines("ENG", "Virtual Servers")
    assert (line["Metric"], line["Quantity"], line["Rate"], line["Amount"], line["Rule"]) == (
        "VM-Month",
        "46",
        "88.00",
        "4,048.00",
        "R10",
    )
    assert num(line["Amount"]) == qty * D("88.00")


def test_charge_tiered_bands_each_rounded_half_up():
    # R12 TIERED FIRST 5000 AT 0.12, NEXT 45000 AT 0.09, ABOVE AT 0.07, per department.
    # CCR used 125,959 vCPU-hours in March:
    #   5,000 x 0.12 = 600.00;  45,000 x 0.09 = 4,050.00;  75,959 x 0.07 = 5,317.13
    qty = used(PERIOD, "CCR", "vCPU-Hours")
    assert qty == 125_959
    bands = [(D(5000), D("0.12")), (D(45000), D("0.09")), (qty - 50_000, D("0.07"))]
    lines = bill_lines("CCR", "Cloud")
    assert [(num(r["Quantity"]), num(r["Rate"])) for r in lines] == bands
    assert [num(r["Amount"]) for r in lines] == [half_up(q * r) for q, r in bands]
    assert [r["Amount"] for r in lines] == ["600.00", "4,050.00", "5,317.13"]


def test_charge_rate_card_tiers_split_a_decimal_quantity():
    # R11 Storage AT RATE CARD: Rates rows GB-Month 0.08 for TierFrom 0 to 10,000 and 0.04
    # from 10,000 up. CCR stored 100,835.18 GB-months:
    #   10,000 x 0.08 = 800.00;  90,835.18 x 0.04 = 3,633.4072 -> 3,633.41
    qty = used(PERIOD, "CCR", "GB-Month")
    assert qty == D("100835.18")
    lines = bill_lines("CCR", "Storage")
    assert [(r["Quantity"], r["Rate"], r["Amount"]) for r in lines] == [
        ("10,000", "0.08", "800.00"),
        ("90,835.18", "0.04", "3,633.41"),
    ]
    assert num(lines[1]["Amount"]) == half_up((qty - 10_000) * D("0.04"))


def test_charge_where_in_bills_only_the_listed_services_half_up():
    # R13 CHARGE "Cloud Pass-through" FOR "AWS Cost" AT 1.05 WHERE Service IN ("EC2", "S3"):
    # Marketplace rows are not passed through. CRC's March EC2 + S3 come to 3,919.30;
    # 3,919.30 x 1.05 = 4,115.265, exactly half a cent: half-up gives 4,115.27 (rounding
    # half to even would give 4,115.26).
    ec2_s3 = used(PERIOD, "CRC", "AWS Cost", {"EC2", "S3"})
    assert ec2_s3 == D("3919.30")
    [line] = bill_lines("CRC", "Cloud Pass-through")
    assert (line["Quantity"], line["Rate"], line["Amount"]) == ("3,919.3", "1.05", "4,115.27")
    # ENG also has a Marketplace row, which must not be billed: EC2 + S3 only.
    everything = used(PERIOD, "ENG", "AWS Cost")
    ec2_s3 = used(PERIOD, "ENG", "AWS Cost", {"EC2", "S3"})
    assert everything > ec2_s3
    [line] = bill_lines("ENG", "Cloud Pass-through")
    assert num(line["Quantity"]) == ec2_s3
    assert num(line["Amount"]) == half_up(ec2_s3 * D("1.05"))


# --- hand checks: ALLOCATE ------------------------------------------------------------


def largest_remainder_by_hand(total_cents: int, weights: dict[str, int]) -> dict[str, int]:
    """Floor every share to the cent, then one cent each to the largest remainders
    (ties by name ascending): the contract's rule for spreading a fixed total."""
    whole = sum(weights.values())
    floors = {k: total_cents * w // whole for k, w in weights.items()}
    remainders = {k: total_cents * w % whole for k, w in weights.items()}
    leftover = total_cents - sum(floors.values())
    for k in sorted(weights, key=lambda k: (-remainders[k], k.casefold()))[:leftover]:
        floors[k] += 1
    return floors


def cents(amount: Decimal) -> int:
    return int(amount * 100)


def network_spread_by_hand() -> Decimal:
    """What R05 spreads in March: Network's own cost plus what it received, step by step."""
    # 1. Network's direct cost: its March Actuals rows.
    direct = cents(actual_cost(PERIOD, "Network"))
    # 2. R01 ALLOCATE "Facilities" TO POOLS BY 70% "Data Center", 30% "Network": the
    #    Facilities cost split 70:30 by largest remainder.
    facilities = cents(actual_cost(PERIOD, "Facilities"))
    from_facilities = largest_remainder_by_hand(facilities, {"Data Center": 70, "Network": 30})
    # 3. R02/R03, solved together (reciprocal): IT Management goes to ten pools BY COST (each
    #    pool's own direct cost); HR Services goes to IT Management and the departments BY
    #    USAGE "HR Tickets" (only billable departments receive, so PRES's tickets do not count).
    it_pools = ["HR Services", "Data Center", "Network", "Service Desk", "ERP", "Security",
                "Academic Technology", "Virtual Servers", "Storage", "Cloud"]  # fmt: skip
    by_cost = {p: Fraction(cents(actual_cost(PERIOD, p))) for p in it_pools}
    p_it = {p: c / sum(by_cost.values()) for p, c in by_cost.items()}
    tickets = {d: used(PERIOD, d, "HR Tickets") for d in BILLABLE}
    it_tickets = used(PERIOD, "IT Management", "HR Tickets")
    p_hr_to_it = Fraction(it_tickets) / Fraction(sum(tickets.values()) + it_tickets)
    #    T_it = D_it + P(HR->IT) * T_hr and T_hr = D_hr + P(IT->HR) * T_it; substituting:
    #    T_it = (D_it + P(HR->IT) * D_hr) / (1 - P(HR->IT) * P(IT->HR))
    d_it = Fraction(cents(actual_cost(PERIOD, "IT Management")))
    d_hr = Fraction(cents(actual_cost(PERIOD, "HR Services")))
    t_it = (d_it + p_hr_to_it * d_hr) / (1 - p_hr_to_it * p_it["HR Services"])
    #    Each transfer to a pool is rounded half-up to the cent (the leftover cents of IT
    #    Management, which bills no department, ride on its largest transfer: ERP's, not
    #    Network's).
    assert max(by_cost, key=by_cost.get) == "ERP"
    from_it = int(half_up(p_it["Network"] * t_it, 0))
    return Decimal(direct + from_facilities["Network"] + from_it) / 100


def test_allocate_by_headcount_is_largest_remainder_of_the_pool_total():
    # R05 ALLOCATE "Network" TO DEPARTMENTS BY Headcount. Every billable department gets
    # total x headcount / total headcount, floored to the cent; the leftover cents go to the
    # largest remainders. PRES (Billable N) gets nothing.
    total = network_spread_by_hand()
    assert total == D("175165.20")
    recovery = {r["Pool"]: r for r in golden_rows("Recovery") if r["Period"] == PERIOD}
    assert num(recovery["Network"]["Cost"]) == total
    assert num(recovery["Network"]["Recovered"]) == total
    weights = {d: HEADCOUNT[d] for d in BILLABLE}
    assert sum(weights.values()) == 4_310  # 4,335 staff less PRES's 25
    expected = largest_remainder_by_hand(cents(total), weights)
    lines = {r["Department"]: r for r in golden_rows("Bills") if r["Pool"] == "Network"}
    assert set(lines) == BILLABLE
    for department, share in expected.items():
        line = lines[department]
        assert (line["Metric"], num(line["Quantity"])) == ("Headcount", HEADCOUNT[department])
        assert cents(num(line["Amount"])) == share, department
    # ENG, written out: 17,516,520 cents x 420 / 4,310 = 1,706,946.26 cents; floored to
    # 1,706,946, and a remainder of 0.26 cent is too small to win a leftover cent: 17,069.46.
    assert divmod(17_516_520 * 420, 4_310) == (1_706_946, 1_140)
    assert lines["ENG"]["Amount"] == "17,069.46"
    assert sum(expected.values()) == 17_516_520  # the shares add up to the total exactly
