"""The four tie-out checks (docs/contract.md#tie-outs), run every time on the finished frames.

Each check recomputes its totals from the output frames (Bills, Journal,
Recovery) and compares them with a source built apart from them, so a bug in
building a sheet shows up as a failed run rather than a wrong bill:

1. each ALLOCATE rule: Σ its bill lines + Σ its transfers to pools + kept =
   the amount it spread, to the cent;
2. each journal entry balances within each fund, and each fund balances;
3. Σ RevenueAccount + ReimbursementAccount credits (net of debits) = Σ Bills.Amount
   = Σ Recovery.Recovered of the billed period. The journal is made from the
   Bills, so the two alone would agree whatever the Bills say; Recovery is made
   from what each rule credited its pool as it ran, so a bill line lost, added
   or altered on the way to the sheet (or a Recovery row gone wrong) fails it;
4. each pool: direct cost + received = allocated onward + billed + unallocated.
   For a pool billed by CHARGE the difference is its over/under recovery (shown
   in Recovery), so there the check is that the Bills lines of the pool equal
   what the engine credited to it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from decimal import Decimal

import numpy as np
import pandas as pd

from costloop.engine.chargeback.drivers import Drivers, name_keys
from costloop.engine.model.money import cents_to_money
from costloop.engine.model.result import PeriodRun, TieOut
from costloop.engine.model.sheets import BILLS, JOURNAL, RECOVERY
from costloop.problems import Problem, Reason, Severity
from costloop.rules.ast import name_key

_SHOWN = 5  # failures named in a detail line

ALLOCATIONS_TIE_OUT = "Allocations tie out"
JOURNAL_BALANCES = "Journal balances"
REVENUE_EQUALS_BILLS = "Revenue equals bills"
POOLS_TIE_OUT = "Pools tie out"
TIE_OUTS = (ALLOCATIONS_TIE_OUT, JOURNAL_BALANCES, REVENUE_EQUALS_BILLS, POOLS_TIE_OUT)
"""The checks in the order they run and `Run Log` lists them (`Tie-out: <name>`)."""


def _sum(values) -> Decimal:
    """Σ of a money column, blanks skipped (checked for the whole column at once)."""
    values = np.asarray(values, dtype=object)
    return sum(map(Decimal, values[~pd.isna(values)].tolist()), Decimal(0))


def _amounts(column: pd.Series) -> np.ndarray:
    """A Debit or Credit column as Decimals, a blank as 0."""
    values = column.to_numpy(dtype=object, copy=True)
    values[pd.isna(values)] = Decimal(0)
    if not set(map(type, values.tolist())) <= {Decimal}:
        values[:] = [Decimal(v) for v in values.tolist()]
    return values


def _totals(groups: list[np.ndarray], debit: np.ndarray, credit: np.ndarray) -> dict:
    """{key: [Σ debit, Σ credit]}, a key per distinct combination of the ``groups`` columns.

    One sort instead of a dictionary update per line; each group's lines are
    added in their order, as a running sum would.
    """
    if len(debit) == 0:
        return {}
    code = np.zeros(len(debit), dtype=np.int64)
    distinct = []
    for column in groups:
        codes, uniques = pd.factorize(column)
        code = code * len(uniques) + codes
        distinct.append(uniques)
    order = np.argsort(code, kind="stable")
    starts = np.flatnonzero(np.diff(code[order], prepend=-1))
    debits = np.add.reduceat(debit[order], starts).tolist()
    credits = np.add.reduceat(credit[order], starts).tolist()
    first = order[starts]
    keys = zip(*(column[first].tolist() for column in groups), strict=True)
    if len(groups) == 1:
        keys = (k for (k,) in keys)
    return {k: [d, c] for k, d, c in zip(keys, debits, credits, strict=True)}


def _tieout(name: str, failures: list[str], ok_detail: str) -> TieOut:
    if not failures:
        return TieOut(name, True, ok_detail)
    more = f" (and {len(failures) - _SHOWN} more)" if len(failures) > _SHOWN else ""
    return TieOut(name, False, "; ".join(failures[:_SHOWN]) + more)


def check_rules(drivers: Drivers, run: PeriodRun, bills: pd.DataFrame) -> TieOut:
    """1. Every ALLOCATE rule: bill lines + lines to pools + kept = amount spread."""
    minor = drivers.minor_unit
    billed = defaultdict(Decimal)
    for rule, amount in zip(bills["Rule"].tolist(), bills["Amount"].tolist(), strict=True):
        billed[rule] += amount
    failures = []
    for rule_id, spread in sorted(run.spreads.items()):
        to_pools = cents_to_money(sum(t.cents for t in spread.transfers), minor)
        kept = cents_to_money(spread.kept, minor)
        spread_amount = cents_to_money(spread.amount, minor)
        total = billed.get(rule_id, Decimal(0)) + to_pools + kept
        if total != spread_amount:
            failures.append(
                f"{rule_id}: bill lines {billed.get(rule_id, 0)} + to pools {to_pools} + kept "
                f"{kept} = {total}, spread {spread_amount}"
            )
    return _tieout(
        ALLOCATIONS_TIE_OUT, failures, f"{len(run.spreads)} ALLOCATE rule(s), each to the cent"
    )


def check_journal(journal: pd.DataFrame) -> TieOut:
    """2. Each journal entry balances within each fund, and each fund balances."""
    failures = []
    if not journal.empty:
        # A 2,000-department journal has hundreds of thousands of lines: the sums are
        # made group by group on sorted columns (a line without a fund is in no group).
        fund = journal["Fund"].to_numpy(dtype=object)
        entry = journal["Entry"].to_numpy(dtype=object)
        debit, credit = _amounts(journal["Debit"]), _amounts(journal["Credit"])
        has_fund = ~pd.isna(fund)
        in_entry = has_fund & ~pd.isna(entry)
        by_entry = _totals([entry[in_entry], fund[in_entry]], debit[in_entry], credit[in_entry])
        by_fund = _totals([fund[has_fund]], debit[has_fund], credit[has_fund])
        for (entry, fund), (debit, credit) in sorted(by_entry.items()):
            if debit != credit:
                failures.append(f"entry {entry} fund {fund}: debits {debit} ≠ credits {credit}")
        for fund, (debit, credit) in sorted(by_fund.items()):
            if debit != credit:
                failures.append(f"fund {fund}: debits {debit} ≠ credits {credit}")
    entries = journal["Entry"].nunique() if not journal.empty else 0
    return _tieout(JOURNAL_BALANCES, failures, f"{entries} entries, every fund balanced")


def check_revenue(
    drivers: Drivers,
    bills: pd.DataFrame,
    journal: pd.DataFrame,
    recovery: pd.DataFrame,
    period: str,
) -> TieOut:
    """3. Revenue + reimbursement credits = total billed = what Recovery says was recovered."""
    s = drivers.settings
    it_fund = name_key(s.it_fund)
    accounts = {str(s.revenue_account), str(s.reimbursement_account)}
    credited = Decimal(0)
    if not journal.empty:
        mask = journal["Account"].astype(str).isin(accounts) & (
            np.array(name_keys(journal["Fund"].tolist()), dtype=object) == it_fund
        )
        credited = _sum(journal.loc[mask, "Credit"]) - _sum(journal.loc[mask, "Debit"])
    billed = _sum(bills["Amount"])
    recovered = _sum(recovery.loc[recovery["Period"] == period, "Recovered"])
    failures = []
    if billed != recovered:
        failures.append(f"Bills total {billed} ≠ Recovery's {recovered} recovered in {period}")
    if credited != billed:
        failures.append(f"credited {credited} ≠ billed {billed}")
    return _tieout(REVENUE_EQUALS_BILLS, failures, f"credited = billed = recovered = {billed}")


def check_pools(drivers: Drivers, run: PeriodRun, bills: pd.DataFrame) -> TieOut:
    """4. Each pool: cost + received = allocated onward + billed + unallocated."""
    minor = drivers.minor_unit
    billed = defaultdict(Decimal)
    for pool, amount in zip(
        name_keys(bills["Pool"].tolist()), bills["Amount"].tolist(), strict=True
    ):
        billed[pool] += amount
    received, onward = defaultdict(int), defaultdict(int)
    for t in run.transfers:
        received[t.target] += t.cents
        onward[t.source] += t.cents
    failures = []
    for pool in sorted(run.flows):
        flows = run.flows[pool]
        name = drivers.pool_names.get(pool, pool)
        if pool in run.charged_pools:
            credited = cents_to_money(flows["billed"], minor)
            if billed[pool] != credited:
                failures.append(f'"{name}": Bills show {billed[pool]}, credited {credited}')
            continue
        direct, _ = drivers.pool_cost(run.period, pool)
        left = cents_to_money(direct + received[pool], minor)
        right = cents_to_money(onward[pool] + flows["unallocated"], minor) + billed[pool]
        if left != right:
            failures.append(
                f'"{name}": cost + received {left} ≠ onward + billed + unallocated {right}'
            )
    return _tieout(POOLS_TIE_OUT, failures, f"{len(run.flows)} pool(s)")


def run_tieouts(
    drivers: Drivers,
    run: PeriodRun,
    bills: pd.DataFrame,
    journal: pd.DataFrame,
    recovery: pd.DataFrame,
    sheets: Mapping[str, str] | None = None,
) -> tuple[list[TieOut], list[Problem]]:
    """All four checks; each failure is also an ERROR problem (a failed run: docs/contract.md).

    ``sheets`` maps an output sheet to the name it is written under (``Bills`` ->
    ``Bills@High`` in a ``--scenario`` run), so a failure points at the sheet it is on.
    """
    named = dict(sheets or {})
    bills_at, journal_at = named.get(BILLS, BILLS), named.get(JOURNAL, JOURNAL)
    recovery_at = named.get(RECOVERY, RECOVERY)
    checks = [
        (check_rules(drivers, run, bills), Reason.TIE_OUT, bills_at),
        (check_journal(journal), Reason.UNBALANCED, journal_at),
        (check_revenue(drivers, bills, journal, recovery, run.period), Reason.TIE_OUT, bills_at),
        (check_pools(drivers, run, bills), Reason.TIE_OUT, recovery_at),
    ]
    problems = [
        Problem(code, Severity.ERROR, where, f"tie-out failed: {t.name}: {t.detail}")
        for t, code, where in checks
        if not t.passed
    ]
    return [t for t, _, _ in checks], problems
