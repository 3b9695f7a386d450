"""Plan vs actual, fiscal year to date: the `Variance` sheet.

One COST row per pool (Budget Amount vs Actuals Amount), one USAGE row per
metric (Budget Volume vs Usage Quantity), and a TOTAL row for cost across
pools. Year to date runs from the first period of the fiscal year
(`FiscalYearStart`) through the billed period, both sides over the same periods.

Variance = Actual − Plan (positive: spent or used more than planned);
Variance % = Variance ÷ Plan, a ratio rounded to 4 places (Excel shows 0.0%).
"""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pandas as pd

from costloop.engine.model.book import Book
from costloop.engine.model.formats import QUANTITY_PLACES
from costloop.engine.model.money import cents_to_money, exact_sums, round_to_places
from costloop.engine.model.periods import fiscal_periods_to_date
from costloop.engine.model.sheets import VARIANCE_COLUMNS
from costloop.engine.model.values import first_spellings
from costloop.problems import Problem

RATIO_PLACES = 4

_STATUS = {
    "COST": ("OVER BUDGET", "UNDER BUDGET", "ON BUDGET", "NO BUDGET"),
    "TOTAL": ("OVER BUDGET", "UNDER BUDGET", "ON BUDGET", "NO BUDGET"),
    "USAGE": ("ABOVE PLAN", "BELOW PLAN", "ON PLAN", "NO PLAN"),
}


def _totals(
    frame: pd.DataFrame,
    name_col: str,
    value_col: str,
    periods: set[str],
    fixed: dict[str, dict[str, Fraction]] | None = None,
):
    """({name key: exact total over ``periods``}, {name key: first spelling}) for one sheet.

    ``fixed`` replaces the sheet's sums of the periods it names (a closed period's
    figures as issued): {period: {name key: total}}.
    """
    fixed = {p: sums for p, sums in (fixed or {}).items() if p in periods}
    if frame is None or len(frame) == 0 or name_col not in frame or value_col not in frame:
        return {}, {}
    names = first_spellings(frame[name_col])
    sums = exact_sums(frame, name_col, value_col)
    for period, by_key in fixed.items():
        for per_period in sums.values():
            per_period.pop(period, None)
        for key, total in by_key.items():
            sums.setdefault(key, {})[period] = total
    totals = {}
    for key, per_period in sums.items():
        in_range = [v for p, v in per_period.items() if p in periods]
        if in_range and key in names:
            totals[key] = sum(in_range, Fraction(0))
    return totals, names


def _row(kind, name, span, plan, actual, show) -> dict:
    over, under, even, none = _STATUS[kind]
    plan_shown = None if plan is None else show(plan)
    actual_shown = show(actual or Fraction(0))
    if plan is None:
        return {"Kind": kind, "Name": name, "Periods": span, "Plan YTD": None,
                "Actual YTD": actual_shown, "Variance": None, "Variance %": None,
                "Status": none}  # fmt: skip
    variance = actual_shown - plan_shown
    ratio = None
    if plan != 0:
        ratio = round_to_places(Fraction(variance) / Fraction(plan_shown), RATIO_PLACES)
    status = over if variance > 0 else under if variance < 0 else even
    return {
        "Kind": kind,
        "Name": name,
        "Periods": span,
        "Plan YTD": plan_shown,
        "Actual YTD": actual_shown,
        "Variance": variance,
        "Variance %": ratio,
        "Status": status,
    }


def variance(
    book: Book, period: str, closed: dict[str, dict[str, dict[str, Fraction]]] | None = None
) -> tuple[pd.DataFrame, list[Problem]]:
    """The `Variance` sheet: year-to-date plan vs actual by pool and by metric.

    ``closed`` holds the actuals (``"actual"``: cents by pool key) and usage
    (``"usage"``: quantity by metric key) of the periods that do not come from the
    input sheets: closed periods as issued (`costloop.engine.pipeline.ledger`).
    """
    closed = closed or {}
    ytd = fiscal_periods_to_date(period, book.settings.fiscal_year_start)
    span = ytd[0] if len(ytd) == 1 else f"{ytd[0]} to {ytd[-1]}"
    periods = set(ytd)
    minor = book.settings.minor_unit

    def cash(cents: Fraction) -> Decimal:
        return cents_to_money(int(cents), minor)  # sums of integer cents stay integer

    def quantity(value: Fraction) -> Decimal:
        return round_to_places(value, QUANTITY_PLACES)

    budget, budget_names = _totals(book.budget, "Pool", "Cents", periods)
    actual, actual_names = _totals(book.actuals, "Pool", "Cents", periods, closed.get("actual"))
    pool_names = {**actual_names, **budget_names}  # Budget's spelling first (Book.pools)
    rows = []
    for key in sorted(pool_names):
        rows.append(_row("COST", pool_names[key], span, budget.get(key), actual.get(key), cash))
    if pool_names:
        plan_total = sum(budget.values(), Fraction(0)) if budget else None
        actual_total = sum(actual.values(), Fraction(0))
        rows.append(_row("TOTAL", "All pools", span, plan_total, actual_total, cash))

    volume, volume_names = _totals(book.budget, "Metric", "Volume", periods)
    used, used_names = _totals(book.usage, "Metric", "Quantity", periods, closed.get("usage"))
    metric_names = {**volume_names, **used_names}
    for key in sorted(metric_names):
        rows.append(
            _row("USAGE", metric_names[key], span, volume.get(key), used.get(key), quantity)
        )
    return pd.DataFrame(rows, columns=VARIANCE_COLUMNS, dtype=object), []
