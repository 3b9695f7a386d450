"""ALLOCATE: direct, step-down, reciprocal, drivers, WHERE, IF NO USAGE (hand-worked numbers)."""

from decimal import Decimal
from fractions import Fraction

import pandas as pd
from engine_fixtures import (
    allocate,
    amounts,
    column,
    cond,
    cost,
    evenly,
    make_book,
    plan,
    shares,
    usage,
)

from costloop.engine.chargeback.execute import execute
from costloop.engine.model.book import Settings
from costloop.problems import Reason, Severity

P = "2026-03"
CAL = Settings(fiscal_year_start=3, cost_basis="BUDGET")  # fiscal year = just 2026-03
D = Decimal

THREE = [
    ("ADM", "General", {"Headcount": 10.0}),
    ("FIN", "General", {"Headcount": 20.0}),
    ("HR", "IT", {"Headcount": 30.0}),
]


def run(book, the_plan, period=P):
    result = execute(book, the_plan, period)
    assert all(t.passed for t in result.tieouts), result.tieouts
    return result


def codes(result):
    return {p.code for p in result.problems}


def test_direct_allocation_by_headcount():
    # 1,200.00 by headcount 10:20:30 -> 200.00, 400.00, 600.00
    book = make_book(THREE, budget=[(P, "Service Desk", 1200)], settings=CAL)
    result = run(book, plan(allocate("R1", "Service Desk", column("Headcount"))))
    assert amounts(result) == {
        ("ADM", "Service Desk"): D("200.00"),
        ("FIN", "Service Desk"): D("400.00"),
        ("HR", "Service Desk"): D("600.00"),
    }
    line = result.bills.iloc[0]
    assert (line["Metric"], line["Quantity"], line["Rate"]) == ("Headcount", D("10"), None)
    assert line["Name"] == "ADM Department"
    assert result.rule_amounts == {"R1": D("1200.00")}
    assert not result.problems


def test_step_down_across_three_pools():
    # Facilities 1,000 -> 70% Data Center (700), 30% Network (300).
    # Data Center 2,000 + 700 = 2,700 by Server Hours ADM 1 : FIN 2 -> 900, 1,800.
    # Network 500 + 300 = 800 evenly over three: 266.666.. -> floors 266.66 x 3,
    # 2 cents left to ADM and FIN (equal remainders, by name): 266.67, 266.67, 266.66.
    book = make_book(
        THREE,
        budget=[(P, "Facilities", 1000), (P, "Data Center", 2000), (P, "Network", 500)],
        usage=[(P, "ADM", "Server Hours", 1), (P, "FIN", "Server Hours", 2)],
        settings=CAL,
    )
    steps = plan(
        allocate(
            "F",
            "Facilities",
            shares((70, "Data Center"), (30, "Network")),
            departments=False,
            pools=("Data Center", "Network"),
        ),
        allocate("DC", "Data Center", usage("Server Hours"), row=3),
        allocate("NW", "Network", evenly(), row=4),
    )
    result = run(book, steps)
    assert amounts(result) == {
        ("ADM", "Data Center"): D("900.00"),
        ("FIN", "Data Center"): D("1800.00"),
        ("ADM", "Network"): D("266.67"),
        ("FIN", "Network"): D("266.67"),
        ("HR", "Network"): D("266.66"),
    }
    assert result.rule_amounts == {"DC": D("2700.00"), "F": D("1000.00"), "NW": D("800.00")}
    rec = result.recovery.set_index("Pool")
    assert rec.loc["Facilities", "Cost"] == D("0.00")  # all of it moved onward
    assert rec.loc["Data Center", "Cost"] == D("2700.00")
    assert rec.loc["Data Center", "Recovered"] == D("2700.00")
    assert rec.loc["Data Center", "RecoveryPct"] == D("1.0000")
    flows = result.pool_flows.set_index("Pool")
    assert flows.loc["Facilities", "AllocatedOnward"] == D("1000.00")
    assert flows.loc["Network", "Received"] == D("300.00")
    # pool-to-pool allocations post nothing: no journal line for Facilities
    assert "Facilities" not in set(result.journal["Pool"])


def test_reciprocal_pair_matches_the_closed_form():
    # HR Services (D1 = 1,000) gives 20% to IT Management, 40% ADM, 40% FIN;
    # IT Management (D2 = 2,000) gives 10% to HR Services, 90% FIN.
    # p12 = 0.2, p21 = 0.1: T1 = (D1 + p21 D2) / (1 - p12 p21) = 1,200 / 0.98,
    #                       T2 = (D2 + p12 D1) / (1 - p12 p21) = 2,200 / 0.98.
    t1 = (Fraction(1000) + Fraction(1, 10) * 2000) / (1 - Fraction(2, 10) * Fraction(1, 10))
    t2 = (Fraction(2000) + Fraction(2, 10) * 1000) / (1 - Fraction(2, 10) * Fraction(1, 10))
    # HR -> IT = 0.2 T1 = 244.897.. -> 244.90; IT -> HR = 0.1 T2 = 224.489.. -> 224.49.
    assert round(Fraction(2, 10) * t1, 2) == Fraction(24490, 100)
    assert round(Fraction(1, 10) * t2, 2) == Fraction(22449, 100)
    # HR spreads 1,000 + 224.49 = 1,224.49; to departments 1,224.49 - 244.90 = 979.59,
    #   40:40 -> 489.795 each -> 489.80 ADM (tie by name), 489.79 FIN.
    # IT spreads 2,000 + 244.90 = 2,244.90; to departments 2,244.90 - 224.49 = 2,020.41 FIN.
    book = make_book(
        THREE, budget=[(P, "HR Services", 1000), (P, "IT Management", 2000)], settings=CAL
    )
    group = (
        allocate(
            "HRS",
            "HR Services",
            shares((20, "IT Management"), (40, "ADM"), (40, "FIN")),
            pools=("IT Management",),
            reciprocal=True,
            row=3,
        ),
        allocate(
            "ITM",
            "IT Management",
            shares((10, "HR Services"), (90, "FIN")),
            pools=("HR Services",),
            reciprocal=True,
            row=5,
        ),
    )
    result = run(book, plan(group))
    assert amounts(result) == {
        ("ADM", "HR Services"): D("489.80"),
        ("FIN", "HR Services"): D("489.79"),
        ("FIN", "IT Management"): D("2020.41"),
    }
    assert result.rule_amounts == {"HRS": D("1224.49"), "ITM": D("2244.90")}
    assert sum(result.bills["Amount"]) == D("3000.00")  # all of D1 + D2 reaches departments
    flows = result.pool_flows.set_index("Pool")
    assert flows.loc["HR Services", "AllocatedOnward"] == D("244.90")
    assert flows.loc["HR Services", "Received"] == D("224.49")


def test_singular_reciprocal_system_is_refused_naming_both_cells():
    book = make_book(THREE, budget=[(P, "A", 100), (P, "B", 100)], settings=CAL)
    group = (
        allocate(
            "RA", "A", shares((100, "B")), departments=False, pools=("B",), reciprocal=True, row=3
        ),
        allocate(
            "RB", "B", shares((100, "A")), departments=False, pools=("A",), reciprocal=True, row=5
        ),
    )
    result = execute(book, plan(group), P)
    singular = [p for p in result.problems if p.code is Reason.SINGULAR]
    assert singular and singular[0].severity is Severity.ERROR
    assert singular[0].where == "Rules!B3, B5"
    assert '"A"' in singular[0].message and '"B"' in singular[0].message
    assert not result.ok


def test_pool_received_by_to_pools_alone_by_cost():
    # IT Management 300 TO POOLS (every other pool) BY COST: Data Center direct
    # 2,000, Network 1,000 -> 200 and 100. Then each spreads evenly to ADM/FIN.
    book = make_book(
        THREE[:2],
        budget=[(P, "IT Management", 300), (P, "Data Center", 2000), (P, "Network", 1000)],
        settings=CAL,
    )
    steps = plan(
        allocate("ITM", "IT Management", cost(), departments=False, pools=()),
        allocate("DC", "Data Center", evenly(), row=3),
        allocate("NW", "Network", evenly(), row=4),
    )
    result = run(book, steps)
    assert amounts(result) == {
        ("ADM", "Data Center"): D("1100.00"),
        ("FIN", "Data Center"): D("1100.00"),
        ("ADM", "Network"): D("550.00"),
        ("FIN", "Network"): D("550.00"),
    }
    flows = result.pool_flows.set_index("Pool")
    assert flows.loc["Data Center", "Received"] == D("200.00")
    assert flows.loc["Network", "Received"] == D("100.00")


def test_usage_row_naming_a_pool_counts_for_that_pool():
    # Admin 900 to pool Maintenance and departments by Staff Hours: Maintenance 1,
    # ADM 2 -> 300 to the pool, 600 to ADM; FIN has no hours.
    book = make_book(
        THREE[:2],
        budget=[(P, "Admin", 900), (P, "Maintenance", 0)],
        usage=[(P, "Maintenance", "Staff Hours", 1), (P, "ADM", "Staff Hours", 2)],
        settings=CAL,
    )
    steps = plan(
        allocate("A", "Admin", usage("Staff Hours"), pools=("Maintenance",)),
        allocate("M", "Maintenance", evenly(), row=3),
    )
    result = run(book, steps)
    assert amounts(result) == {
        ("ADM", "Admin"): D("600.00"),
        ("ADM", "Maintenance"): D("150.00"),
        ("FIN", "Maintenance"): D("150.00"),
    }


def test_cost_basis_actual_falls_back_to_budget_with_a_warning():
    settings = Settings(fiscal_year_start=3)  # CostBasis ACTUAL (the default)
    book = make_book(
        THREE[:2],
        budget=[(P, "Cloud", 999), (P, "Network", 400)],
        actuals=[(P, "Cloud", 100), (P, "Cloud", 50)],
        settings=settings,
    )
    result = run(book, plan(allocate("C", "Cloud", evenly()), allocate("N", "Network", evenly())))
    # Cloud uses its actuals 150 (not the 999 budget); Network has none -> budget 400
    assert result.rule_amounts == {"C": D("150.00"), "N": D("400.00")}
    fallback = [p for p in result.problems if p.code is Reason.COST_BASIS_FALLBACK]
    assert len(fallback) == 1 and fallback[0].severity is Severity.WARNING
    assert '"Network" (400.00)' in fallback[0].message and P in fallback[0].message
    assert '"Cloud"' not in fallback[0].message  # Cloud has actuals
    assert "CostBasis" in fallback[0].message


def test_if_no_usage_fail_is_an_error_at_the_rule_cell():
    book = make_book(THREE, budget=[(P, "DC", 500)], usage=[(P, "ADM", "Other", 5)], settings=CAL)
    result = execute(book, plan(allocate("R7", "DC", usage("Server Hours"), row=7)), P)
    [problem] = [p for p in result.problems if p.code is Reason.ZERO_DRIVER]
    assert problem.severity is Severity.ERROR
    assert problem.headline().startswith(
        'Rules!B7, character 1: no usage of "Server Hours" in 2026-03'
    )
    assert "IF NO USAGE EVENLY or KEEP" in problem.message
    assert result.bills.empty and not result.ok


def test_if_no_usage_evenly_splits_evenly():
    book = make_book(THREE, budget=[(P, "DC", 500)], settings=CAL)
    result = run(book, plan(allocate("R", "DC", usage("Server Hours"), if_no_usage="EVENLY")))
    # 500.00 / 3 = 166.666.. -> 166.67 ADM, 166.67 FIN, 166.66 HR
    assert list(result.bills["Amount"]) == [D("166.67"), D("166.67"), D("166.66")]
    assert list(result.bills["Metric"]) == [None, None, None]
    assert not result.problems


def test_if_no_usage_keep_leaves_it_unallocated_with_a_warning():
    book = make_book(THREE, budget=[(P, "DC", 500)], settings=CAL)
    result = run(book, plan(allocate("R", "DC", usage("Server Hours"), if_no_usage="KEEP")))
    assert result.bills.empty
    [warning] = result.problems
    assert warning.code is Reason.ZERO_DRIVER and warning.severity is Severity.WARNING
    assert "kept 500.00" in warning.message
    rec = result.recovery.iloc[-1]
    assert (rec["Cost"], rec["Recovered"], rec["Unallocated"], rec["OverUnder"]) == (
        D("500.00"),
        D("0.00"),
        D("500.00"),
        D("-500.00"),
    )
    assert result.ok


def test_where_on_a_departments_column():
    # Network 300 evenly WHERE Fund = "general" (any case): ADM and FIN only.
    book = make_book(THREE, budget=[(P, "Network", 300)], settings=CAL)
    rule = allocate("N", "Network", evenly(), where=[cond("fund", "=", "general")])
    result = run(book, plan(rule))
    assert amounts(result) == {("ADM", "Network"): D("150.00"), ("FIN", "Network"): D("150.00")}


def test_where_on_a_usage_column_and_numeric_comparison():
    # Only EC2/S3 usage rows count: ADM 3 (EC2) and FIN 1 (S3); ADM's RDS 100 is ignored.
    book = make_book(
        THREE,
        budget=[(P, "Cloud", 400)],
        usage=[
            (P, "ADM", "Cost", 3, {"Service": "EC2"}),
            (P, "ADM", "Cost", 100, {"Service": "RDS"}),
            (P, "FIN", "Cost", 1, {"Service": "s3"}),
        ],
        settings=CAL,
    )
    rule = allocate("C", "Cloud", usage("Cost"), where=[cond("Service", "IN", "EC2", "S3")])
    result = run(book, plan(rule))
    assert amounts(result) == {("ADM", "Cloud"): D("300.00"), ("FIN", "Cloud"): D("100.00")}
    # numeric WHERE on Departments: Headcount >= 20 -> FIN and HR by headcount 20:30
    rule = allocate("C", "Cloud", column("Headcount"), where=[cond("Headcount", ">=", 20)])
    result = run(book, plan(rule))
    assert amounts(result) == {("FIN", "Cloud"): D("160.00"), ("HR", "Cloud"): D("240.00")}


def test_non_billable_departments_receive_nothing():
    deps = [
        ("ADM", "General", {"Billable": "Y"}),
        ("FIN", "General", {"Billable": "N"}),
        ("HR", "IT", {"Billable": None}),  # blank means Y
    ]
    book = make_book(
        deps,
        budget=[(P, "Net", 100)],
        usage=[(P, "ADM", "Ports", 1), (P, "FIN", "Ports", 5), (P, "HR", "Ports", 1)],
        settings=CAL,
    )
    result = run(book, plan(allocate("N", "Net", usage("Ports"))))
    assert amounts(result) == {("ADM", "Net"): D("50.00"), ("HR", "Net"): D("50.00")}


def test_fixed_shares_and_what_the_bill_line_shows():
    # ERP 1,000.01 by 60/30/10: 600.006, 300.003, 100.001 -> floors 600.00,
    # 300.00, 100.00; 1 cent left to the largest remainder (ADM's 0.6 cent).
    book = make_book(THREE, budget=[(P, "ERP", "1000.01")], settings=CAL)
    result = run(book, plan(allocate("E", "ERP", shares((60, "ADM"), (30, "FIN"), (10, "HR")))))
    assert list(result.bills["Amount"]) == [D("600.01"), D("300.00"), D("100.00")]
    assert list(result.bills["Metric"]) == ["Share %"] * 3
    assert list(result.bills["Quantity"]) == [D("60"), D("30"), D("10")]


def test_unreached_pool_is_unallocated_with_a_warning():
    book = make_book(THREE, budget=[(P, "Orphan", 75), (P, "Net", 30)], settings=CAL)
    result = run(book, plan(allocate("N", "Net", evenly())))
    [warning] = [p for p in result.problems if p.code is Reason.UNALLOCATED]
    assert '"Orphan"' in warning.message and "75.00" in warning.message
    rec = result.recovery.set_index("Pool")
    assert rec.loc["Orphan", "Unallocated"] == D("75.00")


def test_rerun_gives_identical_frames():
    book = make_book(
        THREE,
        budget=[(P, "Facilities", 1000), (P, "Data Center", 2000), (P, "Network", 500)],
        usage=[(P, "ADM", "Server Hours", 1.1), (P, "FIN", "Server Hours", 2.2)],
        settings=CAL,
    )
    steps = plan(
        allocate("F", "Facilities", cost(), departments=False, pools=()),
        allocate("DC", "Data Center", usage("Server Hours")),
        allocate("NW", "Network", evenly()),
    )
    first, second = execute(book, steps, P), execute(book, steps, P)
    for name in ("bills", "journal", "recovery", "pool_flows"):
        pd.testing.assert_frame_equal(getattr(first, name), getattr(second, name))
    assert first.rule_amounts == second.rule_amounts
    assert first.problems == second.problems
