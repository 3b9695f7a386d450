"""The engine fed by the real parser and orderer: rules as a finance user writes them."""

from decimal import Decimal

from engine_fixtures import allocate, amounts, evenly, make_book, plan, shares

from costloop.engine.chargeback.execute import execute
from costloop.engine.model.book import Settings
from costloop.problems import Reason, has_errors
from costloop.rules import order, parse_rules
from costloop.rules.ast import RuleCell

D = Decimal
P = "2026-03"
DEPS = [
    ("ADM", "General", {"Headcount": 10.0}),
    ("FIN", "General", {"Headcount": 30.0}),
    ("LIB", "Library", {"Headcount": 60.0}),
]


def plan_of(book, *texts):
    cells = [RuleCell(f"R{i + 1}", f"Rules!B{i + 2}", t) for i, t in enumerate(texts)]
    rules, problems = parse_rules(cells)
    assert not has_errors(problems), [p.render() for p in problems]
    the_plan, problems = order(rules, book.pools)
    assert not has_errors(problems), [p.render() for p in problems]
    return the_plan


def test_step_down_written_in_any_row_order():
    # Rows out of order on purpose: the engine orders by dependency.
    # Facilities 1,000 -> 60% Network (600), 40% Data Center (400).
    # Network 400 + 600 = 1,000 by Headcount 10:30:60 -> 100, 300, 600.
    # Data Center 2,000 + 400 = 2,400 by Server Hours 1:1:2 -> 600, 600, 1,200.
    book = make_book(
        DEPS,
        budget=[(P, "Facilities", 1000), (P, "Network", 400), (P, "Data Center", 2000)],
        usage=[(P, d, "Server Hours", h) for d, h in (("ADM", 1), ("FIN", 1), ("LIB", 2))],
        settings=Settings(fiscal_year_start=7, cost_basis="BUDGET"),
    )
    the_plan = plan_of(
        book,
        'ALLOCATE "Network" TO DEPARTMENTS BY Headcount',
        'ALLOCATE "Data Center" TO DEPARTMENTS BY USAGE "Server Hours"',
        'ALLOCATE "Facilities" TO POOLS BY 60% "Network", 40% "Data Center"',
    )
    result = execute(book, the_plan, P)
    assert all(t.passed for t in result.tieouts)
    assert amounts(result) == {
        ("ADM", "Network"): D("100.00"),
        ("FIN", "Network"): D("300.00"),
        ("LIB", "Network"): D("600.00"),
        ("ADM", "Data Center"): D("600.00"),
        ("FIN", "Data Center"): D("600.00"),
        ("LIB", "Data Center"): D("1200.00"),
    }
    # the fiscal year (July start) runs 2025-07 .. 2026-03: nine Recovery periods,
    # the months without budget quietly at zero
    assert result.periods[0] == "2025-07" and len(result.periods) == 9
    assert len(result.recovery) == 9 * 3
    assert not has_errors(result.problems)


def test_cost_received_after_its_pool_was_spread_is_kept_and_reported():
    # "Late" receives from "Source", but is spread in its own step first only if
    # the plan says so; build that plan by hand to prove the cost is not lost.
    book = make_book(
        DEPS,
        budget=[(P, "Late", 30), (P, "Source", 50)],
        settings=Settings(fiscal_year_start=3, cost_basis="BUDGET"),
    )
    steps = plan(
        allocate("L", "Late", evenly()),
        allocate("S", "Source", shares((100, "Late")), departments=False, pools=("Late",)),
    )
    result = execute(book, steps, P)
    assert all(t.passed for t in result.tieouts)
    [warning] = [p for p in result.problems if p.code is Reason.UNALLOCATED]
    assert '"Late" keeps 50.00' in warning.message and "after the rule" in warning.message
    rec = result.recovery.set_index("Pool")
    assert rec.loc["Late", "Unallocated"] == D("50.00")
