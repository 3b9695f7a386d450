"""The one rate resolver: which Rates rows price a pool's metric in a period.

Every stage that asks "what rate is in force" asks here — the charge
(`costloop.engine.chargeback.charge`), the Forecast's RATE rows and the
Compliance same-rate test (`costloop.engine.itfm`) — so they cannot disagree.

The rule (docs/contract.md#input-sheets, ``RATE CARD`` in docs/rules-language.md):

1. the rows for the metric (names compared as name keys);
2. the pool's own rows if any row names the pool, else the rows with a blank
   Pool (a pool with rows of its own never falls back to the blank-Pool card);
3. of those, the rows whose EffectiveFrom is the latest not after the period
   (a blank EffectiveFrom is in force from the start).

Those rows are the `Schedule` in force: flat (no row has TierFrom or TierTo;
the first row's rate) or tiered (one `Band` per row, by TierFrom).

The data shape is deliberately plain, for the checks of the Rates sheet too:
`RateRow` is one usable row with its Excel row number, and `RateCards.schedules`
lists every (pool, metric, EffectiveFrom) schedule the sheet holds. This module
resolves; it does not validate (whether tiers are contiguous is the reader's
check, not a reason to bill differently).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

import pandas as pd

from costloop.engine.model.money import to_decimal
from costloop.engine.model.values import is_blank
from costloop.rules.ast import name_key


@dataclass(frozen=True)
class Band:
    """Quantities from ``low`` up to ``high`` (None: no limit) are priced at ``rate``."""

    low: Fraction
    high: Fraction | None
    rate: Decimal


@dataclass(frozen=True)
class RateRow:
    """One Rates row that can price something (it has a Metric and a Rate)."""

    row: int | None
    """Its Excel row on the Rates sheet (None for a frame built without ``_row``)."""
    metric: str
    """Name key of the Metric."""
    pool: str
    """Name key of the Pool; ``""`` for a blank Pool (the card of every pool without its own)."""
    effective: str
    """EffectiveFrom as ``YYYY-MM``; ``""`` when blank (in force from the start)."""
    rate: Decimal
    tier_from: Fraction | None
    tier_to: Fraction | None

    @property
    def is_tier(self) -> bool:
        return self.tier_from is not None or self.tier_to is not None


@dataclass(frozen=True)
class Schedule:
    """The rows of one pool's (or the blank-Pool) card for one metric from one EffectiveFrom."""

    metric: str
    pool: str
    """The pool key the rows name; ``""`` when the blank-Pool card applies."""
    effective: str
    rows: tuple[RateRow, ...]
    """In sheet order."""

    @property
    def tiered(self) -> bool:
        """Graduated: some row has a TierFrom or TierTo."""
        return any(r.is_tier for r in self.rows)

    @property
    def flat_rate(self) -> Decimal | None:
        """The one rate of a flat schedule (its first row's, as billed); None when tiered."""
        return None if self.tiered else self.rows[0].rate

    @property
    def bands(self) -> list[Band]:
        """The price bands: one unlimited band when flat, else one per tier row by TierFrom."""
        if not self.tiered:
            return [Band(Fraction(0), None, self.rows[0].rate)]
        bands = [
            Band(Fraction(0) if r.tier_from is None else r.tier_from, r.tier_to, r.rate)
            for r in self.rows
        ]
        return sorted(bands, key=lambda b: b.low)


def _effective(value: object) -> str:
    """EffectiveFrom as ``YYYY-MM`` ('' when blank: in force from the start)."""
    if is_blank(value):
        return ""
    if hasattr(value, "year") and hasattr(value, "month"):
        return f"{value.year:04d}-{value.month:02d}"
    text = str(value).strip()
    year, _, month = text[:7].partition("-")
    return f"{year}-{int(month):02d}" if month.isdigit() else text[:7]


def _limit(value: object) -> Fraction | None:
    return None if is_blank(value) else Fraction(to_decimal(value))


def rate_rows(rates: pd.DataFrame | None) -> list[RateRow]:
    """The Rates frame's usable rows (a Metric and a Rate), in sheet order."""
    if rates is None or rates.empty or "Metric" not in rates or "Rate" not in rates:
        return []

    def column(name: str) -> list:
        return list(rates[name]) if name in rates else [None] * len(rates)

    rows = []
    for row, metric, pool, effective, rate, low, high in zip(
        column("_row"),
        column("Metric"),
        column("Pool"),
        column("EffectiveFrom"),
        column("Rate"),
        column("TierFrom"),
        column("TierTo"),
        strict=True,
    ):
        if is_blank(metric) or is_blank(rate):
            continue
        rows.append(
            RateRow(
                row=None if is_blank(row) else int(row),
                metric=name_key(str(metric)),
                pool="" if is_blank(pool) else name_key(str(pool)),
                effective=_effective(effective),
                rate=to_decimal(rate),
                tier_from=_limit(low),
                tier_to=_limit(high),
            )
        )
    return rows


class RateCards:
    """The Rates sheet read once, answering "which schedule is in force" for any stage."""

    def __init__(self, rates: pd.DataFrame | None):
        self.rows = rate_rows(rates)
        self._by_metric: dict[str, list[RateRow]] = {}
        for row in self.rows:
            self._by_metric.setdefault(row.metric, []).append(row)

    def card(self, pool: str, metric: str) -> list[RateRow]:
        """The rows that make up ``pool``'s card for ``metric``, every EffectiveFrom (keys)."""
        rows = self._by_metric.get(metric, [])
        return [r for r in rows if r.pool == pool] or [r for r in rows if r.pool == ""]

    def in_force(self, pool: str, metric: str, period: str) -> Schedule | None:
        """The schedule pricing ``metric`` for ``pool`` in ``period`` (keys); None: no rate."""
        rows = self.card(pool, metric)
        dates = [r.effective for r in rows if r.effective <= period]
        if not dates:
            return None
        latest = max(dates)
        chosen = tuple(r for r in rows if r.effective == latest)
        return Schedule(metric, chosen[0].pool, latest, chosen)

    def schedules(self) -> list[Schedule]:
        """Every (pool, metric, EffectiveFrom) schedule on the sheet, in order of first row."""
        grouped: dict[tuple[str, str, str], list[RateRow]] = {}
        for row in self.rows:
            grouped.setdefault((row.pool, row.metric, row.effective), []).append(row)
        return [Schedule(m, p, e, tuple(rows)) for (p, m, e), rows in grouped.items()]

    def tiered_periods(self, pool: str, metric: str, periods: Iterable[str]) -> set[str]:
        """Those of ``periods`` in which the schedule in force is tiered."""
        found = set()
        for period in periods:
            schedule = self.in_force(pool, metric, period)
            if schedule is not None and schedule.tiered:
                found.add(period)
        return found
