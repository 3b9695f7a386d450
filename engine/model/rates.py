"""The Rates sheet's rows as one type, for the rate resolver and the schedule check alike.

The chargeback resolves which rows are in force (`costloop.engine.chargeback.rates`) and
the reader checks them as schedules (`costloop.engine.read.rates`); both read the same
rows through `rate_rows`, so they can never disagree on what a row says.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import pandas as pd

from costloop.engine.model.money import to_decimal
from costloop.engine.model.values import is_blank
from costloop.rules.ast import name_key


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
    tier_from: Decimal | None
    """TierFrom as typed (None: blank)."""
    tier_to: Decimal | None
    """TierTo as typed (None: blank, no upper limit)."""
    metric_text: str = ""
    """The Metric as typed, for messages."""
    pool_text: str = ""
    """The Pool as typed ("" when blank), for messages."""

    @property
    def is_tier(self) -> bool:
        return self.tier_from is not None or self.tier_to is not None

    @property
    def start(self) -> Decimal:
        """Where the band starts: a blank TierFrom is 0, as billing reads it."""
        return Decimal(0) if self.tier_from is None else self.tier_from


def effective_period(value: object) -> str:
    """EffectiveFrom as ``YYYY-MM`` ('' when blank: in force from the start)."""
    if is_blank(value):
        return ""
    if hasattr(value, "year") and hasattr(value, "month"):
        return f"{value.year:04d}-{value.month:02d}"
    text = str(value).strip()
    year, _, month = text[:7].partition("-")
    return f"{year}-{int(month):02d}" if month.isdigit() else text[:7]


def _limit(value: object) -> Decimal | None:
    return None if is_blank(value) else to_decimal(value)


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
        pool_text = "" if is_blank(pool) else str(pool).strip()
        rows.append(
            RateRow(
                row=None if is_blank(row) else int(row),
                metric=name_key(str(metric)),
                pool=name_key(pool_text) if pool_text else "",
                effective=effective_period(effective),
                rate=to_decimal(rate),
                tier_from=_limit(low),
                tier_to=_limit(high),
                metric_text=str(metric).strip(),
                pool_text=pool_text,
            )
        )
    return rows
