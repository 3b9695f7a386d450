"""What a run produces: the records of one period, and the Result of the billed period.

Inside a period the engine keeps plain records in integer minor units
(`BillLines`, `Transfer`, `Spread`); `Result` holds the output frames
(docs/contract.md#output-sheets), with money as exact Decimal at the
currency's minor unit.

A rule bills thousands of departments in each of twelve periods, so its bill
lines are kept as columns (`BillLines`: numpy arrays of department positions
and minor units) rather than one object per line, and a quantity becomes a
Decimal only when a sheet shows it (`Quantities`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal

import numpy as np
import pandas as pd

from costloop.engine.model.money import object_array, quantity_array
from costloop.problems import Problem, has_errors

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


class Quantities:
    """The quantities shown on bill lines: exact units at a scale, or values as shown.

    Usage quantities stay integer units until a sheet needs them: most periods of
    the year only feed Recovery's sums and never show a quantity.
    """

    __slots__ = ("scale", "units", "values")

    def __init__(
        self,
        units: np.ndarray | None = None,
        scale: int = 0,
        values: np.ndarray | None = None,
    ):
        self.units, self.scale, self.values = units, scale, values

    @classmethod
    def shown(cls, values: Sequence[Decimal | None]) -> Quantities:
        """Quantities already as shown (a Departments column, a share %, or blank)."""
        return cls(values=object_array(values))

    def take(self, index: np.ndarray) -> Quantities:
        if self.units is not None:
            return Quantities(self.units[index], self.scale)
        return Quantities(values=self.values[index])

    def decimals(self) -> np.ndarray:
        """The quantities as shown: an object array of Decimal (or None: blank)."""
        if self.units is not None:
            return quantity_array(self.units, self.scale)
        return self.values


def exact_total(cents: np.ndarray) -> int:
    """Σ minor units as a Python int (an int64 sum could overflow on huge amounts)."""
    return sum(cents.tolist())


@dataclass(eq=False)
class BillLines:
    """The bill lines of one rule in one period, column by column (one entry per line)."""

    pool: str
    """Pool key."""
    rule_id: str
    metric: str | None
    departments: np.ndarray
    """The department keys in name order (`Drivers.department_keys`), shared by all blocks."""
    at: np.ndarray
    """Each line's department, as its position in ``departments``."""
    cents: np.ndarray
    """Minor units: int64, or Python ints (object) where int64 could overflow."""
    quantities: Quantities
    rates: np.ndarray | None = None
    """Each line's unit rate (object array of Decimal) for a CHARGE; None: no rate."""
    tiers: np.ndarray | None = None
    """Each line's band within a graduated charge (None: all 0)."""

    def __len__(self) -> int:
        return len(self.at)

    @property
    def total(self) -> int:
        return exact_total(self.cents)

    def lines(self) -> list[BillLine]:
        """One `BillLine` per line (for callers that want records, not columns)."""
        n = len(self.at)
        rates = self.rates.tolist() if self.rates is not None else [None] * n
        tiers = self.tiers.tolist() if self.tiers is not None else [0] * n
        keys = self.departments[self.at].tolist()
        return [
            BillLine(key, self.pool, self.metric, quantity, rate, int(cents), self.rule_id, tier)
            for key, quantity, rate, cents, tier in zip(
                keys,
                self.quantities.decimals().tolist(),
                rates,
                self.cents.tolist(),
                tiers,
                strict=True,
            )
        ]


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
    bill_lines: BillLines | None = None
    """Its lines to departments."""
    transfers: list[Transfer] = field(default_factory=list)
    kept: int = 0

    @property
    def lines(self) -> list[BillLine]:
        return self.bill_lines.lines() if self.bill_lines is not None else []


@dataclass
class PeriodRun:
    """Every record of running the rules for one period."""

    period: str
    bill_lines: list[BillLines] = field(default_factory=list)
    """Every rule's lines to departments, rule by rule in the order they ran."""
    transfers: list[Transfer] = field(default_factory=list)
    spreads: dict[str, Spread] = field(default_factory=dict)
    charged: dict[str, int] = field(default_factory=dict)
    """CHARGE rule ID -> minor units billed."""
    charged_pools: set[str] = field(default_factory=set)
    """Pool keys billed by a CHARGE rule (their shortfall is under-recovery, not unallocated)."""
    flows: dict[str, dict[str, int]] = field(default_factory=dict)
    """Pool key -> direct, received, onward, billed, unallocated, charged (minor units)."""
    problems: list[Problem] = field(default_factory=list)

    @property
    def lines(self) -> list[BillLine]:
        """Every bill line of the period as a record (the engine itself works on columns)."""
        return [line for block in self.bill_lines for line in block.lines()]


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
