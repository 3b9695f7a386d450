"""Re-forecast the rest of the fiscal year and propose break-even rates (docs/itfm.md).

For every period after the billed one up to the fiscal year end, a USAGE row
per metric and a COST row per pool; then a RATE row per pool billed with
CHARGE proposing the rate that breaks even over the rest of the year:

    (forecast remaining cost − cumulative over/under recovery to date) ÷ forecast remaining volume

Arithmetic is exact (`Fraction`) and rounded once, half-up, when a number is
shown: cost to the currency's minor unit, usage to 4 places, rates to 6. The
break-even uses the rounded figures shown on the sheet so a reader can redo it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from decimal import Decimal
from fractions import Fraction

import pandas as pd

from costloop.engine.chargeback.rates import RateCards
from costloop.engine.model.book import Book
from costloop.engine.model.formats import QUANTITY_PLACES, RATE_PLACES
from costloop.engine.model.money import (
    cents_to_money,
    exact_decimal,
    exact_fraction,
    exact_sums,
    round_half_up,
    round_to_places,
)
from costloop.engine.model.periods import (
    fiscal_periods_remaining,
    fiscal_periods_to_date,
    period_index,
)
from costloop.engine.model.sheets import FORECAST_COLUMNS
from costloop.engine.model.values import first_spellings
from costloop.problems import Problem, Reason, Severity
from costloop.rules.ast import (
    ByPlan,
    Charge,
    FixedRate,
    Forecast,
    Growth,
    RateCard,
    RunRate,
    Span,
    Trend,
    name_key,
)
from costloop.rules.plan import SetAside

USAGE_PLACES = QUANTITY_PLACES
"""Usage forecasts are quantities shown to 4 decimal places."""
# Proposed rates are rounded to RATE_PLACES (6) decimals, the places their format shows.
DEFAULT_RUN_RATE = 3
"""Usage without a FORECAST rule: the average of the last 3 actual periods."""


def decimal_text(value: Decimal) -> str:
    """2.50 -> '2.5', 2 -> '2' (for method text)."""
    return f"{value.normalize():f}"


# --- the series being forecast ----------------------------------------------


@dataclass
class Series:
    """One metric's usage or one pool's cost: actuals and plan per period, exact."""

    kind: str  # USAGE or COST
    name: str
    actual: dict[str, Fraction] = field(default_factory=dict)
    plan: dict[str, Fraction] = field(default_factory=dict)
    where: str = "Budget!A1"
    """Where its plan lives (its first Budget cell), for messages about the plan."""

    def history(self, period: str) -> list[tuple[str, Fraction]]:
        """Actual periods up to and including the billed one, oldest first."""
        return sorted((p, v) for p, v in self.actual.items() if p <= period)

    @property
    def what(self) -> str:
        if self.kind == "USAGE":
            return f'actual usage of "{self.name}"'
        return f'actual cost of pool "{self.name}" (Actuals sheet)'


def _sum_by(frame: pd.DataFrame, name_col: str, value_col: str) -> dict:
    """{name key: {period: exact total}}."""
    return exact_sums(frame, name_col, value_col)


def _spellings(frames: Iterable[tuple[pd.DataFrame, str]]) -> dict[str, str]:
    """Name key -> first spelling over the frames' columns, in order."""
    return first_spellings(*(f[c] for f, c in frames if f is not None and c in f))


def build_series(
    book: Book, forecasts: Iterable[Forecast], charges: Iterable[Charge]
) -> tuple[dict[str, Series], dict[str, Series]]:
    """(metric key -> usage series, pool key -> cost series), names in first spelling."""
    forecasts, charges = list(forecasts), list(charges)
    metric_names = _spellings([(book.usage, "Metric"), (book.budget, "Metric")])
    for charge in charges:
        metric_names.setdefault(charge.metric.key, charge.metric.text)
    pool_names = _spellings([(book.budget, "Pool"), (book.actuals, "Pool")])
    for rule in forecasts:
        target = metric_names if rule.kind == "USAGE" else pool_names
        target.setdefault(rule.name.key, rule.name.text)

    usage = _sum_by(book.usage, "Metric", "Quantity")
    volume = _sum_by(book.budget, "Metric", "Volume")
    budget = _sum_by(book.budget, "Pool", "Cents")
    actual = _sum_by(book.actuals, "Pool", "Cents")
    # A metric's plan is a Volume on the Budget sheet read (Budget@NAME in a scenario run).
    budget_at = f"{book.sources.get('Budget', 'Budget')}!A1"
    metrics = {
        k: Series("USAGE", n, usage.get(k, {}), volume.get(k, {}), budget_at)
        for k, n in metric_names.items()
    }
    pools = {
        k: Series("COST", n, actual.get(k, {}), budget.get(k, {}), book.pool_cell(k, ("Budget",)))
        for k, n in pool_names.items()
    }
    return metrics, pools


# --- forecasting methods ------------------------------------------------------


@dataclass
class Projection:
    """Forecast values per remaining period (exact), the method text, and problems."""

    values: dict[str, Fraction]
    method: str | dict[str, str]
    problems: list[Problem] = field(default_factory=list)

    def method_for(self, period: str) -> str:
        return self.method if isinstance(self.method, str) else self.method[period]


def least_squares(points: list[tuple[int, Fraction]]) -> tuple[Fraction, Fraction]:
    """(intercept, slope) of the exact least-squares line through (x, y) points."""
    n = len(points)
    sx = sum(Fraction(x) for x, _ in points)
    sy = sum(y for _, y in points)
    sxx = sum(Fraction(x * x) for x, _ in points)
    sxy = sum(x * y for x, y in points)
    slope = (n * sxy - sx * sy) / (n * sxx - sx * sx)
    return (sy - slope * sx) / n, slope


def trend(history: list[tuple[str, Fraction]], n: int, targets: list[str]) -> dict[str, Fraction]:
    """Line over the last n actual periods, x in months so a gap month keeps its place."""
    points = [(period_index(p), v) for p, v in history[-n:]]
    intercept, slope = least_squares(points)
    # A falling trend cannot forecast negative usage or cost: clip at zero.
    return {t: max(Fraction(0), intercept + slope * period_index(t)) for t in targets}


def growth(
    history: list[tuple[str, Fraction]], percent: Decimal, targets: list[str]
) -> dict[str, Fraction]:
    """Compound ``percent`` per month from the last actual period."""
    last_period, last = history[-1]
    factor = 1 + Fraction(percent) / 100
    return {
        t: max(Fraction(0), last * factor ** (period_index(t) - period_index(last_period)))
        for t in targets
    }


def run_rate(
    history: list[tuple[str, Fraction]], n: int, targets: list[str]
) -> dict[str, Fraction]:
    """The average of the last n actual periods, flat."""
    last = [v for _, v in history[-n:]]
    average = sum(last, Fraction(0)) / len(last)
    return dict.fromkeys(targets, average)


def _span_of_number(rule: Forecast) -> tuple[int, int]:
    """The span of the ``n`` in ``OVER n PERIODS`` (else the whole method)."""
    span: Span = rule.method.span
    found = re.search(r"\d+", rule.text[span.start : span.end])
    if found:
        return span.start + found.start(), span.start + found.end()
    return span.start, span.end


def _rule_problem(rule: Forecast, code: Reason, message: str, span=None, severity=Severity.WARNING):
    """Located at ``span`` (start, end), else under the forecast method.

    A warning: a forecast that cannot be computed never holds back the bills
    (docs/itfm.md#mistakes-costloop-reports); the sheet marks its rows instead.
    """
    where = Span(*span) if span else rule.method.span
    return Problem.at_rule(rule, code, message, where, severity)


def _range_text(history: list[tuple[str, Fraction]]) -> str:
    if len(history) == 1:
        return f"({history[0][0]})"
    return f"({history[0][0]} to {history[-1][0]})"


def _too_few(rule: Forecast, series: Series, label: str, n: int, history) -> Problem:
    have = len(history)
    if have == 0:
        exist = "none exist"
    elif have == 1:
        exist = f"only 1 exists {_range_text(history)}"
    else:
        exist = f"only {have} exist {_range_text(history)}"
    minimum = 2 if isinstance(rule.method, Trend) else 1
    if have >= minimum:
        fix = f"use OVER {have} PERIODS or fewer"
    else:
        fix = "use BY PLAN" if have == 0 else "use BY RUN RATE or BY PLAN"
    return _rule_problem(
        rule,
        Reason.BAD_FORECAST,
        f"{label} needs {n} periods of {series.what}; {exist} — {fix}",
        span=_span_of_number(rule),
    )


def _plan_projection(series: Series, targets, period, rule: Forecast | None):
    """PLAN: the Budget; a period without budget falls back to the run rate of actuals."""
    values: dict[str, Fraction] = {}
    methods: dict[str, str] = {}
    missing = [t for t in targets if t not in series.plan]
    history = series.history(period)
    fallback = run_rate(history, DEFAULT_RUN_RATE, missing) if history and missing else {}
    used = min(DEFAULT_RUN_RATE, len(history))
    for t in targets:
        if t in series.plan:
            values[t], methods[t] = series.plan[t], "PLAN"
        elif fallback:
            values[t] = fallback[t]
            methods[t] = f"RUN RATE OVER {used} PERIODS (NO BUDGET)"
        else:
            values[t], methods[t] = Fraction(0), "NO BUDGET OR ACTUALS"
    problems = []
    if missing and (rule is not None or series.kind == "COST"):
        listed = ", ".join(missing)
        what = f'pool "{series.name}"' if series.kind == "COST" else f'Volume of "{series.name}"'
        source = "actuals" if series.kind == "COST" else "usage"
        instead = (
            f"forecast by RUN RATE of its {source} over {used} periods instead"
            if fallback
            else f"forecast at zero (it has no {source} either)"
        )
        if rule is not None:
            problems.append(
                _rule_problem(
                    rule,
                    Reason.NO_BUDGET,
                    f'FORECAST {series.kind} "{series.name}" BY PLAN, but the Budget sheet has no '
                    f"rows with {what} for {listed} (remaining periods of the fiscal year), so "
                    f"those months are {instead} — add Budget rows for those periods or forecast "
                    f"it BY RUN RATE or BY TREND",
                )
            )
        else:
            problems.append(
                Problem(
                    Reason.NO_BUDGET,
                    Severity.WARNING,
                    series.where,
                    f"the Budget sheet has no rows for {what} in {listed} (remaining periods of "
                    f"the fiscal year); its cost there is {instead} — add Budget rows for those "
                    f'periods, or add a rule such as FORECAST COST "{series.name}" BY TREND OVER '
                    f"3 PERIODS",
                )
            )
    return Projection(values, methods, problems)


def project(series: Series, rule: Forecast | None, targets: list[str], period: str) -> Projection:
    """Forecast one series over the remaining periods by its rule, or the default."""
    history = series.history(period)
    method = rule.method if rule else None
    if isinstance(method, Trend):
        label = f"TREND OVER {method.periods} PERIODS"
        if method.periods < 2:
            return _fallback(
                series, targets, period,
                _rule_problem(rule, Reason.BAD_FORECAST,
                              "a trend line needs at least 2 periods — use OVER 2 PERIODS or more",
                              span=_span_of_number(rule)),
                label, "A TREND NEEDS AT LEAST 2 PERIODS",
            )  # fmt: skip
        if len(history) < method.periods:
            return _fallback(
                series,
                targets,
                period,
                _too_few(rule, series, label, method.periods, history),
                label,
                _missing_history(len(history), method.periods),
            )
        return Projection(trend(history, method.periods, targets), label)
    if isinstance(method, RunRate):
        label = f"RUN RATE OVER {method.periods} PERIODS"
        if method.periods < 1 or len(history) < method.periods:
            return _fallback(
                series,
                targets,
                period,
                _too_few(rule, series, label, method.periods, history),
                label,
                "A RUN RATE NEEDS AT LEAST 1 PERIOD"
                if method.periods < 1
                else _missing_history(len(history), method.periods),
            )
        return Projection(run_rate(history, method.periods, targets), label)
    if isinstance(method, Growth):
        label = f"GROWTH {decimal_text(method.percent)}% PER PERIOD"
        if not history:
            problem = _rule_problem(
                rule,
                Reason.BAD_FORECAST,
                f"{label} compounds from the last period of {series.what}, but none exists up to "
                f"{period} — use BY PLAN",
            )
            return _fallback(series, targets, period, problem, label, "NO ACTUALS TO DATE")
        return Projection(growth(history, method.percent, targets), label)
    if isinstance(method, ByPlan):
        return _plan_projection(series, targets, period, rule)
    return _default(series, targets, period)


def _default(series: Series, targets, period) -> Projection:
    """No rule: usage by RUN RATE over the last 3 actual periods, cost by PLAN."""
    if series.kind == "COST":
        return _plan_projection(series, targets, period, None)
    history = series.history(period)
    if history:
        used = min(DEFAULT_RUN_RATE, len(history))
        return Projection(run_rate(history, used, targets), f"RUN RATE OVER {used} PERIODS")
    if all(t in series.plan for t in targets):
        return Projection({t: series.plan[t] for t in targets}, "PLAN (NO USAGE TO DATE)")
    return Projection(
        {t: series.plan.get(t, Fraction(0)) for t in targets},
        {t: "PLAN (NO USAGE TO DATE)" if t in series.plan else "NO USAGE TO DATE" for t in targets},
    )


def method_label(method) -> str:
    """A FORECAST rule's method as the Method column writes it: ``TREND OVER 6 PERIODS``."""
    if isinstance(method, Trend):
        return f"TREND OVER {method.periods} PERIODS"
    if isinstance(method, RunRate):
        return f"RUN RATE OVER {method.periods} PERIODS"
    if isinstance(method, Growth):
        return f"GROWTH {decimal_text(method.percent)}% PER PERIOD"
    return "PLAN"


def _not_computed(aside: SetAside) -> str:
    """``TREND OVER 1 PERIODS NOT COMPUTED: <the check's message> (Rules!B15)``."""
    rule = aside.rule
    return f"{method_label(rule.method)} NOT COMPUTED: {aside.why} ({rule.where})"


def _mark_set_aside(projection: Projection, aside: SetAside) -> None:
    """The default's rows of a series whose own rule was set aside, marked as such."""
    marked = f" — {_not_computed(aside)}"
    if isinstance(projection.method, str):
        projection.method += marked
    else:
        projection.method = {t: m + marked for t, m in projection.method.items()}


def _missing_history(have: int, wanted: int) -> str:
    return "NO ACTUALS TO DATE" if have == 0 else f"ONLY {have} OF {wanted} PERIODS OF ACTUALS"


def _fallback(series, targets, period, problem: Problem, label: str, why: str) -> Projection:
    """A rule that cannot run: a warning, and the rows filled by the default, marked as such.

    The rows still hold numbers (the default method's), so the sheet is
    complete; Method says the rule's own forecast was not computed and why, so
    nobody takes the default for the rule's answer.
    """
    projection = _default(series, targets, period)
    marked = f" — {label} NOT COMPUTED: {why}"
    if isinstance(projection.method, str):
        shown = projection.method
        projection.method = projection.method + marked
    else:
        shown = " / ".join(dict.fromkeys(projection.method.values()))
        projection.method = {t: m + marked for t, m in projection.method.items()}
    instead = f"; until then the Forecast sheet shows {shown} in its place (its Method says so)"
    projection.problems.insert(0, replace(problem, message=problem.message + instead))
    return projection


# --- rows -------------------------------------------------------------------


def _show(kind: str, value: Fraction | None, minor_unit: int) -> Decimal | None:
    if value is None:
        return None
    if kind == "COST":  # cents -> money, rounded to the minor unit
        return cents_to_money(round_half_up(value), minor_unit)
    return round_to_places(value, USAGE_PLACES)


def _rules_by_name(forecasts: Iterable[Forecast]) -> tuple[dict, list[Problem]]:
    chosen: dict[tuple[str, str], Forecast] = {}
    problems = []
    for rule in forecasts:
        key = (rule.kind, rule.name.key)
        if key in chosen:
            first = chosen[key]
            problems.append(
                Problem(
                    Reason.BAD_FORECAST,
                    Severity.WARNING,
                    rule.where,
                    f'a second FORECAST {rule.kind} "{rule.name.text}" is ignored; '
                    f"{first.where} already forecasts it — delete or disable one of them",
                    rule.text,
                    rule.name.span.start,
                    rule.name.span.end,
                    rule.rule_id,
                )
            )
            continue
        chosen[key] = rule
    return chosen, problems


def forecast(
    book: Book,
    forecasts: Iterable[Forecast],
    charges: Iterable[Charge],
    recovery: pd.DataFrame | None,
    period: str,
    bills: pd.DataFrame | None = None,
    flows: pd.DataFrame | None = None,
    year_charges: pd.DataFrame | None = None,
    set_aside: Iterable[SetAside] = (),
) -> tuple[pd.DataFrame, list[Problem]]:
    """The `Forecast` sheet: USAGE, COST and RATE rows for the rest of the fiscal year.

    ``set_aside`` (the plan's FORECAST rules not run for a mistake in their text,
    already a warning): the metric or pool is forecast by the default method and
    its Method says the rule was NOT COMPUTED and why; a name no sheet has gets
    one such row with no figures, so nobody looks for the rule's forecast in vain.

    ``year_charges`` (optional, the CHARGE bill lines of the fiscal year to
    date) scales a pool's break-even volume to the part of its metric's usage
    that is actually billed (a CHARGE's WHERE, non-billable departments).

    ``bills`` (optional, the billed period's Bills) fills the RATE rows' Actual
    column with the average rate actually billed. ``flows`` (optional, the
    engine's pool flows: Period, Pool, Received, AllocatedOnward) adds to a
    charged pool's remaining cost what it nets from other pools' allocations,
    at its run rate over the last 3 periods to date.
    """
    forecasts, charges = list(forecasts), list(charges)
    minor = book.settings.minor_unit
    targets = fiscal_periods_remaining(period, book.settings.fiscal_year_start)
    chosen, problems = _rules_by_name(forecasts)
    metrics, pools = build_series(book, forecasts, charges)
    rows: list[dict] = []
    shown: dict[tuple[str, str], dict[str, Decimal]] = {}
    if not targets:
        return pd.DataFrame(columns=FORECAST_COLUMNS), problems
    aside: dict[tuple[str, str], SetAside] = {}
    for rule in set_aside:
        aside.setdefault((rule.rule.kind, rule.rule.name.key), rule)

    for kind, group in (("USAGE", metrics), ("COST", pools)):
        projections = {}
        for key, series in group.items():
            rule = chosen.get((kind, key))
            projection = project(series, rule, targets, period)
            if rule is None and (kind, key) in aside:
                _mark_set_aside(projection, aside[(kind, key)])
            problems += projection.problems
            projections[key] = projection
        for target in targets:
            for key in sorted(group):
                series, projection = group[key], projections[key]
                value = _show(kind, projection.values[target], minor)
                plan = _show(kind, series.plan.get(target), minor)
                shown.setdefault((kind, key), {})[target] = value
                rows.append(
                    {
                        "Period": target,
                        "Kind": kind,
                        "Name": series.name,
                        "Plan": plan,
                        "Actual": _show(kind, series.actual.get(target), minor),
                        "Forecast": value,
                        "Adjustment": None if plan is None else value - plan,
                        "Method": projection.method_for(target),
                    }
                )
    for (kind, key), rule in aside.items():
        if key not in (metrics if kind == "USAGE" else pools):
            # A metric or pool no sheet has (the rule's mistake): nothing to forecast.
            rows.append(
                dict.fromkeys(FORECAST_COLUMNS)
                | {"Period": targets[0], "Kind": kind, "Name": rule.rule.name.text}
                | {"Method": _not_computed(rule)}
            )
    # Order: period, then USAGE before COST, then name.
    kind_order = {"USAGE": 0, "COST": 1}
    rows.sort(key=lambda r: (r["Period"], kind_order[r["Kind"]]))
    rate_rows, rate_problems = break_even_rates(
        BreakEvenInputs(
            book=book,
            charges=charges,
            recovery=recovery,
            period=period,
            targets=targets,
            shown=shown,
            metrics=metrics,
            pools=pools,
            bills=bills,
            flows=flows,
            year_charges=year_charges,
        )
    )
    problems += rate_problems
    frame = pd.DataFrame(rows + rate_rows, columns=FORECAST_COLUMNS, dtype=object)
    return frame, problems


# --- break-even rates ---------------------------------------------------------


def over_under_to_date(recovery: pd.DataFrame | None, period: str, start_month: int) -> dict:
    """Pool key -> cumulative OverUnder (Recovered − Cost) over the fiscal year to date."""
    totals: dict[str, Decimal] = {}
    if recovery is None or len(recovery) == 0:
        return totals
    ytd = set(fiscal_periods_to_date(period, start_month))
    for pool, p, amount in zip(
        recovery["Pool"], recovery["Period"], recovery["OverUnder"], strict=True
    ):
        amount = exact_decimal(amount)
        if p in ytd and amount is not None:
            key = name_key(str(pool))
            totals[key] = totals.get(key, Decimal(0)) + amount
    return totals


def net_received(
    flows: pd.DataFrame | None,
    pool_key: str,
    period: str,
    start_month: int,
    remaining: int,
    minor_unit: int = 2,
) -> Decimal:
    """What the pool will net from other pools' allocations over the rest of the year.

    Received − AllocatedOnward per period, averaged over the last 3 periods of
    the fiscal year to date, times the number of remaining periods (rounded to
    the cent at the end).
    """
    if flows is None or len(flows) == 0 or "Received" not in flows:
        return Decimal(0)
    ytd = set(fiscal_periods_to_date(period, start_month))
    per_period: dict[str, Fraction] = {}
    for row in flows.itertuples(index=False):
        if row.Period in ytd and name_key(str(row.Pool)) == pool_key:
            onward = exact_fraction(getattr(row, "AllocatedOnward", 0)) or 0
            net = (exact_fraction(row.Received) or 0) - onward
            per_period[row.Period] = per_period.get(row.Period, Fraction(0)) + net
    last = [per_period[p] for p in sorted(per_period)[-DEFAULT_RUN_RATE:]]
    if not last:
        return Decimal(0)
    return round_to_places(sum(last, Fraction(0)) / len(last) * remaining, minor_unit)


def current_rate(charge: Charge, book: Book, period: str) -> Decimal | None:
    """The single rate a CHARGE bills at now: AT n, or a flat RATE CARD; None when tiered.

    The card in force is the one the charge bills by (`costloop.engine.chargeback.rates`).
    """
    if isinstance(charge.pricing, FixedRate):
        return charge.pricing.rate
    if not isinstance(charge.pricing, RateCard):
        return None
    schedule = RateCards(book.rates).in_force(charge.pool.key, charge.metric.key, period)
    return None if schedule is None else schedule.flat_rate


def billed_rate(bills: pd.DataFrame | None, pool_key: str, metric_key: str) -> Decimal | None:
    """Average rate billed: Σ Amount ÷ Σ Quantity of the pool's lines for the metric."""
    if bills is None or len(bills) == 0:
        return None
    amount, quantity = Fraction(0), Fraction(0)
    for pool, metric, q, a in zip(
        bills["Pool"], bills["Metric"], bills["Quantity"], bills["Amount"], strict=True
    ):
        if not isinstance(metric, str) or name_key(str(pool)) != pool_key:
            continue
        if name_key(metric) != metric_key:
            continue
        q, a = exact_fraction(q), exact_fraction(a)
        if q is None or a is None:
            continue
        quantity += q
        amount += a
    return round_to_places(amount / quantity, RATE_PLACES) if quantity else None


def _money_text(value: Decimal) -> str:
    return f"{value:,}"


def billed_share(
    year_charges: pd.DataFrame | None, series: Series | None, pool_key: str, ytd: list[str]
) -> Fraction | None:
    """The part of a metric's usage to date that the pool actually billed, or None if all.

    A CHARGE with a WHERE, or usage by non-billable departments, bills only part
    of the metric; the rest of the year is expected to split the same way.
    """
    if year_charges is None or series is None or len(year_charges) == 0:
        return None
    used = sum((v for p, v in series.actual.items() if p in ytd), Fraction(0))
    lines = year_charges[year_charges["Period"].isin(ytd)]
    pools = lines["Pool"].astype(str).map(name_key)
    metrics = lines["Metric"].astype(str).map(name_key)
    mine = lines[(pools == pool_key) & (metrics == name_key(series.name))]
    billed = sum((exact_fraction(q) or Fraction(0) for q in mine["Quantity"]), Fraction(0))
    if used <= 0 or billed == used:
        return None
    return billed / used


@dataclass(frozen=True)
class BreakEvenInputs:
    """What the RATE rows are worked out from: the run, and the forecast as shown."""

    book: Book
    charges: list[Charge]
    recovery: pd.DataFrame | None
    """The Recovery sheet: its OverUnder to date is carried into the rate."""
    period: str
    """The billed period."""
    targets: list[str]
    """The remaining periods of the fiscal year (at least one)."""
    shown: dict[tuple[str, str], dict[str, Decimal]]
    """(kind, name key) -> {period: forecast as shown on the sheet}: the break-even
    redoes the sheet's own rounded figures."""
    metrics: dict[str, Series]
    pools: dict[str, Series]
    bills: pd.DataFrame | None = None
    """The billed period's Bills (the RATE row's Actual: the rate billed)."""
    flows: pd.DataFrame | None = None
    """The pool flows (what a pool nets from other pools' allocations)."""
    year_charges: pd.DataFrame | None = None
    """The fiscal year's CHARGE bill lines to date (the billed share of the usage)."""

    @property
    def fiscal_start(self) -> int:
        return self.book.settings.fiscal_year_start

    @property
    def span_text(self) -> str:
        """``2026-04 TO 2026-06``: the remaining periods, as the RATE rows' Method says them."""
        targets = self.targets
        return f"{targets[0]} TO {targets[-1]}" if len(targets) > 1 else targets[0]


def break_even_rates(inputs: BreakEvenInputs) -> tuple[list[dict], list[Problem]]:
    """A RATE row per CHARGE-billed pool: the rate that recovers the rest of the year's cost."""
    rows, problems = [], []
    over_under = over_under_to_date(inputs.recovery, inputs.period, inputs.fiscal_start)
    by_pool: dict[str, list[Charge]] = {}
    for charge in inputs.charges:
        by_pool.setdefault(charge.pool.key, []).append(charge)
    for pool_key, pool_charges in by_pool.items():
        row, problem = _rate_row(inputs, pool_key, pool_charges, over_under.get(pool_key))
        rows.append(row)
        if problem is not None:
            problems.append(problem)
    return rows, problems


def _rate_row(
    inputs: BreakEvenInputs, pool_key: str, charges: list[Charge], carried: Decimal | None
) -> tuple[dict, Problem | None]:
    """One pool's RATE row, and the warning it comes with (if any)."""
    first = charges[0]
    pools, metrics = inputs.pools, inputs.metrics
    pool_name = pools[pool_key].name if pool_key in pools else first.pool.text
    row = {"Period": inputs.targets[0], "Kind": "RATE", "Name": pool_name, "Actual": None}
    metric_keys = list(dict.fromkeys(c.metric.key for c in charges))
    if len(metric_keys) > 1:
        return _several_metrics(row, charges, pool_name)
    metric_key = metric_keys[0]
    metric_name = metrics[metric_key].name if metric_key in metrics else first.metric.text
    cost, received = _remaining_cost(inputs, pool_key)
    volume, billed_part = _remaining_volume(inputs, pool_key, metric_key)
    carried = Decimal(0) if carried is None else carried  # 0.00 as Recovery shows it
    rates = {current_rate(c, inputs.book, inputs.period) for c in charges}
    current = rates.pop() if len(rates) == 1 else None
    row["Plan"] = current
    row["Actual"] = billed_rate(inputs.bills, pool_key, metric_key)
    extra = f" INCL. NET RECEIVED {_money_text(received)}" if received else ""
    formula = (
        f'BREAK-EVEN PER "{metric_name}" {inputs.span_text}: (COST {_money_text(cost)}{extra} '
        f"− OVER/UNDER TO DATE {_money_text(carried)}) ÷ VOLUME {volume:,}{billed_part}"
    )
    if volume <= 0:
        row.update(Forecast=None, Adjustment=None, Method=f"NOT PROPOSED: {formula}")
        span = inputs.span_text.replace(" TO ", " to ")
        return row, Problem.at_rule(
            first,
            Reason.NO_VOLUME,
            f'no break-even rate for pool "{pool_name}": the forecast usage of '
            f'"{metric_name}" for {span} is zero, so no rate '
            f"can recover its cost of {_money_text(cost)} — check the Usage sheet or add "
            f'a FORECAST USAGE "{metric_name}" rule',
            first.metric.span,
            Severity.WARNING,
        )
    rate = round_to_places((Fraction(cost) - Fraction(carried)) / Fraction(volume), RATE_PLACES)
    problem = None
    method = formula
    if rate < 0:
        # Carried-forward over-recovery exceeds the rest of the year's cost: bill nothing
        # and refund the excess (2 CFR 200 App. V G.4 adjustment), never a negative rate.
        problem = _over_recovered(first, pool_name, cost, carried)
        rate = Decimal(0).scaleb(-RATE_PLACES)
        method = f"{formula}, CLIPPED AT 0"
    row.update(
        Forecast=rate,
        Adjustment=None if current is None else rate - current,
        Method=method,
    )
    return row, problem


def _several_metrics(row: dict, charges: list[Charge], pool_name: str) -> tuple[dict, Problem]:
    """A pool charged on several metrics has no single break-even rate: say so, propose none."""
    first = charges[0]
    names = ", ".join(f'"{c.metric.text}"' for c in charges)
    row.update(Plan=None, Forecast=None, Adjustment=None,
               Method=f"NOT PROPOSED: CHARGED ON SEVERAL METRICS ({names})")  # fmt: skip
    return row, Problem.at_rule(
        first,
        Reason.NO_VOLUME,
        f'pool "{pool_name}" is charged on several metrics ({names}); no single '
        f"break-even rate exists, so none is proposed — set the rates by hand",
        first.pool.span,
        Severity.WARNING,
    )


def _remaining_cost(inputs: BreakEvenInputs, pool_key: str) -> tuple[Decimal, Decimal]:
    """(the pool's forecast cost for the rest of the year incl. what it nets from other
    pools, that net received alone), to the minor unit."""
    minor = inputs.book.settings.minor_unit
    cost = sum(inputs.shown.get(("COST", pool_key), {}).values(), Decimal(0))
    received = net_received(
        inputs.flows, pool_key, inputs.period, inputs.fiscal_start, len(inputs.targets), minor
    )
    return (cost + received).quantize(Decimal(1).scaleb(-minor)), received


def _remaining_volume(
    inputs: BreakEvenInputs, pool_key: str, metric_key: str
) -> tuple[Decimal, str]:
    """(the forecast volume the pool will bill, the Method's note when only part of the
    metric's usage is billed)."""
    volume = sum(inputs.shown.get(("USAGE", metric_key), {}).values(), Decimal(0))
    ytd = fiscal_periods_to_date(inputs.period, inputs.fiscal_start)
    share = billed_share(inputs.year_charges, inputs.metrics.get(metric_key), pool_key, ytd)
    if share is None:
        return volume, ""
    volume = round_to_places(Fraction(volume) * share, USAGE_PLACES)
    return volume, f" (BILLED SHARE {round_to_places(share * 100, 1)}% OF USAGE TO DATE)"


def _over_recovered(first: Charge, pool_name: str, cost: Decimal, carried: Decimal) -> Problem:
    excess = carried - cost
    return Problem.at_rule(
        first,
        Reason.OVER_RECOVERY,
        f'pool "{pool_name}" has over-recovered {_money_text(carried)} to date, more '
        f"than its forecast remaining cost of {_money_text(cost)}; the proposed rate "
        f"is 0 and {_money_text(excess)} should be refunded or credited to the "
        f"departments billed",
        first.pool.span,
        Severity.WARNING,
    )
