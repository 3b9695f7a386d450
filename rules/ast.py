"""The typed rule AST: what a statement in a `Rules` cell means.

Every node is a frozen dataclass. Every statement knows its cell (``Rules!B7``),
its rule ID and its text; every name and column knows its character span in
that text, so later stages (static checks, the engine) can point a finance user
at the exact character. Names are kept as written (trimmed); comparisons use
``Name.key`` (case-folded), per docs/contract.md#general-rules-for-input-sheets.

This module is the contract between `costloop.rules` and `costloop.engine`:
add fields freely, never rename or remove one.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal


@dataclass(frozen=True)
class Span:
    """0-based, end-exclusive character offsets into the rule text."""

    start: int
    end: int


@functools.lru_cache(maxsize=1 << 16)
def name_key(text: str) -> str:
    """How names are compared: case-insensitive after trimming (docs/contract.md).

    Cached: a workbook has few distinct names but the engine compares them once
    per usage row and bill line.
    """
    return " ".join(text.split()).casefold()


@dataclass(frozen=True)
class Name:
    """A quoted name: a pool, department, metric or fund."""

    text: str
    span: Span

    @property
    def key(self) -> str:
        return name_key(self.text)


@dataclass(frozen=True)
class Column:
    """A bare column name: a `Departments` column (driver, WHERE) or a `Usage` column (WHERE)."""

    text: str
    span: Span

    @property
    def key(self) -> str:
        return name_key(self.text)


Value = str | Decimal
"""A WHERE value: a quoted string or a number."""

Operator = Literal["=", "<>", "<", "<=", ">", ">=", "IN"]


@dataclass(frozen=True)
class Condition:
    """``column op value`` or ``column IN (v1, v2)``; for ``IN`` ``values`` has them all."""

    column: Column
    op: Operator
    values: tuple[Value, ...]
    span: Span


# --- receivers -------------------------------------------------------------


@dataclass(frozen=True)
class Receivers:
    """Who receives an ALLOCATE.

    ``departments``: departments receive. ``pools``: pools receive;
    ``pool_names`` empty with ``pools`` true means every other pool.
    """

    departments: bool
    pools: bool
    pool_names: tuple[Name, ...] = ()
    span: Span | None = None


# --- drivers ---------------------------------------------------------------


@dataclass(frozen=True)
class UsageDriver:
    """``BY USAGE "metric"``: shares are each receiver's quantity of the metric."""

    metric: Name
    span: Span


@dataclass(frozen=True)
class ColumnDriver:
    """``BY Headcount``: shares are a numeric column of `Departments`."""

    column: Column
    span: Span


@dataclass(frozen=True)
class Share:
    """``60% "ADM"``. ``percent`` is the number written (60, not 0.6)."""

    percent: Decimal
    name: Name
    span: Span


@dataclass(frozen=True)
class SharesDriver:
    """``BY 60% "ADM", 30% "FIN", 10% "HR"``: fixed shares adding up to 100%."""

    shares: tuple[Share, ...]
    span: Span


@dataclass(frozen=True)
class CostDriver:
    """``BY COST``: shares are the receiving pools' own direct cost (TO POOLS only)."""

    span: Span


@dataclass(frozen=True)
class EvenDriver:
    """``EVENLY``: every receiver the same share."""

    span: Span


Driver = UsageDriver | ColumnDriver | SharesDriver | CostDriver | EvenDriver

IfNoUsage = Literal["FAIL", "EVENLY", "KEEP"]


# --- pricing for CHARGE ----------------------------------------------------


@dataclass(frozen=True)
class FixedRate:
    """``AT 0.12``."""

    rate: Decimal
    span: Span


@dataclass(frozen=True)
class RateCard:
    """``AT RATE CARD``: the `Rates` sheet, latest EffectiveFrom not after the period."""

    span: Span


@dataclass(frozen=True)
class Tier:
    """One band of a graduated price. ``width`` None means ``ABOVE`` (no upper limit)."""

    width: Decimal | None
    rate: Decimal
    span: Span


@dataclass(frozen=True)
class Tiered:
    """``TIERED FIRST 1000 AT 0.05, NEXT 9000 AT 0.04, ABOVE AT 0.03``."""

    tiers: tuple[Tier, ...]
    span: Span


Pricing = FixedRate | RateCard | Tiered


# --- forecast methods ------------------------------------------------------


@dataclass(frozen=True)
class Trend:
    """``BY TREND OVER n PERIODS``: least-squares line over the last n actual periods."""

    periods: int
    span: Span


@dataclass(frozen=True)
class Growth:
    """``BY GROWTH 2% PER PERIOD``. ``percent`` is the number written (2, not 0.02)."""

    percent: Decimal
    span: Span


@dataclass(frozen=True)
class ByPlan:
    """``BY PLAN``: the Budget. (Not `costloop.rules.plan.Plan`, the order rules run in.)"""

    span: Span


@dataclass(frozen=True)
class RunRate:
    """``BY RUN RATE [OVER n PERIODS]``: average of the last n actual periods (default 3)."""

    periods: int
    span: Span


ForecastMethod = Trend | Growth | ByPlan | RunRate


# --- statements ------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Statement:
    """What every statement carries: where it came from."""

    rule_id: str
    where: str
    """The rule's cell, e.g. ``Rules!B7``."""
    text: str
    """The cell's text as read (the spans index into it)."""
    span: Span


@dataclass(frozen=True, kw_only=True)
class Allocate(Statement):
    pool: Name
    receivers: Receivers
    driver: Driver
    where_clause: tuple[Condition, ...] = ()
    if_no_usage: IfNoUsage = "FAIL"
    reciprocal: bool = False

    @property
    def to_pools(self) -> bool:
        return self.receivers.pools

    @property
    def to_departments(self) -> bool:
        return self.receivers.departments


@dataclass(frozen=True, kw_only=True)
class Charge(Statement):
    pool: Name
    metric: Name
    pricing: Pricing
    where_clause: tuple[Condition, ...] = ()


@dataclass(frozen=True, kw_only=True)
class Forecast(Statement):
    kind: Literal["USAGE", "COST"]
    name: Name
    """The metric (USAGE) or pool (COST)."""
    method: ForecastMethod


Rule = Allocate | Charge | Forecast


@dataclass(frozen=True)
class RuleCell:
    """A row of the `Rules` sheet as read from the workbook, before parsing."""

    rule_id: str
    where: str
    """The Rule cell, e.g. ``Rules!B7``."""
    text: str
    enabled: bool = True
    note: str = ""
    id_where: str = ""
    """The ID cell, e.g. ``Rules!A7`` (for duplicate-ID messages)."""
