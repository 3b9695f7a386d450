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
`RateRow` (engine/model/rates.py, shared with the reader's schedule check) is one usable
row with its Excel row number, and `RateCards.schedules`
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

from costloop.engine.model.rates import RateRow, rate_rows


@dataclass(frozen=True)
class Band:
    """Quantities from ``low`` up to ``high`` (None: no limit) are priced at ``rate``."""

    low: Fraction
    high: Fraction | None
    rate: Decimal


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
            Band(
                Fraction(r.start),
                None if r.tier_to is None else Fraction(r.tier_to),
                r.rate,
            )
            for r in self.rows
        ]
        return sorted(bands, key=lambda b: b.low)


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
