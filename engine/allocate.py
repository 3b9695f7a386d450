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
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

from costloop.engine.drivers import Drivers
from costloop.engine.money import format_money, largest_remainder, units_to_decimal
from costloop.engine.result import BillLine, Spread, Transfer
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


@dataclass(frozen=True, slots=True)  # slots: one per department, rule and period
class Receiver:
    """One department or pool an ALLOCATE rule may spread to, with its driver weight."""

    is_pool: bool
    key: str
    weight: int | Fraction
    metric: str | None = None
    quantity: Decimal | None = None


@dataclass
class Receivers:
    """The outcome of deciding who receives: the weighted receivers, or keep it all."""

    receivers: list[Receiver]
    keep: bool = False
    """True: nothing is spread this period (IF NO USAGE KEEP, or a FAIL error)."""
    problems: list[Problem] | None = None


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
    dept_keys = drivers.department_receivers(on_deps) if rule.receivers.departments else []
    pool_keys = _pool_keys(drivers, rule)
    driver = rule.driver
    found: list[Receiver] = []
    if isinstance(driver, UsageDriver):
        metric = drivers.metric_names.get(driver.metric.key, driver.metric.text)
        used = drivers.usage_by_receiver(driver.metric.key, on_usage, period)
        scale = drivers.usage_scale
        for is_pool, keys in ((False, dept_keys), (True, pool_keys)):
            for key in keys:
                units = used.get(key, 0)
                if units:
                    found.append(
                        Receiver(is_pool, key, units, metric, units_to_decimal(units, scale))
                    )
    elif isinstance(driver, ColumnDriver):
        header, values = drivers.department_column(driver.column.key)
        # The same for every period and rule: divided once per department, not per bill line.
        quantities = drivers.cache.setdefault(("column quantities", driver.column.key), {})
        for key in dept_keys:
            value = values.get(key)
            if value:
                quantity = quantities.get(key)
                if quantity is None:
                    quantity = Decimal(value.numerator) / Decimal(value.denominator)
                    quantities[key] = quantity
                found.append(Receiver(False, key, value, header or driver.column.text, quantity))
    elif isinstance(driver, SharesDriver):
        dept_set, pool_set = set(dept_keys), set(pool_keys)
        for share in driver.shares:
            key = share.name.key
            if key in dept_set:
                found.append(
                    Receiver(False, key, Fraction(share.percent), SHARE_METRIC, share.percent)
                )
            elif key in pool_set:
                found.append(
                    Receiver(True, key, Fraction(share.percent), SHARE_METRIC, share.percent)
                )
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
    elif isinstance(driver, CostDriver):
        for key in pool_keys:
            cost = direct_cost(key)
            if cost > 0:
                found.append(Receiver(True, key, cost))
    elif isinstance(driver, EvenDriver):
        found = [Receiver(False, k, 1) for k in dept_keys] + [
            Receiver(True, k, 1) for k in pool_keys
        ]

    negative = [r for r in found if r.weight < 0]
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
        return Receivers([], keep=True, problems=problems)
    if found or amount == 0:
        return Receivers(found, problems=problems)
    return _no_driver(drivers, rule, period, amount, dept_keys, pool_keys, problems)


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
        even = [Receiver(False, k, 1) for k in dept_keys] + [
            Receiver(True, k, 1) for k in pool_keys
        ]
        return Receivers(even, problems=problems)
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
        return Receivers([], keep=True, problems=problems)
    problems.append(
        rule_problem(
            rule, Reason.ZERO_DRIVER, Severity.ERROR, f"{why} ({money} to spread)", driver.span
        )
    )
    return Receivers([], keep=True, problems=problems)


def _label(drivers: Drivers, r: Receiver) -> str:
    if r.is_pool:
        return drivers.pool_names.get(r.key, r.key)
    dep = drivers.departments.get(r.key)
    return dep.code if dep else r.key


def spread_rule(rule: Allocate, amount: int, found: Receivers) -> Spread:
    """Split ``amount`` over the receivers by largest remainder (or keep it all)."""
    spread = Spread(rule.rule_id, rule.pool.key, amount)
    weighted = [r for r in found.receivers if r.weight]
    if found.keep or not weighted:
        spread.kept = amount
        return spread
    parts = largest_remainder(amount, [r.weight for r in weighted], [r.key for r in weighted])
    for r, cents in zip(weighted, parts, strict=True):
        if r.is_pool:
            if cents:
                spread.transfers.append(Transfer(rule.pool.key, r.key, cents, rule.rule_id))
        else:
            spread.lines.append(
                BillLine(r.key, rule.pool.key, r.metric, r.quantity, None, cents, rule.rule_id)
            )
    return spread
