"""The price band and rate date of each tier line on a bill.

A graduated charge (``TIERED FIRST … NEXT … ABOVE`` in the rule, or tier rows on
the Rates sheet) bills one line per band a department's quantity reaches, and a
department reading its bill needs to see which band each line is ("0 to
10,000", "10,000 up") and, for a Rates-sheet card, the EffectiveFrom of the
schedule that priced it. The Bills sheet does not carry the band, so it is
found again here from the same bands the charge used (`tier_bands` and the one
rate resolver, `RateCards.in_force`), never from a second reading of the rule.

How a line is matched to its band: the charge writes a department's lines of a
rule in band order, one per band its quantity reaches, and bands are reached
from the bottom up — so the k-th line of a (department, rule, line type, charge
period) run is the k-th band of positive width. A line whose Rate is not that
band's rate is left without a band rather than given a guessed one.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from fractions import Fraction

import pandas as pd

from costloop.engine.chargeback.charge import tier_bands
from costloop.engine.chargeback.rates import Band, RateCards
from costloop.rules.ast import Charge, RateCard, Statement, Tiered


def _number(value: Fraction) -> str:
    """A band limit as a bill shows it: ``10,000``, ``2.5``."""
    if value.denominator == 1:
        return f"{value.numerator:,}"
    exact = Decimal(value.numerator) / Decimal(value.denominator)
    return format(exact.normalize(), ",f")


def band_text(band: Band) -> str:
    """``0 to 10,000`` for a band with a limit, ``10,000 up`` for the last one."""
    if band.high is None:
        return f"{_number(band.low)} up"
    return f"{_number(band.low)} to {_number(band.high)}"


def _bands(rule: Statement | None, period: str, cards: RateCards) -> tuple[list[Band], str | None]:
    """The bands a tiered CHARGE priced ``period`` with and its rate date; ([], None) if flat."""
    if not isinstance(rule, Charge):
        return [], None
    pricing = rule.pricing
    if isinstance(pricing, Tiered):
        bands, rate_date = tier_bands(pricing), None
    elif isinstance(pricing, RateCard):
        schedule = cards.in_force(rule.pool.key, rule.metric.key, period)
        if schedule is None or not schedule.tiered:
            return [], None
        # A blank EffectiveFrom is in force from the start: there is no date to show.
        bands, rate_date = schedule.bands, schedule.effective or None
    else:
        return [], None
    # A band no quantity can reach (no width) never gets a line.
    reachable = [b for b in bands if b.high is None or b.high > b.low]
    if len(reachable) < 2:
        return [], None
    return reachable, rate_date


def tier_lines(
    rates: pd.DataFrame | None, rules: Mapping[str, Statement], lines: pd.DataFrame
) -> tuple[list[str | None], list[str | None]]:
    """``Band`` and ``Rate Date`` of each of ``lines`` (Bills rows); None for untiered lines.

    ``rates`` is the Book's Rates sheet; ``lines`` are Bills rows in the sheet's order
    (department, pool, rule, band); ``rules`` maps Rule ID to its parsed statement.
    """
    cards = RateCards(rates)
    resolved: dict[tuple[str, str], tuple[list[Band], str | None]] = {}
    charge_periods = lines["Charge Period"] if "Charge Period" in lines else lines["Period"]
    bands_out: list[str | None] = []
    dates_out: list[str | None] = []
    run: tuple | None = None
    position = 0
    for dep, rule_id, kind, period, rate in zip(
        lines["Department"],
        lines["Rule"],
        lines["Line Type"],
        charge_periods,
        lines["Rate"],
        strict=True,
    ):
        period = str(period)
        key = (dep, rule_id, kind, period)
        position = position + 1 if key == run else 0
        run = key
        if (rule_id, period) not in resolved:
            resolved[rule_id, period] = _bands(rules.get(rule_id), period, cards)
        bands, rate_date = resolved[rule_id, period]
        band = bands[position] if position < len(bands) else None
        if band is None or rate is None or pd.isna(rate) or Decimal(str(rate)) != band.rate:
            bands_out.append(None)
            dates_out.append(None)
            continue
        bands_out.append(band_text(band))
        dates_out.append(rate_date)
    return bands_out, dates_out
