"""ALLOCATE: spread a pool's cost over departments and pools (docs/rules-language.md).

Who receives and by how much is decided in `receivers` (shared with the
reciprocal solver); `spread_rule` then splits a fixed total by largest
remainder, so the bill lines, the transfers to pools and what is kept add up
to the amount spread to the cent.

What an allocation bill line shows in Bills (Rate is always blank: an
allocation has no unit price):

=================  ===========================  ==================================
Driver             Metric                       Quantity
=================  ===========================  ==================================
BY USAGE m         the metric m                 the department's quantity of m
BY <column>        the column header            the department's value
BY 60% "ADM", ...  ``Share %``                  the percentage (60)
EVENLY             blank                        blank
IF NO USAGE        blank                        blank (split evenly for want of a
EVENLY fallback                                 driver)
=================  ===========================  ==================================
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction

import numpy as np

from costloop.engine.chargeback.blank_drivers import blank_driver_cells
from costloop.engine.chargeback.drivers import Drivers
from costloop.engine.model.money import (
    as_int_array,
    format_money,
    integer_weights,
    split_by_weight,
)
from costloop.engine.model.result import BillLines, Quantities, Spread, Transfer
from costloop.problems import Problem, Reason, Severity
from costloop.rules.ast import (
    Allocate,
    ColumnDriver,
    CostDriver,
    EvenDriver,
    SharesDriver,
    Span,
    UsageDriver,
)

SHARE_METRIC = "Share %"
_NO_POSITIONS = np.zeros(0, dtype=np.intp)


@dataclass(frozen=True, slots=True)
class Receiver:
    """One department or pool an ALLOCATE rule may spread to, with its driver weight."""

    is_pool: bool
    key: str
    weight: int | Fraction
    metric: str | None = None
    quantity: Decimal | None = None


def _empty_ints() -> np.ndarray:
    return np.zeros(0, dtype=np.int64)


@dataclass
class Receivers:
    """Who receives, column by column: the departments (in name order), then the pools.

    The weights are integers with the drivers' ratios (fractions brought to one
    denominator): a spread depends only on the ratios, and integers split a
    pool over thousands of departments in one vectorised step.
    """

    departments: np.ndarray = field(default_factory=lambda: _NO_POSITIONS)
    """Receiving departments as positions in `Drivers.department_keys`."""
    department_weights: np.ndarray = field(default_factory=_empty_ints)
    pools: list[str] = field(default_factory=list)
    pool_weights: list[int] = field(default_factory=list)
    metric: str | None = None
    """What the Metric column of the bill lines shows (None: blank)."""
    quantities: Quantities | None = None
    """The departments' quantities (None: blank)."""
    keep: bool = False
    """True: nothing is spread this period (IF NO USAGE KEEP, or a FAIL error)."""
    problems: list[Problem] = field(default_factory=list)
    """What finding the receivers raised (a WHERE column that does not exist, a zero driver)."""
    keys: np.ndarray | None = None
    """`Drivers.department_keys` (the department positions point into it)."""

    def __bool__(self) -> bool:
        return bool(len(self.departments) or self.pools)

    def department_quantities(self) -> Quantities:
        if self.quantities is None:
            return Quantities.shown([None] * len(self.departments))
        return self.quantities

    @property
    def receivers(self) -> list[Receiver]:
        """One `Receiver` per department and pool (the reciprocal solver's view)."""
        keys = self.keys[self.departments].tolist() if len(self.departments) else []
        quantities = self.department_quantities().decimals()
        weights = self.department_weights.tolist()
        found = [
            Receiver(False, k, w, self.metric, q)
            for k, w, q in zip(keys, weights, quantities, strict=True)
        ]
        return found + [
            Receiver(True, k, w) for k, w in zip(self.pools, self.pool_weights, strict=True)
        ]


def _receivers_of(drivers: Drivers, found: list[Receiver]) -> Receivers:
    """Columns from a (short) list of receivers: shares, pool costs."""
    weights = integer_weights([r.weight for r in found])
    position = {k: i for i, k in enumerate(drivers.department_order)}
    deps = [(r, w) for r, w in zip(found, weights, strict=True) if not r.is_pool]
    pools = [(r, w) for r, w in zip(found, weights, strict=True) if r.is_pool]
    return Receivers(
        departments=np.array([position[r.key] for r, _ in deps], dtype=np.intp),
        department_weights=as_int_array([w for _, w in deps]),
        pools=[r.key for r, _ in pools],
        pool_weights=[w for _, w in pools],
        metric=deps[0][0].metric if deps else None,
        quantities=Quantities.shown([r.quantity for r, _ in deps]),
        keys=drivers.department_keys,
    )


def _evenly(drivers: Drivers, positions: np.ndarray, pool_keys: list[str]) -> Receivers:
    return Receivers(
        departments=positions,
        department_weights=np.ones(len(positions), dtype=np.int64),
        pools=list(pool_keys),
        pool_weights=[1] * len(pool_keys),
        keys=drivers.department_keys,
    )


def rule_problem(
    rule: Allocate,
    code: Reason,
    severity: Severity,
    message: str,
    span: Span | None = None,
) -> Problem:
    """A runtime problem located at the rule's cell (and, given a span, the character)."""
    return Problem.at_rule(rule, code, message, span, severity)


def _pool_keys(drivers: Drivers, rule: Allocate) -> list[str]:
    if not rule.receivers.pools:
        return []
    if rule.receivers.pool_names:
        keys = [n.key for n in rule.receivers.pool_names]
    else:
        keys = list(drivers.pool_names)  # POOLS alone: every other pool
    return sorted({k for k in keys if k != rule.pool.key})


def receivers(
    drivers: Drivers,
    rule: Allocate,
    period: str,
    amount: int,
    direct_cost: Callable[[str], int],
) -> Receivers:
    """Who receives ``rule``'s pool in ``period`` and their weights (IF NO USAGE applied)."""
    problems: list[Problem] = []
    on_deps, on_usage, unknown = drivers.split_conditions(rule.where_clause)
    for cond in unknown:
        problems.append(
            rule_problem(
                rule,
                Reason.UNKNOWN_COLUMN,
                Severity.ERROR,
                f'WHERE names "{cond.column.text}", which is a column of neither Departments '
                f"nor Usage; use one of their headers",
                cond.column.span,
            )
        )
    positions = (
        drivers.department_positions(on_deps) if rule.receivers.departments else _NO_POSITIONS
    )
    pool_keys = _pool_keys(drivers, rule)
    driver = rule.driver
    found = Receivers(keys=drivers.department_keys)
    if isinstance(driver, UsageDriver):
        found = _by_usage(drivers, driver, on_usage, period, positions, pool_keys)
    elif isinstance(driver, ColumnDriver):
        header, weights, quantities = drivers.column_weights(driver.column.key)
        problems += blank_driver_cells(drivers, rule, header, positions, amount, period)
        weights = weights[positions]
        billed = weights != 0
        positions = positions[billed]
        found = Receivers(
            departments=positions,
            department_weights=weights[billed],
            metric=header or driver.column.text,
            quantities=Quantities(values=quantities[positions]),
            keys=drivers.department_keys,
        )
    elif isinstance(driver, SharesDriver):
        found = _by_shares(drivers, rule, driver, period, positions, pool_keys, problems)
    elif isinstance(driver, CostDriver):
        costs = [(key, direct_cost(key)) for key in pool_keys]
        found = Receivers(
            pools=[k for k, c in costs if c > 0],
            pool_weights=[c for _, c in costs if c > 0],
            keys=drivers.department_keys,
        )
    elif isinstance(driver, EvenDriver):
        found = _evenly(drivers, positions, pool_keys)

    negative = _negative(found)
    if negative:
        names = ", ".join(f'"{_label(drivers, r)}"' for r in negative)
        problems.append(
            rule_problem(
                rule,
                Reason.BAD_VALUE,
                Severity.ERROR,
                f"negative driver for {names} in {period}; a share cannot be below zero",
                driver.span,
            )
        )
        return Receivers(keep=True, problems=problems, keys=drivers.department_keys)
    if found or amount == 0:
        found.problems = problems
        return found
    dept_keys = drivers.department_keys[positions].tolist() if len(positions) else []
    return _no_driver(drivers, rule, period, amount, dept_keys, pool_keys, problems)


def _by_usage(drivers, driver, on_usage, period, positions, pool_keys) -> Receivers:
    """BY USAGE m: each receiver's units of m in the period (those with none drop out)."""
    metric = drivers.metric_names.get(driver.metric.key, driver.metric.text)
    units = drivers.department_usage(driver.metric.key, on_usage, period, positions)
    used = units != 0
    pool_usage = drivers.usage_by_receiver(driver.metric.key, on_usage, period) if pool_keys else {}
    pools = [k for k in pool_keys if pool_usage.get(k, 0)]
    return Receivers(
        departments=positions[used],
        department_weights=units[used],
        pools=pools,
        pool_weights=[pool_usage[k] for k in pools],
        metric=metric,
        quantities=Quantities(units[used], drivers.usage_scale),
        keys=drivers.department_keys,
    )


def _by_shares(drivers, rule, driver, period, positions, pool_keys, problems) -> Receivers:
    """BY 60% "ADM", ...: fixed shares of the receivers named (a short list)."""
    dept_set = set(drivers.department_keys[positions].tolist()) if len(positions) else set()
    pool_set = set(pool_keys)
    found: list[Receiver] = []
    for share in driver.shares:
        key = share.name.key
        if key in dept_set:
            found.append(Receiver(False, key, Fraction(share.percent), SHARE_METRIC, share.percent))
        elif key in pool_set:
            found.append(Receiver(True, key, Fraction(share.percent), SHARE_METRIC, share.percent))
        elif share.percent:
            problems.append(
                rule_problem(
                    rule,
                    Reason.UNKNOWN_DEPARTMENT,
                    Severity.WARNING,
                    f'"{share.name.text}" is not a billable receiver of this rule in {period} '
                    f"(not billable, filtered out by WHERE, or unknown); its "
                    f"{share.percent}% is shared among the other receivers",
                    share.span,
                )
            )
    total = sum((r.weight for r in found), Fraction(0))
    if found and total != 100 and not problems:
        problems.append(
            rule_problem(
                rule,
                Reason.SHARES_NOT_100,
                Severity.WARNING,
                f"shares add up to {total}%, not 100%; spreading in proportion",
                driver.span,
            )
        )
    return _receivers_of(drivers, found)


def _negative(found: Receivers) -> list[Receiver]:
    """Receivers with a negative driver (checked on the columns; listed only if any)."""
    if not (found.department_weights < 0).any() and not any(w < 0 for w in found.pool_weights):
        return []
    return [r for r in found.receivers if r.weight < 0]


def _no_driver(
    drivers: Drivers,
    rule: Allocate,
    period: str,
    amount: int,
    dept_keys: list[str],
    pool_keys: list[str],
    problems: list[Problem],
) -> Receivers:
    """Zero driver total: IF NO USAGE FAIL (error), EVENLY or KEEP (docs/rules-language.md)."""
    driver = rule.driver
    if not dept_keys and not pool_keys:
        why = (
            f"no receivers in {period}: no billable department passes the WHERE conditions "
            f"and no pool receives; check WHERE and the Billable column of Departments"
        )
    elif isinstance(driver, UsageDriver):
        why = (
            f'no usage of "{driver.metric.text}" in {period} among the receivers; '
            f"add IF NO USAGE EVENLY or KEEP to spread it anyway"
        )
    elif isinstance(driver, ColumnDriver):
        why = (
            f'Departments column "{driver.column.text}" adds up to 0 among the receivers; '
            f"fill it in, or add IF NO USAGE EVENLY or KEEP"
        )
    elif isinstance(driver, CostDriver):
        why = (
            f"the receiving pools have no direct cost in {period} to share by; "
            f"add IF NO USAGE EVENLY or KEEP"
        )
    else:
        why = f"no share of the pool goes to a billable receiver in {period}"
    pool = drivers.pool_names.get(rule.pool.key, rule.pool.text)
    money = format_money(amount, drivers.minor_unit)
    if rule.if_no_usage == "EVENLY" and (dept_keys or pool_keys):
        position = {k: i for i, k in enumerate(drivers.department_order)}
        positions = np.array([position[k] for k in dept_keys], dtype=np.intp)
        even = _evenly(drivers, positions, pool_keys)
        even.problems = problems
        return even
    if rule.if_no_usage == "KEEP":
        problems.append(
            rule_problem(
                rule,
                Reason.ZERO_DRIVER,
                Severity.WARNING,
                f'{why.split(";")[0]}; kept {money} in pool "{pool}" as Unallocated '
                f"(IF NO USAGE KEEP)",
                driver.span,
            )
        )
        return Receivers(keep=True, problems=problems, keys=drivers.department_keys)
    problems.append(
        rule_problem(
            rule, Reason.ZERO_DRIVER, Severity.ERROR, f"{why} ({money} to spread)", driver.span
        )
    )
    return Receivers(keep=True, problems=problems, keys=drivers.department_keys)


def _label(drivers: Drivers, r: Receiver) -> str:
    if r.is_pool:
        return drivers.pool_names.get(r.key, r.key)
    dep = drivers.departments.get(r.key)
    return dep.code if dep else r.key


def name_ranks(names: list[str]) -> np.ndarray:
    """Each name's place in name order (equal names: in the order given)."""
    ranks = np.empty(len(names), dtype=np.int64)
    # Receivers come in name order already (departments, then pools): Timsort is linear then.
    ranks[sorted(range(len(names)), key=names.__getitem__)] = np.arange(len(names))
    return ranks


def department_lines(
    rule_id: str, pool: str, found: Receivers, index: np.ndarray, cents: np.ndarray
) -> BillLines:
    """The bill lines of the receiving departments at ``index`` (an ALLOCATE has no rate)."""
    return BillLines(
        pool,
        rule_id,
        found.metric,
        found.keys,
        found.departments[index],
        cents,
        found.department_quantities().take(index),
    )


def split_amount(amount: int, found: Receivers) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Largest remainder over the receivers with a weight: (department index, cents, pool cents).

    Ties go to the name first in order, departments and pools alike.
    """
    index = np.flatnonzero(found.department_weights != 0)
    pools = [(k, w) for k, w in zip(found.pools, found.pool_weights, strict=True) if w]
    weights = found.department_weights[index]
    if pools:
        weights = np.concatenate([weights.astype(object), [w for _, w in pools]])
        weights = as_int_array(weights.tolist())
    names = found.keys[found.departments[index]].tolist() + [k for k, _ in pools]
    parts = split_by_weight(amount, weights, name_ranks(names))
    return index, parts[: len(index)], parts[len(index) :].tolist()


def spread_rule(rule: Allocate, amount: int, found: Receivers) -> Spread:
    """Split ``amount`` over the receivers by largest remainder (or keep it all)."""
    spread = Spread(rule.rule_id, rule.pool.key, amount)
    has_weight = (found.department_weights != 0).any() or any(found.pool_weights)
    if found.keep or not has_weight:
        spread.kept = amount
        return spread
    index, cents, pool_cents = split_amount(amount, found)
    pools = [k for k, w in zip(found.pools, found.pool_weights, strict=True) if w]
    for key, part in zip(pools, pool_cents, strict=True):
        if part:
            spread.transfers.append(Transfer(rule.pool.key, key, part, rule.rule_id))
    if len(index):
        spread.bill_lines = department_lines(rule.rule_id, rule.pool.key, found, index, cents)
    return spread
