"""CHARGE: bill each billable department its usage at a rate (SPEC §3).

A flat rate gives one bill line per department: quantity x rate, rounded
half-up to the minor unit. A graduated price (``TIERED`` in the rule, or tier
rows on the Rates sheet) gives one line per band the department's quantity
reaches, each rounded half-up: ``FIRST 1000 AT 0.05, NEXT 9000 AT 0.04,
ABOVE AT 0.03`` bills 12,000 as 1,000 @ 0.05 + 9,000 @ 0.04 + 2,000 @ 0.03.

``RATE CARD`` reads `Rates`: rows for the metric, for the charged pool if any
row names it (else rows with a blank Pool), whose EffectiveFrom is the latest
not after the period (a blank EffectiveFrom is in force from the start).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

import pandas as pd
from costloop.engine.drivers import Drivers
from costloop.engine.money import charge_cents, to_decimal, units_to_decimal
from costloop.engine.result import BillLine
from costloop.rules.ast import Charge, FixedRate, RateCard, Tiered, name_key

from costloop.problems import Problem, Reason, Severity


@dataclass(frozen=True)
class Band:
    """Quantities from ``low`` up to ``high`` (None: no limit) are priced at ``rate``."""

    low: Fraction
    high: Fraction | None
    rate: Decimal


def _blank(value: object) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    if isinstance(value, float) and value != value:
        return True
    return isinstance(value, str) and not value.strip()


def _effective(value: object) -> str:
    """EffectiveFrom as ``YYYY-MM`` ('' when blank: in force from the start)."""
    if _blank(value):
        return ""
    if hasattr(value, "year") and hasattr(value, "month"):
        return f"{value.year:04d}-{value.month:02d}"
    text = str(value).strip()
    year, _, month = text[:7].partition("-")
    return f"{year}-{int(month):02d}" if month.isdigit() else text[:7]


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


def rate_card(drivers: Drivers, rule: Charge, period: str) -> list[Band] | None:
    """The Rates rows in force for the rule's metric and pool in ``period`` (None: no rate)."""
    rates = drivers.book.rates
    if rates is None or rates.empty or "Metric" not in rates:
        return None
    metric = rates["Metric"].map(lambda m: name_key(str(m)) if not _blank(m) else "")
    rows = rates[metric == rule.metric.key]
    if "Pool" in rows:
        pools = rows["Pool"].map(lambda p: "" if _blank(p) else name_key(str(p)))
        own = rows[pools == rule.pool.key]
        rows = own if not own.empty else rows[pools == ""]
    if rows.empty:
        return None
    effective = (
        rows["EffectiveFrom"].map(_effective)
        if "EffectiveFrom" in rows
        else pd.Series([""] * len(rows), index=rows.index)
    )
    in_force = effective[effective <= period]
    if in_force.empty:
        return None
    rows = rows[effective == in_force.max()]
    has_tiers = any(
        not _blank(rows[c].iat[i])
        for c in ("TierFrom", "TierTo")
        if c in rows
        for i in range(len(rows))
    )
    if not has_tiers:
        return [Band(Fraction(0), None, to_decimal(rows["Rate"].iat[0]))]
    bands = []
    for i in range(len(rows)):
        low = rows["TierFrom"].iat[i] if "TierFrom" in rows else None
        high = rows["TierTo"].iat[i] if "TierTo" in rows else None
        bands.append(
            Band(
                Fraction(0) if _blank(low) else Fraction(to_decimal(low)),
                None if _blank(high) else Fraction(to_decimal(high)),
                to_decimal(rows["Rate"].iat[i]),
            )
        )
    return sorted(bands, key=lambda b: b.low)


def bill_charge(
    drivers: Drivers, rule: Charge, period: str
) -> tuple[list[BillLine], list[Problem]]:
    """Bill lines of one CHARGE rule in one period."""
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
    used = drivers.usage_by_receiver(rule.metric.key, on_usage, period)
    billed = [k for k in drivers.department_receivers(on_deps) if used.get(k)]
    if not billed:
        return [], problems
    pricing = rule.pricing
    if isinstance(pricing, FixedRate):
        bands = [Band(Fraction(0), None, pricing.rate)]
    elif isinstance(pricing, Tiered):
        bands = tier_bands(pricing)
    elif isinstance(pricing, RateCard):
        card = rate_card(drivers, rule, period)
        if card is None:
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
            return [], problems
        bands = card
    else:  # pragma: no cover - the AST has no other pricing
        raise TypeError(pricing)

    metric = drivers.metric_names.get(rule.metric.key, rule.metric.text)
    scale, minor = drivers.usage_scale, drivers.minor_unit
    lines: list[BillLine] = []
    for key in billed:
        units = used[key]
        quantity = Fraction(units, 10**scale)
        for n, band in enumerate(bands):
            top = quantity if band.high is None else min(quantity, band.high)
            part = top - band.low
            if part <= 0:
                continue
            shown = (
                units_to_decimal(units, scale)
                if len(bands) == 1
                else Decimal(part.numerator) / Decimal(part.denominator)
            )
            lines.append(
                BillLine(
                    key,
                    rule.pool.key,
                    metric,
                    shown,
                    band.rate,
                    charge_cents(part, band.rate, minor),
                    rule.rule_id,
                    tier=n,
                )
            )
    return lines, problems
