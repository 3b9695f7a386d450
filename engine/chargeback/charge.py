"""CHARGE: bill each billable department its usage at a rate (docs/rules-language.md).

A flat rate gives one bill line per department: quantity x rate, rounded
half-up to the minor unit. A graduated price (``TIERED`` in the rule, or tier
rows on the Rates sheet) gives one line per band the department's quantity
reaches, each rounded half-up: ``FIRST 1000 AT 0.05, NEXT 9000 AT 0.04,
ABOVE AT 0.03`` bills 12,000 as 1,000 @ 0.05 + 9,000 @ 0.04 + 2,000 @ 0.03.
A net credit (a department's usage adding up below zero, as FOCUS refunds and
credits can) is one line below zero at the first band's rate: a credit line,
which the Journal posts with its sides swapped.

``RATE CARD`` prices by the schedule `costloop.engine.chargeback.rates` finds in
force: rows for the metric, for the charged pool if any row names it (else rows
with a blank Pool), whose EffectiveFrom is the latest not after the period (a
blank EffectiveFrom is in force from the start).
"""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import numpy as np

from costloop.engine.chargeback.drivers import Drivers
from costloop.engine.chargeback.rates import Band
from costloop.engine.model.money import charge_cents_array, fits_int64
from costloop.engine.model.result import BillLines, Quantities
from costloop.problems import Problem, Reason, Severity
from costloop.rules.ast import Charge, FixedRate, RateCard, Span, Tiered


def tier_bands(tiered: Tiered) -> list[Band]:
    """``FIRST 1000 AT r1, NEXT 9000 AT r2, ABOVE AT r3`` -> [0,1000) [1000,10000) [10000,∞)."""
    bands, low = [], Fraction(0)
    for tier in tiered.tiers:
        if tier.width is None:
            bands.append(Band(low, None, tier.rate))
            break
        high = low + Fraction(tier.width)
        bands.append(Band(low, high, tier.rate))
        low = high
    return bands


def _in_units(bands: list[Band], scale: int) -> tuple[list[tuple[int, int | None, Decimal]], int]:
    """Band limits as integer units, at a scale fine enough for both usage and limits."""
    fine = scale
    for band in bands:
        for limit in (band.low, band.high):
            while limit is not None and (limit * 10**fine).denominator != 1:
                fine += 1
    unit = 10**fine
    limits = [
        (int(b.low * unit), None if b.high is None else int(b.high * unit), b.rate) for b in bands
    ]
    return limits, fine


def bill_charge(
    drivers: Drivers, rule: Charge, period: str
) -> tuple[BillLines | None, list[Problem]]:
    """Bill lines of one CHARGE rule in one period (None: nobody to bill)."""
    problems: list[Problem] = []
    on_deps, on_usage, unknown = drivers.split_conditions(rule.where_clause)
    for cond in unknown:
        problems.append(
            Problem(
                Reason.UNKNOWN_COLUMN,
                Severity.ERROR,
                rule.where,
                f'WHERE names "{cond.column.text}", which is a column of neither Departments '
                f"nor Usage; use one of their headers",
                text=rule.text,
                start=cond.column.span.start,
                end=cond.column.span.end,
                rule_id=rule.rule_id,
            )
        )
    positions = drivers.department_positions(on_deps)
    used = drivers.department_usage(rule.metric.key, on_usage, period, positions)
    problems += _pool_usage_not_billed(drivers, rule, on_usage, period)
    billed = used != 0
    if not billed.any():
        if rule.where_clause and not unknown:
            problems += _where_selects_nothing(drivers, rule, period)
        return None, problems
    pricing = rule.pricing
    if isinstance(pricing, FixedRate):
        bands = [Band(Fraction(0), None, pricing.rate)]
    elif isinstance(pricing, Tiered):
        bands = tier_bands(pricing)
    elif isinstance(pricing, RateCard):
        schedule = drivers.rate_cards.in_force(rule.pool.key, rule.metric.key, period)
        if schedule is None:
            metric = drivers.metric_names.get(rule.metric.key, rule.metric.text)
            problems.append(
                Problem(
                    Reason.NO_RATE,
                    Severity.ERROR,
                    rule.where,
                    f'no rate for "{metric}" in force in {period} on the Rates sheet; add a Rates '
                    f'row with Metric "{metric}" and an EffectiveFrom on or before {period}',
                    text=rule.text,
                    start=pricing.span.start,
                    end=pricing.span.end,
                    rule_id=rule.rule_id,
                )
            )
            return None, problems
        bands = schedule.bands
    else:  # pragma: no cover - the AST has no other pricing
        raise TypeError(pricing)

    metric = drivers.metric_names.get(rule.metric.key, rule.metric.text)
    lines = _band_lines(drivers, positions[billed], used[billed], bands)
    return BillLines(rule.pool.key, rule.rule_id, metric, drivers.department_keys, *lines), problems


def _band_lines(
    drivers: Drivers, positions: np.ndarray, used: np.ndarray, bands: list[Band]
) -> tuple[np.ndarray, np.ndarray, Quantities, np.ndarray, np.ndarray]:
    """(department, cents, quantity, rate, band) of each line: one per band a quantity reaches.

    All departments at once, band by band, in integer units; each line is
    quantity x rate rounded half-up, exactly as `charge_units_cents`.
    """
    limits, fine = _in_units(bands, drivers.usage_scale)
    up = 10 ** (fine - drivers.usage_scale)
    units = used * up if _fits(used, up, limits) else used.astype(object) * up
    minor = drivers.minor_unit
    at, cents, parts, rates, tiers = [], [], [], [], []
    credit = units < 0
    for n, (low, high, rate) in enumerate(limits):
        part = (units if high is None else np.minimum(units, high)) - low
        reached = part > 0
        if n == 0 and credit.any():
            # A net credit (FOCUS refunds and credits larger than the period's charges) is
            # one line below zero at the first band's rate, never dropped: bands are
            # reached by positive quantities only.
            part = np.where(credit, units, part)
            reached = reached | credit
        if not reached.any():
            continue
        part = part[reached]
        at.append(positions[reached])
        parts.append(part)
        cents.append(charge_cents_array(part, fine, rate, minor))
        rates.append(np.full(len(part), rate, dtype=object))
        tiers.append(np.full(len(part), n, dtype=np.int64))
    if not at:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, Quantities(empty, fine), np.zeros(0, dtype=object), empty
    at, tiers = np.concatenate(at), np.concatenate(tiers)
    # Department by department, bands in price order (as a bill reads).
    order = np.argsort(at, kind="stable")
    return (
        at[order],
        _joined(cents)[order],
        Quantities(_joined(parts)[order], fine),
        np.concatenate(rates)[order],
        tiers[order],
    )


def _fits(used: np.ndarray, up: int, limits: list[tuple[int, int | None, Decimal]]) -> bool:
    """Whether usage in fine units and the band limits all fit int64 comfortably."""
    bounds = [abs(x) for low, high, _ in limits for x in (low, high) if x is not None]
    return fits_int64(used, up) and all(b < 2**62 for b in bounds)


def _joined(arrays: list[np.ndarray]) -> np.ndarray:
    """Concatenated, keeping Python ints (object) if any part needed them."""
    if any(a.dtype == object for a in arrays):
        return np.concatenate([a.astype(object) for a in arrays])
    return np.concatenate(arrays)


def _where_selects_nothing(drivers: Drivers, rule: Charge, period: str) -> list[Problem]:
    """A CHARGE whose WHERE leaves out every usage row it could bill: a warning, not silence.

    Without it a typo (``WHERE Fund = "Genral"``) bills nothing and the run says OK.
    Only when there was usage to bill: a metric with no usage this period is not the
    WHERE's doing.
    """
    everyone = drivers.usage_by_receiver(rule.metric.key, [], period)
    if not any(everyone.get(k) for k in drivers.department_receivers([])):
        return []
    rows = drivers.usage_rows(rule.metric.key, period)
    metric = drivers.metric_names.get(rule.metric.key, rule.metric.text)
    conditions = rule.where_clause
    span = Span(conditions[0].span.start, conditions[-1].span.end)
    return [
        Problem.at_rule(
            rule,
            Reason.WHERE_NO_MATCH,
            f'WHERE matches none of the {rows} "{metric}" usage row{"s" if rows != 1 else ""} '
            f"of {period}, so this rule bills nothing; check the WHERE values",
            span,
            Severity.WARNING,
        )
    ]


def _pool_usage_not_billed(
    drivers: Drivers, rule: Charge, on_usage: list, period: str
) -> list[Problem]:
    """Usage booked to a cost pool (Settings UntaggedDepartment can route FOCUS rows to
    one): a CHARGE bills departments, so it would be left out without a word."""
    found = drivers.usage_by_receiver(rule.metric.key, on_usage, period)
    pools = [(key, units) for key, units in found.items() if key in drivers.pool_names and units]
    if not pools:
        return []
    metric = drivers.metric_names.get(rule.metric.key, rule.metric.text)
    names = ", ".join(f'"{drivers.pool_names[key]}"' for key, _ in sorted(pools))
    return [
        Problem.at_rule(
            rule,
            Reason.UNALLOCATED,
            f'"{metric}" usage of {period} is booked to the cost pool {names}, which a CHARGE '
            "does not bill (it bills departments); spread the pool's share with ALLOCATE … "
            "BY USAGE, or book that usage to a department",
            rule.metric.span,
            Severity.WARNING,
        )
    ]
