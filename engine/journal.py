"""The chargeback journal: one balanced entry per department per period (docs/contract.md#journal).

Entry ``CB-2026-03-0007`` is the seventh department in name order (numbered
over every department, so a department keeps its number whether or not others
are billed). Each pool on the department's bill gives the entry its lines:

- department in another fund: in its fund debit ExpenseAccount and credit
  DueToAccount; in the IT fund debit DueFromAccount and credit RevenueAccount;
- department in the IT fund (Settings ITFund, any case): debit ExpenseAccount,
  credit ReimbursementAccount.

So every entry balances within each fund. A net credit (a negative amount,
e.g. a refund in Actuals) swaps the debit and credit sides. Pool-to-pool
allocations never reach Bills, so they post nothing.
"""

from __future__ import annotations

from decimal import Decimal

import pandas as pd

from costloop.engine.allocate import SHARE_METRIC
from costloop.engine.drivers import Drivers
from costloop.engine.money import format_quantity
from costloop.engine.result import JOURNAL_COLUMNS
from costloop.rules.ast import name_key


def _describe(metric: object, quantity: object, rate: object) -> str:
    """One bill line in a memo: ``vCPU-Hours 1,234 @ 0.05``, ``60% share``, ``evenly``."""
    has_metric = isinstance(metric, str) and metric
    has_quantity = quantity is not None and not (
        isinstance(quantity, float) and quantity != quantity
    )
    has_rate = rate is not None and not (isinstance(rate, float) and rate != rate)
    if has_metric and metric == SHARE_METRIC and has_quantity:
        return f"{format_quantity(quantity)}% share"
    if has_metric and has_quantity and has_rate:
        return f"{metric} {format_quantity(quantity)} @ {format_quantity(rate)}"
    if has_metric and has_quantity:
        return f"by {metric} {format_quantity(quantity)}"
    return "split evenly"


def memo(period: str, pool: str, lines: list[tuple[object, object, object]]) -> str:
    """``Chargeback 2026-03 Cloud — vCPU-Hours 1,234 @ 0.05`` from (metric, quantity, rate)."""
    parts = [_describe(m, q, r) for m, q, r in lines]
    return f"Chargeback {period} {pool} — {'; '.join(parts)}"


def _line(entry, period, fund, account, department, pool, amount: Decimal, debit, text, rule):
    # A debit of a negative amount is a credit of its opposite.
    if amount < 0:
        amount, debit = -amount, not debit
    # A tuple in JOURNAL_COLUMNS order: a frame builds from tuples in half the time of dicts.
    return (
        entry,
        period,
        fund,
        account,
        department,
        pool,
        amount if debit else None,
        None if debit else amount,
        text,
        rule,
    )


def build_journal(drivers: Drivers, bills: pd.DataFrame, period: str) -> pd.DataFrame:
    """The Journal sheet for the billed period, from its Bills."""
    s = drivers.settings
    it_fund_key = name_key(s.it_fund)
    number = {key: i + 1 for i, key in enumerate(drivers.department_order)}
    # (department key, pool key) -> [code, pool spelling, amount, rule IDs, memo parts]
    groups: dict[tuple[str, str], list] = {}
    columns = ("Department", "Pool", "Metric", "Quantity", "Rate", "Amount", "Rule")
    for code, pool, metric, quantity, rate, amount, rule in zip(
        *(bills[c] for c in columns), strict=True
    ):
        key = (name_key(str(code)), name_key(str(pool)))
        group = groups.get(key)
        if group is None:
            group = groups[key] = [str(code), str(pool), Decimal(0), {}, []]
        group[2] += amount
        group[3][rule] = None
        group[4].append((metric, quantity, rate))
    rows = []
    for (dep_key, _pool_key), (code, pool, amount, rules, parts) in sorted(groups.items()):
        if amount == 0:
            continue  # nothing to post (e.g. a band priced at 0)
        dep = drivers.departments.get(dep_key)
        fund = dep.fund if dep else ""
        code = dep.code if dep else code
        entry = f"CB-{period}-{number.get(dep_key, len(number) + 1):04d}"
        text = memo(period, pool, parts)
        rule = ", ".join(rules)
        args = (entry, period)
        if name_key(fund) == it_fund_key:
            rows += [
                _line(*args, fund, s.expense_account, code, pool, amount, True, text, rule),
                _line(*args, fund, s.reimbursement_account, code, pool, amount, False, text, rule),
            ]
        else:
            it = s.it_fund
            rows += [
                _line(*args, fund, s.expense_account, code, pool, amount, True, text, rule),
                _line(*args, fund, s.due_to_account, code, pool, amount, False, text, rule),
                _line(*args, it, s.due_from_account, code, pool, amount, True, text, rule),
                _line(*args, it, s.revenue_account, code, pool, amount, False, text, rule),
            ]
    return pd.DataFrame(rows, columns=JOURNAL_COLUMNS)
