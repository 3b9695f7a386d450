"""Properties over random books: every cent is accounted for, every journal balances."""

from collections import defaultdict
from decimal import Decimal
from itertools import pairwise

from engine_fixtures import allocate, charge, column, evenly, make_book, plan, shares, usage
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from costloop.engine.chargeback.drivers import Drivers
from costloop.engine.chargeback.execute import bills_frame, execute, run_period
from costloop.engine.chargeback.journal import build_journal
from costloop.engine.model.book import Settings
from costloop.problems import Reason

P = "2026-03"
FUNDS = ["General", "IT", "Parks"]
METRICS = ["Hours", "Tickets"]


@st.composite
def books(draw):
    n_deps = draw(st.integers(1, 6))
    deps = [
        (
            f"D{i}",
            draw(st.sampled_from(FUNDS)),
            {
                "Headcount": float(draw(st.integers(0, 50))),
                "Billable": draw(st.sampled_from(["Y", "Y", "Y", "N"])),
            },
        )
        for i in range(n_deps)
    ]
    n_pools = draw(st.integers(2, 5))
    pools = [f"Pool {chr(65 + i)}" for i in range(n_pools)]
    amount = st.integers(-50_000, 5_000_000).map(lambda c: Decimal(c) / 100)
    budget = [(P, p, draw(amount)) for p in pools]
    quantity = st.one_of(
        st.integers(0, 10_000).map(float),
        st.decimals("0", "1000", places=3).map(float),
    )
    receivers = [d[0] for d in deps] + pools
    usage_rows = [
        (P, draw(st.sampled_from(receivers)), draw(st.sampled_from(METRICS)), draw(quantity))
        for _ in range(draw(st.integers(0, 15)))
    ]

    def driver(may_share_pools):
        kind = draw(st.sampled_from(["usage", "column", "even", "shares"]))
        if kind == "usage":
            return usage(draw(st.sampled_from(METRICS)))
        if kind == "column":
            return column("Headcount")
        if kind == "even":
            return evenly()
        names = draw(
            st.lists(st.sampled_from(may_share_pools), min_size=1, max_size=4, unique=True)
        )
        cuts = sorted(
            draw(
                st.lists(
                    st.integers(1, 99),
                    min_size=len(names) - 1,
                    max_size=len(names) - 1,
                    unique=True,
                )
            )
        )
        bounds = [0, *cuts, 100]
        pcts = [b - a for a, b in pairwise(bounds)]
        return shares(*zip(pcts, names, strict=False))

    rules = []
    charged = pools[-1]
    spread = pools[:-1]
    reciprocal = len(spread) >= 3 and draw(st.booleans())
    chain = spread[:-2] if reciprocal else spread
    for i, pool in enumerate(chain):
        later = [p for p in spread if p not in chain[: i + 1]]
        to_pools = tuple(draw(st.lists(st.sampled_from(later), unique=True))) if later else ()
        names = [d[0] for d in deps] + list(to_pools)
        rules.append(
            allocate(
                f"R{i}",
                pool,
                driver(names),
                pools=to_pools or None,
                if_no_usage=draw(st.sampled_from(["EVENLY", "KEEP", "FAIL"])),
                row=i + 2,
            )
        )
    steps = list(rules)
    if reciprocal:
        a, b = spread[-2], spread[-1]
        names_a = [d[0] for d in deps] + [b]
        names_b = [d[0] for d in deps] + [a]
        group = (
            allocate(
                "RA", a, driver(names_a), pools=(b,), if_no_usage="EVENLY", reciprocal=True, row=20
            ),
            allocate(
                "RB", b, driver(names_b), pools=(a,), if_no_usage="EVENLY", reciprocal=True, row=21
            ),
        )
        steps.append(group)
    rate = draw(st.decimals("0", "5", places=4))
    the_plan = plan(*steps, charges=[charge("C", charged, "Hours", rate, row=30)])
    book = make_book(
        deps,
        budget=budget,
        usage=usage_rows,
        settings=Settings(fiscal_year_start=3, cost_basis="BUDGET"),
    )
    return book, the_plan


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(books())
def test_every_cent_is_accounted_for(case):
    book, the_plan = case
    drivers = Drivers(book)
    run = run_period(drivers, the_plan, P)
    bills = bills_frame(drivers, run)
    by_rule = defaultdict(int)
    for line in run.lines:
        by_rule[line.rule_id] += line.cents
    # Σ bill lines + lines to pools + kept = amount spread, to the cent, every rule
    for rule_id, spread in run.spreads.items():
        moved = sum(t.cents for t in spread.transfers)
        assert by_rule[rule_id] + moved + spread.kept == spread.amount, rule_id
    # and no cent is created or lost across all allocated pools together
    allocated = {s.pool for s in run.spreads.values()} | {
        p for p in run.flows if p not in run.charged_pools
    }
    direct = sum(run.flows[p]["direct"] for p in allocated)
    into_charged = sum(t.cents for t in run.transfers if t.target in run.charged_pools)
    billed = sum(line.cents for line in run.lines if line.pool in allocated)
    unallocated = sum(run.flows[p]["unallocated"] for p in allocated)
    assert direct == billed + unallocated + into_charged
    # every journal entry balances in every fund
    journal = build_journal(drivers, bills, P)
    if not journal.empty:
        for _, lines in journal.groupby(["Entry", "Fund"]):
            debit = sum((d for d in lines["Debit"] if d is not None and d == d), Decimal(0))
            credit = sum((c for c in lines["Credit"] if c is not None and c == c), Decimal(0))
            assert debit == credit


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(books())
def test_tie_outs_all_pass(case):
    book, the_plan = case
    result = execute(book, the_plan, P)
    assert all(t.passed for t in result.tieouts), result.tieouts
    assert not [p for p in result.problems if p.code is Reason.TIE_OUT]
    assert all(isinstance(a, Decimal) for a in result.bills["Amount"])
    assert all(a == a.quantize(Decimal("0.01")) for a in result.bills["Amount"])
