"""The departments' budget: what the rules bill each month when every pool costs its Budget.

A department's budget for a month is its bill as `costloop run` would make it with
Settings `CostBasis` `BUDGET` (docs/portal.md#budget-share-against-actual): every
pool's cost is the Budget sheet's `Amount` for the month instead of its Actuals, and
the same rules spread it by the month's own usage and drivers — the support pools
(Facilities, IT Management) flowing into the pools that bill, as they do for the
actual bill. A pool billed at a rate (`CHARGE`) costs the department its usage × the
rate either way, so its budget equals its charge: the rate is the plan. What the
budget isolates is the cost the department was charged above or below the plan.

A month whose budgeted run has an error (no usage to spread a budget by) has no
budget: it is left out, never guessed.
"""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

from costloop.engine.chargeback.drivers import Drivers
from costloop.engine.chargeback.execute import bills_frame, run_period
from costloop.engine.model.book import Book
from costloop.problems import has_errors
from costloop.rules.ast import name_key
from costloop.rules.plan import Plan

BUDGET_BASIS = "BUDGET"


def budget_by_department(
    book: Book, plan: Plan, periods: list[str]
) -> dict[str, dict[str, Decimal]]:
    """Department key -> {period: its bill at CostBasis BUDGET}, for each of ``periods``
    the budgeted run bills without an error (a department billed nothing there: 0)."""
    planned = replace(book, settings=replace(book.settings, cost_basis=BUDGET_BASIS))
    drivers = Drivers(planned)
    by_period: dict[str, dict[str, Decimal]] = {}
    for period in periods:
        run = run_period(drivers, plan, period)
        if has_errors(run.problems):
            continue
        frame = bills_frame(drivers, run)
        sums = by_period[period] = {}
        for code, amount in zip(frame["Department"], frame["Amount"], strict=True):
            key = name_key(str(code))
            sums[key] = sums.get(key, Decimal(0)) + Decimal(amount)
    keys = {k for sums in by_period.values() for k in sums}
    return {k: {p: sums.get(k, Decimal(0)) for p, sums in by_period.items()} for k in keys}
