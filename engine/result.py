"""What a run produces: the records of one period, and the Result of the billed period.

Inside a period the engine keeps plain records in integer minor units
(`BillLine`, `Transfer`, `Spread`); `Result` holds the output frames
(docs/contract.md#output-sheets), with money as exact Decimal at the
currency's minor unit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

import pandas as pd

from costloop.problems import Problem, has_errors

BILL_COLUMNS = [
    "Period",
    "Department",
    "Name",
    "Pool",
    "Metric",
    "Quantity",
    "Rate",
    "Amount",
    "Rule",
]
JOURNAL_COLUMNS = [
    "Entry",
    "Period",
    "Fund",
    "Account",
    "Department",
    "Pool",
    "Debit",
    "Credit",
    "Memo",
    "Rule",
]
RECOVERY_COLUMNS = [
    "Period",
    "Pool",
    "Cost",
    "Recovered",
    "OverUnder",
    "RecoveryPct",
    "Unallocated",
]
POOL_FLOW_COLUMNS = [
    "Period",
    "Pool",
    "Direct",
    "Received",
    "AllocatedOnward",
    "Billed",
    "Unallocated",
    "Cost",
    "Recovered",
    "Charged",
]


@dataclass(frozen=True, slots=True)  # slots: a run makes one per department, pool and period
class BillLine:
    """One line of a department's bill, in minor units."""

    department: str
    """Department key."""
    pool: str
    """Pool key."""
    metric: str | None
    quantity: Decimal | None
    rate: Decimal | None
    cents: int
    rule_id: str
    tier: int = 0
    """Order of the band within a graduated charge (keeps lines in price order)."""


@dataclass(frozen=True, slots=True)
class Transfer:
    """Cost moved from one pool to another by an ALLOCATE rule (posts nothing)."""

    source: str
    target: str
    cents: int
    rule_id: str


@dataclass
class Spread:
    """What one ALLOCATE rule did in one period."""

    rule_id: str
    pool: str
    amount: int
    """The amount spread: the pool's balance when the rule ran."""
    lines: list[BillLine] = field(default_factory=list)
    transfers: list[Transfer] = field(default_factory=list)
    kept: int = 0


@dataclass
class PeriodRun:
    """Every record of running the rules for one period."""

    period: str
    lines: list[BillLine] = field(default_factory=list)
    transfers: list[Transfer] = field(default_factory=list)
    spreads: dict[str, Spread] = field(default_factory=dict)
    charged: dict[str, int] = field(default_factory=dict)
    """CHARGE rule ID -> minor units billed."""
    charged_pools: set[str] = field(default_factory=set)
    """Pool keys billed by a CHARGE rule (their shortfall is under-recovery, not unallocated)."""
    flows: dict[str, dict[str, int]] = field(default_factory=dict)
    """Pool key -> direct, received, onward, billed, unallocated, charged (minor units)."""
    problems: list[Problem] = field(default_factory=list)


@dataclass(frozen=True)
class TieOut:
    """One tie-out check (docs/contract.md#tie-outs) and how it came out."""

    name: str
    passed: bool
    detail: str


@dataclass
class Result:
    """The billed period's outputs, the fiscal year's recovery, checks and problems."""

    period: str
    bills: pd.DataFrame
    journal: pd.DataFrame
    recovery: pd.DataFrame
    pool_flows: pd.DataFrame
    """Per period and pool (Decimal): Direct, Received, AllocatedOnward, Billed,
    Unallocated, Cost (= Direct + Received - AllocatedOnward), Recovered (= Billed),
    Charged (the part of Billed that came from CHARGE rules)."""
    rule_amounts: dict[str, Decimal]
    tieouts: list[TieOut]
    problems: list[Problem]
    periods: list[str] = field(default_factory=list)
    """The fiscal-year periods run for Recovery, oldest first (the billed one last)."""
    year_charges: pd.DataFrame | None = None
    """CHARGE bill lines (those with a Rate) of every period of the fiscal year to date."""

    @property
    def ok(self) -> bool:
        return not has_errors(self.problems) and all(t.passed for t in self.tieouts)
