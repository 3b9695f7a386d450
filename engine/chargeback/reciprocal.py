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
from fractions import Fraction

import numpy as np

from costloop.engine.chargeback.allocate import (
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


def spread_group(
    drivers: Drivers,
    rules: tuple[Allocate, ...],
    period: str,
    balance: Callable[[str], int],
    direct_cost: Callable[[str], int],
) -> tuple[list[Spread], list[Problem]]:
    """Spread a reciprocal group's pools; one `Spread` per rule, in rule order."""
    keys = [r.pool.key for r in rules]
    index = {k: i for i, k in enumerate(keys)}
    n = len(rules)
    start = [balance(k) for k in keys]
    problems: list[Problem] = []
    found: list[Receivers] = []
    group_has_cost = any(start)
    for rule, amount in zip(rules, start, strict=True):
        # T is not known yet, but a pool of a group holding any cost may receive
        # some: a non-zero stand-in makes the zero-driver fallbacks apply (and a
        # group with nothing at all to spread raises no zero-driver error).
        got = receivers(drivers, rule, period, amount or int(group_has_cost), direct_cost)
        found.append(got)
        problems += got.problems

    listed = [got.receivers for got in found]  # a group has few pools: records read simply
    share: list[dict[str, Fraction]] = []  # rule i -> receiver key -> exact fraction
    for got, each in zip(found, listed, strict=True):
        weighted = [r for r in each if r.weight] if not got.keep else []
        total = sum((Fraction(r.weight) for r in weighted), Fraction(0))
        share.append({r.key: Fraction(r.weight) / total for r in weighted} if total else {})

    # (I − Pᵀ)·T = D: row j says T_j − Σ_i P[i][j]·T_i = D_j.
    matrix = [[Fraction(int(i == j)) for i in range(n)] for j in range(n)]
    for i, each in enumerate(listed):
        for r in each:
            if r.is_pool and r.key in index and r.key in share[i]:
                matrix[index[r.key]][i] -= share[i][r.key]
    totals = solve(matrix, [Fraction(d) for d in start])
    if totals is None:
        pools = ", ".join(f'"{drivers.pool_names.get(k, k)}"' for k in keys)
        problems.append(
            Problem(
                Reason.SINGULAR,
                Severity.ERROR,
                _cells(rules),
                f"the reciprocal pools {pools} pass all their cost to each other, so no amount "
                f"ever leaves them; send part of at least one of them to DEPARTMENTS",
                rule_id=rules[0].rule_id,
            )
        )
        return [
            Spread(r.rule_id, k, d, kept=d) for r, k, d in zip(rules, keys, start, strict=True)
        ], problems

    # Round each transfer to a pool; then settle pools with no department line.
    out: list[dict[str, int]] = []
    for i, each in enumerate(listed):
        out.append(
            {
                r.key: round_half_up(share[i][r.key] * totals[i])
                for r in each
                if r.is_pool and r.key in share[i]
            }
        )
    has_departments = [bool((got.department_weights != 0).any()) for got in found]

    def spread_amount(j: int) -> int:
        return start[j] + sum(out[i].get(keys[j], 0) for i in range(n))

    for _ in range(50 * n + 10):
        moved = False
        for i in range(n):
            if has_departments[i] or found[i].keep or not out[i]:
                continue
            residual = spread_amount(i) - sum(out[i].values())
            if residual:
                # Outside the group first: there the residual is absorbed for sure.
                target = min(out[i], key=lambda k: (k in index, -share[i][k], k))
                out[i][target] += residual
                moved = True
        if not moved:
            break

    spreads = []
    for i, (rule, got) in enumerate(zip(rules, found, strict=True)):
        amount = spread_amount(i)
        spread = Spread(rule.rule_id, keys[i], amount)
        if got.keep or not share[i]:
            spread.kept = amount
            spreads.append(spread)
            continue
        for target, cents in sorted(out[i].items()):
            if cents:
                spread.transfers.append(Transfer(keys[i], target, cents, rule.rule_id))
        departments = np.flatnonzero(got.department_weights != 0)
        to_departments = amount - sum(out[i].values())
        if len(departments):
            names = got.keys[got.departments[departments]].tolist()
            weights = got.department_weights[departments]
            parts = split_by_weight(to_departments, weights, name_ranks(names))
            spread.bill_lines = department_lines(rule.rule_id, keys[i], got, departments, parts)
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
