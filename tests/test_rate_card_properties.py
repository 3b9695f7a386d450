"""Properties over random valid rate cards (issue 16): the Rates sheet bills as TIERED does.

A random schedule of contiguous tiers (whole or decimal limits, rates with up to
4 decimals) is written twice into one workbook: as tier rows on the Rates sheet
(in random row order, beside an older and a later schedule of the same metric)
and as an in-rule ``TIERED FIRST … NEXT … ABOVE`` charge of a second pool. Read
and checked like any workbook, the card raises no schedule problem, and every
department's bill lines from the card equal those of the rule to the cent, and an
independent Decimal computation. Then one tier limit moved off its neighbour's
is always caught, at that cell.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from costloop.engine.chargeback.drivers import Drivers
from costloop.engine.chargeback.execute import bills_frame, run_period
from costloop.engine.pipeline.run import prepare
from costloop.engine.read.reader import read_book
from costloop.engine.workbook.memory import MemoryWorkbook
from costloop.problems import Reason

P = "2026-03"
DEPARTMENTS = ["ADM", "FIN", "REG", "RES", "LIB"]
HEADER = ["Metric", "Rate", "Pool", "TierFrom", "TierTo", "EffectiveFrom"]
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

rates = st.integers(0, 2_000_000).map(lambda n: Decimal(n) / 10_000)  # 0 to 200, 4 places
widths = st.one_of(
    st.integers(1, 20_000).map(Decimal),
    st.integers(1, 2_000_000).map(lambda n: Decimal(n) / 100),  # 0.01 to 20,000.00
)


@st.composite
def schedules(draw) -> list[tuple[Decimal, Decimal, Decimal | None]]:
    """(rate, from, to) of 2 to 5 contiguous tiers from 0, the top one open-ended."""
    n = draw(st.integers(2, 5))
    bounds = [Decimal(0)]
    for width in draw(st.lists(widths, min_size=n - 1, max_size=n - 1)):
        bounds.append(bounds[-1] + width)
    prices = draw(st.lists(rates, min_size=n, max_size=n))
    return [(prices[i], bounds[i], bounds[i + 1] if i + 1 < n else None) for i in range(n)]


def tier_rows(draw, schedule, pool: str, effective: str | None) -> list[list[object]]:
    rows = []
    for i, (rate, low, high) in enumerate(schedule):
        # A blank first TierFrom is 0 as well; numbers as Excel stores them (floats).
        blank_start = i == 0 and draw(st.booleans())
        start = None if blank_start else float(low)
        rows.append(["GB", float(rate), pool, start, None if high is None else float(high),
                     effective])  # fmt: skip
    return rows


def tiered_rule(schedule) -> str:
    parts = []
    for i, (rate, low, high) in enumerate(schedule):
        if high is None:
            parts.append(f"ABOVE AT {rate}")
        else:
            parts.append(f"{'FIRST' if i == 0 else 'NEXT'} {high - low} AT {rate}")
    return f'CHARGE "Inline" FOR "GB" TIERED {", ".join(parts)}'


@st.composite
def cards(draw):
    """A workbook billing one schedule from the Rates sheet (pool Card) and in a rule (Inline)."""
    schedule = draw(schedules())
    pool = draw(st.sampled_from(["Card", ""]))  # a blank Pool applies to every pool
    older, later = draw(st.booleans()), draw(st.booleans())
    rows = tier_rows(draw, schedule, pool, "2026-01" if older or later else None)
    if older:
        rows += tier_rows(draw, draw(schedules()), pool, "2025-07")
    if later:
        rows += tier_rows(draw, draw(schedules()), pool, "2026-06")  # not yet in force
    rows = draw(st.permutations(rows))
    top = schedule[-1][1]
    quantity = st.one_of(
        st.sampled_from([low for _, low, _ in schedule]),  # exactly on a limit
        st.integers(0, int(top * 2) + 1).map(Decimal),
        st.integers(0, int(top * 2000) + 1000).map(lambda n: Decimal(n) / 1000),
    )
    used = {d: draw(quantity) for d in DEPARTMENTS}
    workbook = MemoryWorkbook(
        {
            "Settings": [["Key", "Value"], ["Period", P]],
            "Departments": [["Department", "Fund"], *([d, "General"] for d in DEPARTMENTS)],
            "Budget": [["Period", "Pool", "Amount"], [P, "Card", 100], [P, "Inline", 100]],
            "Usage": [
                ["Period", "Department", "Metric", "Quantity"],
                *([P, d, "GB", float(q)] for d, q in used.items()),
            ],
            "Rates": [HEADER, *rows],
            "Rules": [
                ["ID", "Rule"],
                ["R1", 'CHARGE "Card" FOR "GB" AT RATE CARD'],
                ["R2", tiered_rule(schedule)],
            ],
        }
    )
    return workbook, schedule, used


def lines_by_department(bills, pool: str) -> dict[str, list[tuple]]:
    out: dict[str, list[tuple]] = {}
    for row in bills[bills["Pool"] == pool].itertuples():
        out.setdefault(row.Department, []).append(
            (Decimal(repr(float(row.Quantity))), Decimal(row.Rate), Decimal(row.Amount))
        )
    return out


def by_hand(quantity: Decimal, schedule) -> Decimal:
    """Each band's units x its rate, each line rounded half-up to the cent."""
    total = Decimal(0)
    for rate, low, high in schedule:
        part = (quantity if high is None else min(quantity, high)) - low
        if part > 0:
            total += (part * rate).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    return total


@SETTINGS
@given(cards())
def test_the_rates_sheet_bills_as_the_same_schedule_written_tiered(card):
    workbook, schedule, used = card
    outcome = prepare(workbook)
    assert [p.headline() for p in outcome.problems if p.is_error] == []
    assert not [p for p in outcome.problems if p.code is Reason.RATE_SCHEDULE]
    drivers = Drivers(outcome.book)
    run = run_period(drivers, outcome.plan, P)
    assert not [p.headline() for p in run.problems if p.is_error]
    bills = bills_frame(drivers, run)
    from_card = lines_by_department(bills, "Card")
    in_rule = lines_by_department(bills, "Inline")
    assert from_card == in_rule
    for department, quantity in used.items():
        lines = from_card.get(department, [])
        assert sum((amount for _, _, amount in lines), Decimal(0)) == by_hand(quantity, schedule)
        assert sum((q for q, _, _ in lines), Decimal(0)) == quantity


@SETTINGS
@given(schedules(), st.data())
def test_a_tier_limit_moved_off_its_neighbour_is_caught_at_its_cell(schedule, data):
    rows = [
        ["GB", float(rate), "", float(low), None if high is None else float(high), None]
        for rate, low, high in schedule
    ]
    tier = data.draw(st.integers(1, len(rows) - 1), label="tier")  # not the first: it starts at 0
    below = schedule[tier - 1][2]
    moved = data.draw(
        st.one_of(
            st.integers(-100, 100).map(Decimal).filter(lambda d: d != 0),
            st.sampled_from([Decimal(1), Decimal("0.5"), Decimal("-0.01")]),
        ),
        label="moved by",
    )
    start = below + moved
    above = schedule[tier][2]
    if start <= schedule[tier - 1][1] or (above is not None and start >= above):
        return  # another mistake (a tier inside the one below, an empty tier): tested apart
    rows[tier][3] = float(start)
    _, problems = read_book(
        MemoryWorkbook(
            {
                "Settings": [["Key", "Value"]],
                "Departments": [["Department", "Fund"], ["ADM", "General"]],
                "Budget": [["Period", "Pool", "Amount"], [P, "Card", 1]],
                "Usage": [["Period", "Department", "Metric", "Quantity"], [P, "ADM", "GB", 1]],
                "Rates": [HEADER, *rows],
                "Rules": [["ID", "Rule"], ["R1", 'CHARGE "Card" FOR "GB" AT RATE CARD']],
            }
        )
    )
    found = [(p.where, p.message) for p in problems if p.code is Reason.RATE_SCHEDULE]
    assert len(found) == 1, found
    where, message = found[0]
    if moved == 1 and whole(below) and zeros(start) > zeros(below):
        # "0–999 / 1000–…": the rounder 1000 is the limit meant, so the TierTo below changes.
        assert where == f"Rates!E{tier + 1}"
        assert message.startswith(f"TierTo should be {plain(start)}, where the tier below starts")
    else:
        assert where == f"Rates!D{tier + 2}"
        assert message.startswith(f"TierFrom should be {plain(below)}, where the tier above ends")


def whole(number: Decimal) -> bool:
    return number == number.to_integral_value()


def zeros(number: Decimal) -> int:
    digits = str(int(number))
    return len(digits) - len(digits.rstrip("0"))


def plain(number: Decimal) -> str:
    return format(number.normalize(), "f")
