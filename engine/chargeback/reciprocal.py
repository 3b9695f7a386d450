"""Reciprocal allocation: pools that serve each other, solved together.

The method: docs/rules-language.md#reciprocal--pools-that-serve-each-other.

For the pools of one reciprocal step, with D the amount each holds when the
step starts and P[i][j] the share of pool i's total going to pool j of the
group, the totals solve T = D + Pᵀ·T. The system is small (one equation per
pool), so it is solved exactly with `fractions.Fraction` Gaussian
elimination: no float ever enters a bill.

Rounding so that everything ties out to the cent:

1. compute the exact totals T;
2. round every pool-to-pool transfer p·T half-up to the minor unit;
3. each pool's amount spread S = D + rounded transfers in from the group;
   what goes to departments = S − rounded transfers out − kept, split over
   the department receivers by largest remainder;
4. a pool that sends only to pools has no department line to absorb the
   rounding: its leftover cent(s) ride on its largest transfer out (to a pool
   outside the group first), and are absorbed where that pool spreads.

So for every rule, bill lines + transfers out + kept = S exactly, and for the
group as a whole Σ department lines + kept + transfers leaving the group = Σ D.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

from costloop.engine.chargeback.allocate import (
    Receiver,
    Receivers,
    department_lines,
    name_ranks,
    receivers,
    rule_problem,
)
from costloop.engine.chargeback.drivers import Drivers
from costloop.engine.model.money import round_half_up, split_by_weight
from costloop.engine.model.result import Spread, Transfer
from costloop.problems import Problem, Reason, Severity
from costloop.rules.ast import Allocate


def solve(matrix: list[list[Fraction]], rhs: list[Fraction]) -> list[Fraction] | None:
    """Solve ``matrix · x = rhs`` exactly; None when the matrix is singular."""
    n = len(rhs)
    a = [[*row, b] for row, b in zip(matrix, rhs, strict=True)]
    for col in range(n):
        pivot = next((r for r in range(col, n) if a[r][col] != 0), None)
        if pivot is None:
            return None
        a[col], a[pivot] = a[pivot], a[col]
        head = a[col][col]
        for r in range(n):
            if r != col and a[r][col] != 0:
                factor = a[r][col] / head
                a[r] = [x - factor * y for x, y in zip(a[r], a[col], strict=True)]
    return [a[i][n] / a[i][i] for i in range(n)]


def _cells(rules: tuple[Allocate, ...]) -> str:
    """``Rules!B3, B5``: the group's cells, as docs/contract.md#errors writes a cycle's location."""
    cells = [r.where for r in rules]
    sheet = cells[0].split("!")[0] + "!" if "!" in cells[0] else ""
    rest = [c.split("!", 1)[1] if c.startswith(sheet) and sheet else c for c in cells[1:]]
    return ", ".join([cells[0], *rest])


@dataclass
class _Group:
    """One reciprocal step while it is solved: its pools, what they hold and who receives."""

    rules: tuple[Allocate, ...]
    keys: list[str]
    """The pool of each rule, in rule order."""
    start: list[int]
    """What each pool holds when the step starts (D)."""
    found: list[Receivers] = field(default_factory=list)
    listed: list[list[Receiver]] = field(default_factory=list)
    share: list[dict[str, Fraction]] = field(default_factory=list)
    """Rule i -> receiver key -> exact fraction of pool i's total (P[i])."""

    @property
    def index(self) -> dict[str, int]:
        return {k: i for i, k in enumerate(self.keys)}


def spread_group(
    drivers: Drivers,
    rules: tuple[Allocate, ...],
    period: str,
    balance: Callable[[str], int],
    direct_cost: Callable[[str], int],
) -> tuple[list[Spread], list[Problem]]:
    """Spread a reciprocal group's pools; one `Spread` per rule, in rule order."""
    keys = [r.pool.key for r in rules]
    group = _Group(rules, keys, [balance(k) for k in keys])
    problems = _find_receivers(drivers, group, period, direct_cost)
    totals = _solve_totals(group)
    if totals is None:
        problems.append(_singular(drivers, group))
        return [
            Spread(r.rule_id, k, d, kept=d)
            for r, k, d in zip(rules, keys, group.start, strict=True)
        ], problems
    out = _rounded_transfers(group, totals)
    _settle_pools_without_departments(group, out)
    spreads, rounding = _spreads(group, out, period)
    return spreads, problems + rounding


def _find_receivers(
    drivers: Drivers, group: _Group, period: str, direct_cost: Callable[[str], int]
) -> list[Problem]:
    """Each rule's receivers and the exact share of its pool each gets; their problems."""
    problems: list[Problem] = []
    group_has_cost = any(group.start)
    for rule, amount in zip(group.rules, group.start, strict=True):
        # T is not known yet, but a pool of a group holding any cost may receive
        # some: a non-zero stand-in makes the zero-driver fallbacks apply (and a
        # group with nothing at all to spread raises no zero-driver error).
        got = receivers(drivers, rule, period, amount or int(group_has_cost), direct_cost)
        group.found.append(got)
        problems += got.problems

    group.listed = [got.receivers for got in group.found]  # a group has few pools: records
    for got, each in zip(group.found, group.listed, strict=True):
        weighted = [r for r in each if r.weight] if not got.keep else []
        total = sum((Fraction(r.weight) for r in weighted), Fraction(0))
        group.share.append({r.key: Fraction(r.weight) / total for r in weighted} if total else {})
    return problems


def _solve_totals(group: _Group) -> list[Fraction] | None:
    """The exact totals T of ``(I − Pᵀ)·T = D``; None when the pools never let cost out."""
    n, index, share = len(group.rules), group.index, group.share
    # Row j says T_j − Σ_i P[i][j]·T_i = D_j.
    matrix = [[Fraction(int(i == j)) for i in range(n)] for j in range(n)]
    for i, each in enumerate(group.listed):
        for r in each:
            if r.is_pool and r.key in index and r.key in share[i]:
                matrix[index[r.key]][i] -= share[i][r.key]
    return solve(matrix, [Fraction(d) for d in group.start])


def _singular(drivers: Drivers, group: _Group) -> Problem:
    pools = ", ".join(f'"{drivers.pool_names.get(k, k)}"' for k in group.keys)
    return Problem(
        Reason.SINGULAR,
        Severity.ERROR,
        _cells(group.rules),
        f"the reciprocal pools {pools} pass all their cost to each other, so no amount "
        f"ever leaves them; send part of at least one of them to DEPARTMENTS",
        rule_id=group.rules[0].rule_id,
    )


def _rounded_transfers(group: _Group, totals: list[Fraction]) -> list[dict[str, int]]:
    """Rule i -> receiving pool -> its transfer p·T rounded half-up to the minor unit."""
    return [
        {
            r.key: round_half_up(group.share[i][r.key] * totals[i])
            for r in each
            if r.is_pool and r.key in group.share[i]
        }
        for i, each in enumerate(group.listed)
    ]


def _spread_amount(group: _Group, out: list[dict[str, int]], j: int) -> int:
    """S_j: what pool j holds at the start plus the rounded transfers in from the group."""
    return group.start[j] + sum(transfers.get(group.keys[j], 0) for transfers in out)


def _settle_pools_without_departments(group: _Group, out: list[dict[str, int]]) -> None:
    """A pool sending only to pools puts its rounding residual on its largest transfer out."""
    n, index, share = len(group.rules), group.index, group.share
    has_departments = [bool((got.department_weights != 0).any()) for got in group.found]
    for _ in range(50 * n + 10):
        moved = False
        for i in range(n):
            if has_departments[i] or group.found[i].keep or not out[i]:
                continue
            residual = _spread_amount(group, out, i) - sum(out[i].values())
            if residual:
                # Outside the group first: there the residual is absorbed for sure.
                target = min(out[i], key=lambda k: (k in index, -share[i][k], k))
                out[i][target] += residual
                moved = True
        if not moved:
            break


def _spreads(
    group: _Group, out: list[dict[str, int]], period: str
) -> tuple[list[Spread], list[Problem]]:
    """Each rule's `Spread`: its transfers, and the rest split over its departments."""
    spreads, problems = [], []
    for i, (rule, got) in enumerate(zip(group.rules, group.found, strict=True)):
        key = group.keys[i]
        amount = _spread_amount(group, out, i)
        spread = Spread(rule.rule_id, key, amount)
        if got.keep or not group.share[i]:
            spread.kept = amount
            spreads.append(spread)
            continue
        for target, cents in sorted(out[i].items()):
            if cents:
                spread.transfers.append(Transfer(key, target, cents, rule.rule_id))
        departments = np.flatnonzero(got.department_weights != 0)
        to_departments = amount - sum(out[i].values())
        if len(departments):
            names = got.keys[got.departments[departments]].tolist()
            weights = got.department_weights[departments]
            parts = split_by_weight(to_departments, weights, name_ranks(names))
            spread.bill_lines = department_lines(rule.rule_id, key, got, departments, parts)
        elif to_departments:
            spread.kept = to_departments  # unreachable unless the settling loop gave up
            problems.append(
                rule_problem(
                    rule,
                    Reason.TIE_OUT,
                    Severity.WARNING,
                    f"{to_departments} minor unit(s) of rounding left in the pool in {period}",
                )
            )
        spreads.append(spread)
    return spreads, problems
