"""Run the plan: allocations, then charges, for every period of the fiscal year to date.

`execute` runs the rules for each period from the start of the fiscal year up
to the billed one (Recovery is recomputed from the rules, so past rate and
usage changes show), then builds the billed period's Bills and Journal, the
year's Recovery and pool flows, and runs the tie-outs (docs/contract.md#tie-outs) —
unless the billed period has an error: those bills are held back, never
issued, so there is nothing to tie out.

Within a period a pool's books are kept in minor units:

- direct: its cost per CostBasis (Actuals, or Budget when it has no actuals);
- received: transfers in from pool-to-pool rules;
- onward: transfers out to other pools;
- billed: bill lines to departments (ALLOCATE lines and CHARGE lines);
- unallocated: kept (IF NO USAGE KEEP, a failed driver) or never spread.

A rule spreads the pool's balance when it runs (direct + received − onward −
billed − kept so far), so a pool that receives after it was spread keeps the
late amount as Unallocated, with a warning, rather than losing it.

Problems of the billed period are reported as they are; an ERROR in an earlier
period of the year must not block the bills, so it becomes a WARNING naming
its period (its Recovery row is still computed from what did run).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import replace

import numpy as np
import pandas as pd

from costloop.engine.chargeback.allocate import receivers, spread_rule
from costloop.engine.chargeback.charge import bill_charge
from costloop.engine.chargeback.drivers import Drivers
from costloop.engine.chargeback.journal import build_journal
from costloop.engine.chargeback.reciprocal import spread_group
from costloop.engine.chargeback.recovery import build_pool_flows, build_recovery
from costloop.engine.chargeback.tieouts import run_tieouts
from costloop.engine.model.book import Book
from costloop.engine.model.issued import CHARGE
from costloop.engine.model.money import cents_to_money, format_money, money_array, object_array
from costloop.engine.model.periods import fiscal_periods_to_date
from costloop.engine.model.result import BillLines, PeriodRun, Result, Spread, TieOut
from costloop.engine.model.sheets import BILL_COLUMNS
from costloop.problems import Problem, Reason, Severity, has_errors
from costloop.rules.plan import Plan

FLOW_KEYS = ("direct", "received", "onward", "billed", "unallocated", "charged")


class _PoolBooks:
    """The minor-unit books of every pool during one period."""

    def __init__(self, drivers: Drivers, period: str, run: PeriodRun):
        self.drivers, self.period, self.run = drivers, period, run
        self.flows: dict[str, dict[str, int]] = {}
        fell_back: list[str] = []
        for pool in sorted(drivers.pool_names):
            cents, used_budget = drivers.pool_cost(period, pool)
            self.flows[pool] = dict.fromkeys(FLOW_KEYS, 0) | {"direct": cents}
            if used_budget:
                money = format_money(cents, drivers.minor_unit)
                fell_back.append(f'"{drivers.pool_names[pool]}" ({money})')
        if fell_back:
            # One warning per period: actuals often lag a month for every pool at once.
            which = "pool " if len(fell_back) == 1 else "pools "
            run.problems.append(
                Problem(
                    Reason.COST_BASIS_FALLBACK,
                    Severity.WARNING,
                    "Actuals",
                    f"no actuals in {period} for {which}{', '.join(fell_back)}; using the "
                    f"Budget instead (CostBasis ACTUAL). Add the actuals for {period}, or set "
                    f"CostBasis to BUDGET in Settings",
                )
            )

    def pool(self, key: str) -> dict[str, int]:
        return self.flows.setdefault(key, dict.fromkeys(FLOW_KEYS, 0))

    def balance(self, key: str) -> int:
        f = self.pool(key)
        return f["direct"] + f["received"] - f["onward"] - f["billed"] - f["unallocated"]

    def direct(self, key: str) -> int:
        return self.pool(key)["direct"]

    def post(self, spread: Spread) -> None:
        run = self.run
        run.spreads[spread.rule_id] = spread
        source = self.pool(spread.pool)
        for t in spread.transfers:
            source["onward"] += t.cents
            self.pool(t.target)["received"] += t.cents
            run.transfers.append(t)
        if spread.bill_lines is not None:
            source["billed"] += spread.bill_lines.total
            run.bill_lines.append(spread.bill_lines)
        source["unallocated"] += spread.kept


def run_period(drivers: Drivers, plan: Plan, period: str) -> PeriodRun:
    """Every rule of the plan for one period: spreads, charges, pool flows, problems."""
    run = PeriodRun(period)
    books = _PoolBooks(drivers, period, run)
    spread_pools: set[str] = set()
    for step in plan.allocations:
        if step.reciprocal:
            spreads, problems = spread_group(
                drivers, step.rules, period, books.balance, books.direct
            )
            run.problems += problems
            for spread in spreads:
                books.post(spread)
        else:
            rule = step.rules[0]
            amount = books.balance(rule.pool.key)
            found = receivers(drivers, rule, period, amount, books.direct)
            run.problems += found.problems
            books.post(spread_rule(rule, amount, found))
        spread_pools.update(r.pool.key for r in step.rules)

    charged_pools = run.charged_pools
    for rule in plan.charges:
        lines, problems = bill_charge(drivers, rule, period)
        run.problems += problems
        cents = lines.total if lines is not None else 0
        run.charged[rule.rule_id] = run.charged.get(rule.rule_id, 0) + cents
        flows = books.pool(rule.pool.key)
        flows["billed"] += cents
        flows["charged"] += cents
        if lines is not None:
            run.bill_lines.append(lines)
        charged_pools.add(rule.pool.key)

    for pool, flows in books.flows.items():
        if pool in charged_pools:
            continue  # what CHARGE leaves unbilled is under-recovery, not unallocated cost
        left = books.balance(pool)
        if not left:
            continue
        flows["unallocated"] += left
        name = drivers.pool_names.get(pool, pool)
        why = (
            "it received cost after the rule spreading it ran"
            if pool in spread_pools
            else "no rule spreads or charges it"
        )
        run.problems.append(
            Problem(
                Reason.UNALLOCATED,
                Severity.WARNING,
                drivers.book.pool_cell(pool),
                f'pool "{name}" keeps {format_money(left, drivers.minor_unit)} as Unallocated in '
                f"{period}: {why}; add an ALLOCATE or CHARGE rule for it",
            )
        )
    run.flows = books.flows
    return run


def bills_frame(drivers: Drivers, run: PeriodRun, rated_only: bool = False) -> pd.DataFrame:
    """The Bills sheet of one period, sorted by department, pool, rule, band.

    ``rated_only`` keeps just the lines with a unit rate (CHARGE lines), which
    is all the year-to-date same-rate check needs.
    """
    blocks = _shown_blocks(run, rated_only)
    if not blocks:
        return pd.DataFrame([], columns=BILL_COLUMNS)
    return _lines_frame(drivers, [(run.period, blocks)])


def _shown_blocks(run: PeriodRun, rated_only: bool) -> list[BillLines]:
    return [b for b in run.bill_lines if len(b) and (b.rates is not None or not rated_only)]


def year_charge_lines(drivers: Drivers, runs: list[PeriodRun], bills: pd.DataFrame) -> pd.DataFrame:
    """The CHARGE lines (those with a Rate) of every period run, period by period.

    One frame for the whole year: a frame per period and a concat cost more
    than building it.
    """
    rated = [_shown_blocks(run, rated_only=True) for run in runs]
    if all(rated):
        return _lines_frame(drivers, [(run.period, b) for run, b in zip(runs, rated, strict=True)])
    # A period without charge lines gives an empty frame, whose object columns the
    # concat keeps: built as it always was, so the year's frame is the same either way.
    earlier = [bills_frame(drivers, run, rated_only=True) for run in runs[:-1]]
    return pd.concat([*earlier, bills[bills["Rate"].notna()]], ignore_index=True)


def _lines_frame(drivers: Drivers, periods: list[tuple[str, list[BillLines]]]) -> pd.DataFrame:
    """Bills rows of each period's blocks: periods in turn, each by department, pool, rule, band."""
    blocks = [b for _, period_blocks in periods for b in period_blocks]
    sizes = [len(b) for b in blocks]
    at = np.concatenate([b.at for b in blocks])
    tiers = np.concatenate([_tiers(b) for b in blocks])
    block_period = [i for i, (_, period_blocks) in enumerate(periods) for _ in period_blocks]
    # Blocks are few (one per rule and period): rank their pool and rule once, then sort
    # the lines by period, department (positions follow name order), pool, rule, band.
    # np.lexsort is stable, as sorted() was.
    order = np.lexsort(
        (
            tiers,
            np.repeat(_ranks([b.rule_id for b in blocks]), sizes),
            np.repeat(_ranks([b.pool for b in blocks]), sizes),
            at,
            np.repeat(block_period, sizes),
        )
    )

    def per_block(values: list) -> np.ndarray:
        return np.repeat(object_array(values), sizes)[order]

    def per_line(arrays: list[np.ndarray]) -> np.ndarray:
        return np.concatenate(arrays)[order]

    codes, names = drivers.department_labels
    at = at[order]
    pool_names = drivers.pool_names
    frame = {
        "Period": per_block([periods[i][0] for i in block_period]),
        "Department": codes[at],
        "Name": names[at],
        "Pool": per_block([pool_names.get(b.pool, b.pool) for b in blocks]),
        "Metric": per_block([b.metric for b in blocks]),
        "Quantity": per_line([b.quantities.decimals() for b in blocks]),
        "Rate": per_line(
            [b.rates if b.rates is not None else object_array([None] * len(b)) for b in blocks]
        ),
        "Amount": per_line([money_array(b.cents, drivers.minor_unit) for b in blocks]),
        "Rule": per_block([b.rule_id for b in blocks]),
        "Charge Period": per_block([periods[i][0] for i in block_period]),
        "Line Type": np.full(len(at), CHARGE, dtype=object),
    }
    return pd.DataFrame(frame, columns=BILL_COLUMNS)


def _tiers(block: BillLines) -> np.ndarray:
    return block.tiers if block.tiers is not None else np.zeros(len(block), dtype=np.int64)


def _ranks(names: list[str]) -> np.ndarray:
    """Each name's place in sorted order (equal names share a place)."""
    place = {name: i for i, name in enumerate(sorted(set(names)))}
    return np.array([place[n] for n in names], dtype=np.int64)


def _earlier(problem: Problem, period: str) -> Problem:
    """An earlier period's error, reported without blocking the billed period."""
    return replace(
        problem,
        severity=Severity.WARNING,
        message=f"in {period} (fiscal year to date, for Recovery): {problem.message}",
    )


def bills_by_period(book: Book, plan: Plan, periods: list[str]) -> dict[str, pd.DataFrame]:
    """Each period's Bills frame, every rule run afresh (a department's bill by month)."""
    drivers = Drivers(book)
    return {p: bills_frame(drivers, run_period(drivers, plan, p)) for p in periods}


def execute(book: Book, plan: Plan, period: str, sheets: Mapping[str, str] | None = None) -> Result:
    """Run the plan for the billed ``period`` and its fiscal year to date.

    ``sheets`` names the output sheets as they are written (``Bills`` ->
    ``Bills@High`` in a scenario run), for the tie-outs' locations.
    """
    drivers = Drivers(book)
    periods = fiscal_periods_to_date(period, book.settings.fiscal_year_start)
    runs = [run_period(drivers, plan, p) for p in periods]
    billed = runs[-1]

    problems: list[Problem] = []
    for run in runs[:-1]:
        problems += [_earlier(p, run.period) for p in run.problems if p.is_error]
    problems += billed.problems

    bills = bills_frame(drivers, billed)
    # Compliance checks that every department paid the same rate all year, not just now.
    year_charges = year_charge_lines(drivers, runs, bills)
    journal = build_journal(drivers, bills, period)
    flows = build_pool_flows(drivers, runs)
    recovery = build_recovery(flows)
    minor = drivers.minor_unit
    amounts: dict[str, int] = defaultdict(int)
    for rule_id, spread in billed.spreads.items():
        amounts[rule_id] += spread.amount
    for rule_id, cents in billed.charged.items():
        amounts[rule_id] += cents
    rule_amounts = {k: cents_to_money(v, minor) for k, v in sorted(amounts.items())}

    tieouts: list[TieOut] = []
    if not has_errors(billed.problems):
        # Bills held back by an error are never issued: checking them would report a
        # PASS for bills nobody gets (Run Log shows the tie-outs as not run).
        tieouts, tie_problems = run_tieouts(drivers, billed, bills, journal, recovery, sheets)
        problems += tie_problems
    return Result(
        period=period,
        bills=bills,
        journal=journal,
        recovery=recovery,
        pool_flows=flows,
        rule_amounts=rule_amounts,
        tieouts=tieouts,
        problems=problems,
        periods=periods,
        year_charges=year_charges,
    )
