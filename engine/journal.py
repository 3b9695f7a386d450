"""The chargeback journal: one balanced entry per department per period (SPEC §4).

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


def memo(period: str, pool: str, lines: pd.DataFrame) -> str:
    """``Chargeback 2026-03 Cloud — vCPU-Hours 1,234 @ 0.05``."""
    parts = [
        _describe(m, q, r)
        for m, q, r in zip(lines["Metric"], lines["Quantity"], lines["Rate"], strict=True)
    ]
    return f"Chargeback {period} {pool} — {'; '.join(parts)}"


def _line(entry, period, fund, account, department, pool, amount: Decimal, debit, text, rule):
    # A debit of a negative amount is a credit of its opposite.
    if amount < 0:
        amount, debit = -amount, not debit
    return {
        "Entry": entry,
        "Period": period,
        "Fund": fund,
        "Account": account,
        "Department": department,
        "Pool": pool,
        "Debit": amount if debit else None,
        "Credit": None if debit else amount,
        "Memo": text,
        "Rule": rule,
    }


def build_journal(drivers: Drivers, bills: pd.DataFrame, period: str) -> pd.DataFrame:
    """The Journal sheet for the billed period, from its Bills."""
    s = drivers.settings
    it_fund_key = name_key(s.it_fund)
    number = {key: i + 1 for i, key in enumerate(drivers.department_order)}
    rows = []
    if bills.empty:
        return pd.DataFrame(rows, columns=JOURNAL_COLUMNS)
    keyed = bills.assign(_dep=bills["Department"].map(name_key), _pool=bills["Pool"].map(name_key))
    for dep_key in sorted(keyed["_dep"].unique()):
        dep_lines = keyed[keyed["_dep"] == dep_key]
        dep = drivers.departments.get(dep_key)
        code = dep.code if dep else str(dep_lines["Department"].iat[0])
        fund = dep.fund if dep else ""
        entry = f"CB-{period}-{number.get(dep_key, len(number) + 1):04d}"
        for pool_key in sorted(dep_lines["_pool"].unique()):
            lines = dep_lines[dep_lines["_pool"] == pool_key]
            pool = str(lines["Pool"].iat[0])
            amount = sum(lines["Amount"], Decimal(0))
            if amount == 0:
                continue  # nothing to post (e.g. a band priced at 0)
            text = memo(period, pool, lines)
            rule = ", ".join(dict.fromkeys(lines["Rule"]))
            args = (entry, period)
            if name_key(fund) == it_fund_key:
                rows.append(
                    _line(*args, fund, s.expense_account, code, pool, amount, True, text, rule)
                )
                rows.append(
                    _line(
                        *args, fund, s.reimbursement_account, code, pool, amount, False, text, rule
                    )
                )
            else:
                rows += [
                    _line(*args, fund, s.expense_account, code, pool, amount, True, text, rule),
                    _line(*args, fund, s.due_to_account, code, pool, amount, False, text, rule),
                    _line(
                        *args, s.it_fund, s.due_from_account, code, pool, amount, True, text, rule
                    ),
                    _line(
                        *args, s.it_fund, s.revenue_account, code, pool, amount, False, text, rule
                    ),
                ]
    return pd.DataFrame(rows, columns=JOURNAL_COLUMNS)
