"""Golden output sheets of the demo workbook, anchored by lines worked out by hand.

Workbook in, sheets out: the packaged demo workbook (what ``costloop demo``
runs) is copied, run in place through the file implementation, and its output
sheets are read back from the saved file with calamine, so write-back is
covered too. Each sheet becomes a tab-separated text file in
``tests/golden/demo/`` that a reviewer reads as a diff. Only the columns the
contract names are kept (an extra input column, such as an Email column in
Departments, cannot change them); the Run Log keeps its counts, totals and
tie-outs but not what changes on every run (run id, time, version, file name,
input fingerprint).

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

from costloop.engine.pipeline.commands import run_book
from costloop.workbooks import demo_path
from costloop.workbooks.demo_data import DEPARTMENTS, demo_data

GOLDEN_DIR = Path(__file__).parent / "golden" / "demo"
UPDATE = os.environ.get("COSTLOOP_UPDATE_GOLDENS") == "1"

# The output columns of each sheet, in the contract's order (docs/contract.md#output-sheets).
SHEETS: dict[str, list[str]] = {
    "Bills": [
        "Period", "Department", "Name", "Pool", "Metric", "Quantity", "Rate", "Amount", "Rule",
        "Charge Period", "Line Type",
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
    "Rule Check": ["ID", "Cell", "Status", "Message", "Amount"],
    "Run Log": ["Key", "Value"],
}  # fmt: skip

# Run Log rows that differ on every run or release, not with the numbers: left out.
VOLATILE_RUN_LOG_KEYS = {
    "Run ID", "Run Time (UTC)", "costloop Version", "Workbook", "Input Fingerprint", "User",
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
        if sheet == "Run Log" and cells[0] in VOLATILE_RUN_LOG_KEYS:
            continue
        lines.append("\t".join(cell_text(v, c) for v, c in zip(cells, columns, strict=True)))
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> dict[str, str]:
    """Run the demo in a copy of the packaged workbook; each output sheet read back as text."""
    book = tmp_path_factory.mktemp("demo") / "costloop-demo.xlsx"
    shutil.copyfile(demo_path(), book)
    outcome = run_book(book)
    assert outcome.ok, [p.render() for p in outcome.errors]
    # One warning, true every run: R13 bills AWS EC2 and S3 only, and its note says the
    # Marketplace rows go via Procurement (engine/chargeback/unbilled.py).
    assert [(p.where, p.code.value) for p in outcome.warnings] == [
        ("Usage!E1385, E1404, E1506", "UNBILLED_USAGE")
    ], [p.render() for p in outcome.warnings]
    saved = python_calamine.CalamineWorkbook.from_path(str(book))
    return {s: render_sheet(s, saved.get_sheet_by_name(s).to_python()) for s in SHEETS}


def golden_path(sheet: str) -> Path:
    """``Rule Check`` -> ``tests/golden/demo/rule_check.tsv``."""
    return GOLDEN_DIR / f"{sheet.lower().replace(' ', '_')}.tsv"


def _short_diff(expected: str, actual: str) -> str:
    diff = difflib.unified_diff(
        expected.splitlines(), actual.splitlines(), "golden", "this run", lineterm="", n=1
    )
    lines = list(diff)
    more = f"\n... {len(lines) - 80} more diff lines" if len(lines) > 80 else ""
    return "\n".join(lines[:80]) + more


@pytest.mark.parametrize("sheet", list(SHEETS))
def test_demo_sheet_matches_golden(rendered, sheet):
    path = golden_path(sheet)
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
    wanted = {golden_path(s).name for s in SHEETS}
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
    lines = golden_path(sheet).read_text("utf-8").splitlines()
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
    return [r for r in golden_rows("Bills") if r["Department"] == department and r["Pool"] == pool]


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


# --- hand checks: Journal -------------------------------------------------------------


def entry_lines(department: str, pool: str) -> list[tuple[str, str, str, str, str, str]]:
    return [
        (r["Entry"], r["Fund"], r["Account"], r["Debit"], r["Credit"], r["Rule"])
        for r in golden_rows("Journal")
        if r["Department"] == department and r["Pool"] == pool
    ]


def test_journal_interfund_department_posts_in_both_funds():
    # ENG is in the General fund, so its Cloud charge is interfund: in General debit expense
    # 6400 and credit due-to 2300; in the IT fund debit due-from 1300 and credit revenue 4400.
    # The amount is ENG's whole Cloud bill: 600.00 + 4,050.00 + 3,156.51 = 7,806.51.
    # Entries are numbered by department code over all 26 departments:
    # ADM ATH BKS BUS CAS CCR CRC DIN EDU ENG -> ENG is entry 0010.
    assert FUND["ENG"] == "General"
    assert sorted(FUND, key=str.casefold).index("ENG") + 1 == 10
    cloud = sum((num(r["Amount"]) for r in bill_lines("ENG", "Cloud")), D(0))
    assert cloud == D("600.00") + D("4050.00") + D("3156.51") == D("7806.51")
    assert entry_lines("ENG", "Cloud") == [
        ("CB-2026-03-0010", "General", "6400", "7,806.51", "", "R12"),
        ("CB-2026-03-0010", "General", "2300", "", "7,806.51", "R12"),
        ("CB-2026-03-0010", "IT", "1300", "7,806.51", "", "R12"),
        ("CB-2026-03-0010", "IT", "4400", "", "7,806.51", "R12"),
    ]


def test_journal_intra_fund_department_is_a_reimbursement():
    # ITAD is a unit of the IT fund itself: debit expense 6400, credit reimbursement 6499,
    # both in IT; nothing is due between funds. Its pass-through: 2,984.68 x 1.05 = 3,133.914
    # -> 3,133.91. ITAD is entry 0015 (ADM ATH BKS BUS CAS CCR CRC DIN EDU ENG FAR FIN HOU
    # HRO ITAD).
    assert FUND["ITAD"] == "IT"
    assert sorted(FUND, key=str.casefold).index("ITAD") + 1 == 15
    ec2_s3 = used(PERIOD, "ITAD", "AWS Cost", {"EC2", "S3"})
    assert half_up(ec2_s3 * D("1.05")) == D("3133.91")
    assert entry_lines("ITAD", "Cloud Pass-through") == [
        ("CB-2026-03-0015", "IT", "6400", "3,133.91", "", "R13"),
        ("CB-2026-03-0015", "IT", "6499", "", "3,133.91", "R13"),
    ]


def test_journal_every_entry_balances_in_each_fund_and_revenue_equals_bills():
    debit, credit = defaultdict(Decimal), defaultdict(Decimal)
    revenue = D(0)
    for r in golden_rows("Journal"):
        key = (r["Entry"], r["Fund"])
        debit[key] += num(r["Debit"]) if r["Debit"] else 0
        credit[key] += num(r["Credit"]) if r["Credit"] else 0
        if r["Account"] in ("4400", "6499") and r["Credit"]:
            revenue += num(r["Credit"])
    assert debit == credit
    billed = sum((num(r["Amount"]) for r in golden_rows("Bills")), D(0))
    assert revenue == billed == D("1073295.02")


# --- hand checks: Recovery -------------------------------------------------------------


def pass_through_billed(period: str) -> Decimal:
    """What R13 bills in a period: each billable department's EC2 + S3 x 1.05, half-up."""
    return sum(
        (half_up(used(period, d, "AWS Cost", {"EC2", "S3"}) * D("1.05")) for d in BILLABLE),
        D(0),
    )


def test_recovery_of_a_charged_pool_by_hand():
    # Cloud Pass-through receives nothing from other pools, so its March cost is its Actuals:
    # the AWS invoice plus Enterprise Support. Recovered is what R13 billed; OverUnder =
    # Recovered - Cost; RecoveryPct = Recovered / Cost to 4 places.
    cost = actual_cost(PERIOD, "Cloud Pass-through")
    recovered = pass_through_billed(PERIOD)
    assert (cost, recovered) == (D("42515.66"), D("42515.65"))  # a cent lost to rounding
    [row] = [
        r
        for r in golden_rows("Recovery")
        if r["Period"] == PERIOD and r["Pool"] == "Cloud Pass-through"
    ]
    assert num(row["Cost"]) == cost
    assert num(row["Recovered"]) == recovered
    assert num(row["OverUnder"]) == recovered - cost == D("-0.01")
    assert num(row["RecoveryPct"]) == half_up(recovered / cost, 4) == D("1.0000")
    assert row["Unallocated"] == "0.00"


def test_recovery_of_virtual_servers_recovered_by_hand():
    # Recovered = every billable department's VMs x the rate in force: 95.00 until December,
    # 88.00 from January. July: 350 VMs x 95.00 = 33,250.00; March: 346 x 88.00 = 30,448.00.
    rows = {r["Period"]: r for r in golden_rows("Recovery") if r["Pool"] == "Virtual Servers"}
    for period in FY_TO_DATE:
        rate = D("88.00") if period >= "2026-01" else D("95.00")
        vms = sum(used(period, d, "VM-Month") for d in BILLABLE)
        assert num(rows[period]["Recovered"]) == vms * rate, period
    assert sum(used("2025-07", d, "VM-Month") for d in BILLABLE) == 350
    assert sum(used(PERIOD, d, "VM-Month") for d in BILLABLE) == 346


def test_every_recovery_row_is_recovered_minus_cost():
    for r in golden_rows("Recovery"):
        cost, recovered = num(r["Cost"]), num(r["Recovered"])
        assert num(r["OverUnder"]) == recovered - cost, r
        if cost:
            assert num(r["RecoveryPct"]) == half_up(recovered / cost, 4), r
        else:
            assert r["RecoveryPct"] == "", r  # a support pool: everything went onward


# --- hand checks: Forecast -------------------------------------------------------------

REMAINING = ["2026-04", "2026-05", "2026-06"]


def forecast_rows(kind: str, name: str) -> list[dict[str, str]]:
    return [r for r in golden_rows("Forecast") if r["Kind"] == kind and r["Name"] == name]


def total_used(period: str, metric: str, services=None) -> Decimal:
    return sum((used(period, d.code, metric, services) for d in DEPARTMENTS), D(0))


def test_forecast_usage_run_rate_growth_and_trend_by_hand():
    # F05 VM-Month BY RUN RATE OVER 3 PERIODS: the average of January..March, flat.
    vms = [total_used(p, "VM-Month") for p in ("2026-01", "2026-02", "2026-03")]
    run_rate = sum(vms) / 3
    assert run_rate == 353
    assert [num(r["Forecast"]) for r in forecast_rows("USAGE", "VM-Month")] == [run_rate] * 3
    # F03 GB-Month BY GROWTH 1.5% PER PERIOD: March's total x 1.015^k, k = 1, 2, 3 (4 places).
    march = Fraction(total_used(PERIOD, "GB-Month"))
    growth = [half_up(march * Fraction(1015, 1000) ** k, 4) for k in (1, 2, 3)]
    assert [num(r["Forecast"]) for r in forecast_rows("USAGE", "GB-Month")] == growth
    # F01 vCPU-Hours BY TREND OVER 6 PERIODS: least squares over October..March, x = 1..6:
    # slope = sum((x - 3.5)(y - mean)) / sum((x - 3.5)^2), forecast at x = 7, 8, 9.
    months = ["2025-10", "2025-11", "2025-12", "2026-01", "2026-02", "2026-03"]
    ys = [Fraction(total_used(p, "vCPU-Hours")) for p in months]
    xs = [Fraction(x) for x in range(1, 7)]
    mean_x, mean_y = sum(xs) / 6, sum(ys) / 6
    slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / sum(
        (x - mean_x) ** 2 for x in xs
    )
    trend = [half_up(mean_y + slope * (x - mean_x), 4) for x in (7, 8, 9)]
    assert [num(r["Forecast"]) for r in forecast_rows("USAGE", "vCPU-Hours")] == trend
    # Adjustment = Forecast - Plan (the Budget's planned Volume, 290,000 vCPU-hours a month).
    for r in forecast_rows("USAGE", "vCPU-Hours"):
        assert num(r["Adjustment"]) == num(r["Forecast"]) - D(290_000)


def test_forecast_break_even_rate_of_the_pass_through_by_hand():
    # Break-even rate for April..June =
    #   (forecast remaining cost - over-recovery to date + under-recovery to date)
    #   / forecast remaining volume billed.
    # Cost: F06 RUN RATE, the average of January..March actual cost, per month (to the cent).
    last3 = [actual_cost(p, "Cloud Pass-through") for p in ("2026-01", "2026-02", "2026-03")]
    per_month = half_up(Fraction(sum(last3)) / 3)
    assert [num(r["Forecast"]) for r in forecast_rows("COST", "Cloud Pass-through")] == [
        per_month
    ] * 3
    cost = 3 * per_month
    # Over/under to date: what R13 billed less what the pool cost, July..March.
    carried = sum(
        (pass_through_billed(p) - actual_cost(p, "Cloud Pass-through") for p in FY_TO_DATE),
        D(0),
    )
    # Volume: AWS Cost usage by RUN RATE (all services, 4 places a month) x the share of
    # usage to date that R13 actually billed (EC2 and S3 of billable departments, not
    # Marketplace and not PRES).
    aws = [total_used(p, "AWS Cost") for p in ("2026-01", "2026-02", "2026-03")]
    usage_per_month = half_up(Fraction(sum(aws)) / 3, 4)
    billed_to_date = sum(
        (used(p, d, "AWS Cost", {"EC2", "S3"}) for p in FY_TO_DATE for d in BILLABLE), D(0)
    )
    used_to_date = sum((total_used(p, "AWS Cost") for p in FY_TO_DATE), D(0))
    share = Fraction(billed_to_date) / Fraction(used_to_date)
    volume = half_up(Fraction(3 * usage_per_month) * share, 4)
    rate = half_up((Fraction(cost) - Fraction(carried)) / Fraction(volume), 6)
    [row] = forecast_rows("RATE", "Cloud Pass-through")
    assert (cost, carried, volume, rate) == (
        D("123751.44"),
        D("0.00"),
        D("118142.6117"),
        D("1.047475"),
    )
    assert num(row["Forecast"]) == rate
    assert num(row["Plan"]) == D("1.05")  # the rule's rate now
    assert num(row["Adjustment"]) == rate - D("1.05")
    assert row["Method"] == (
        'BREAK-EVEN PER "AWS Cost" 2026-04 TO 2026-06: (COST 123,751.44 − OVER/UNDER TO DATE '
        f"0.00) ÷ VOLUME 118,142.6117 (BILLED SHARE {half_up(share * 100, 1)}% OF USAGE TO DATE)"
    )


# --- hand checks: Compliance and Variance ------------------------------------------------


def test_compliance_reserve_of_virtual_servers_by_hand():
    # Cost and revenue year to date are the Recovery rows summed (July..March, 9 months).
    # Annualised cash expenses = cost x 12 / 9; reserve days = over-recovery / (annualised /
    # 365), to one place: 32,212.54 / (346,991.28 / 365) = 33.88... -> 33.9, within 60 days.
    rows = [r for r in golden_rows("Recovery") if r["Pool"] == "Virtual Servers"]
    cost = sum((num(r["Cost"]) for r in rows), D(0))
    revenue = sum((num(r["Recovered"]) for r in rows), D(0))
    annualised = half_up(Fraction(cost) * 12 / 9)
    days = half_up(Fraction(revenue - cost) * 365 * 9 / (Fraction(cost) * 12), 1)
    [row] = [
        r
        for r in golden_rows("Compliance")
        if r["Check"] == "RECOVERY" and r["Pool"] == "Virtual Servers"
    ]
    assert (num(row["Cost YTD"]), num(row["Revenue YTD"])) == (cost, revenue)
    assert num(row["Over/Under YTD"]) == revenue - cost == D("32212.54")
    assert num(row["Recovery %"]) == half_up(revenue / cost, 4)
    assert num(row["Annualised Cash Expenses"]) == annualised == D("346991.28")
    assert num(row["Reserve Days"]) == days == D("33.9")
    assert (row["Months"], row["Limit Days"], row["Status"]) == ("9", "60", "WITHIN LIMIT")


def test_variance_of_cloud_cost_by_hand():
    # Plan YTD = Budget July..March: 26,000 a month, 3% less in August: 8 x 26,000 + 25,220
    # = 233,220.00. Actual YTD = the Actuals rows. Variance = Actual - Plan; % = Variance /
    # Plan to 4 places.
    plan = sum((budget(p, "Cloud") for p in FY_TO_DATE), D(0))
    actual = sum((actual_cost(p, "Cloud") for p in FY_TO_DATE), D(0))
    assert plan == 8 * D(26000) + D(25220) == D("233220.00")
    [row] = [r for r in golden_rows("Variance") if r["Kind"] == "COST" and r["Name"] == "Cloud"]
    assert (num(row["Plan YTD"]), num(row["Actual YTD"])) == (plan, actual)
    assert num(row["Variance"]) == actual - plan
    assert num(row["Variance %"]) == half_up((actual - plan) / plan, 4)
    assert row["Status"] == "OVER BUDGET"


def test_compliance_fund_total_adds_up_the_pools():
    # FUND TOTAL is the sum of the RECOVERY rows; its reserve is in days of the fund's
    # annualised cash expenses: -8,069.77 x 365 x 9 / (9,585,034.10 x 12) = -0.23 -> -0.2.
    rows = [r for r in golden_rows("Compliance") if r["Check"] == "RECOVERY"]
    [total] = [r for r in golden_rows("Compliance") if r["Check"] == "FUND TOTAL"]
    for column in ("Cost YTD", "Revenue YTD", "Over/Under YTD"):
        assert num(total[column]) == sum((num(r[column]) for r in rows), D(0)), column
    cost, over_under = num(total["Cost YTD"]), num(total["Over/Under YTD"])
    assert (cost, over_under) == (D("9585034.10"), D("-8069.77"))
    days = half_up(Fraction(over_under) * 365 * 9 / (Fraction(cost) * 12), 1)
    assert num(total["Reserve Days"]) == days == D("-0.2")
    assert total["Status"] == "UNDER-RECOVERED"


def test_variance_of_vm_usage_and_the_cost_total_by_hand():
    # USAGE VM-Month: plan = Budget Volume 405 a month x 9 = 3,645; actual = every Usage row
    # (the non-billable PRES included: usage is usage) = 3,175; 3,175 - 3,645 = -470.
    actual = sum((total_used(p, "VM-Month") for p in FY_TO_DATE), D(0))
    [row] = [r for r in golden_rows("Variance") if r["Name"] == "VM-Month"]
    assert (num(row["Plan YTD"]), num(row["Actual YTD"])) == (405 * 9, actual) == (3645, 3175)
    assert num(row["Variance"]) == -470
    assert num(row["Variance %"]) == half_up(D(-470) / D(3645), 4) == D("-0.1289")
    assert row["Status"] == "BELOW PLAN"
    # TOTAL: the COST rows added up, plan and actual from the source data directly.
    pools = {r[1] for r in DATA.budget}
    plan = sum((budget(p, pool) for p in FY_TO_DATE for pool in pools), D(0))
    spent = sum((actual_cost(p, pool) for p in FY_TO_DATE for pool in pools), D(0))
    [total] = [r for r in golden_rows("Variance") if r["Kind"] == "TOTAL"]
    assert (num(total["Plan YTD"]), num(total["Actual YTD"])) == (plan, spent)
    assert num(total["Variance"]) == spent - plan == D("-20938.90")


def test_rule_check_amounts_and_run_log_totals_by_hand():
    # Rule Check's Amount is what each rule spread or billed in March: R01 spreads the whole
    # Facilities cost (its Actuals), R05 the Network total worked out above, R13 the
    # pass-through bills.
    amounts = {r["ID"]: r["Amount"] for r in golden_rows("Rule Check")}
    assert num(amounts["R01"]) == actual_cost(PERIOD, "Facilities")
    assert num(amounts["R05"]) == network_spread_by_hand()
    assert num(amounts["R13"]) == pass_through_billed(PERIOD)
    bills = golden_rows("Bills")
    log = {r["Key"]: r["Value"] for r in golden_rows("Run Log")}
    assert num(log["Total Billed"]) == sum((num(r["Amount"]) for r in bills), D(0))
    assert int(log["Bill Lines"]) == len(bills)
    assert int(log["Journal Lines"]) == len(golden_rows("Journal"))
    assert int(log["Rows Usage"].replace(",", "")) == len(DATA.usage)
    assert (log["Status"], log["Errors"], log["Warnings"]) == ("OK", "0", "1")
